"""The watch's status line: redrawn on a terminal, plain and sparse in a pipe."""

from __future__ import annotations

import io

from caffe_nanlayers.diagnose.watch_log import WatchReader
from caffe_nanlayers.diagnose.watch_status import Status, StatusLine

P = "I1130 10:00:00.000000  4242 "


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


def train(status: StatusLine, clock: Clock, losses: list[float], seconds_per_iteration: float = 0.5):
    reader = WatchReader()
    reader.feed(P + "solver.cpp:282] Solving LeNet")
    for i, loss in enumerate(losses):
        clock.now = i * 10 * seconds_per_iteration
        reader.feed(f"{P}solver.cpp:231] Iteration {i * 10}, loss = {loss}")
        reader.feed(f"{P}sgd_solver.cpp:106] Iteration {i * 10}, lr = 0.01")
        status.update(reader)
    return reader


def test_in_a_pipe_a_plain_line_at_most_every_interval():
    clock, out = Clock(), io.StringIO()
    status = StatusLine(out, every=30, clock=clock)
    train(status, clock, [2.3, 2.0, 1.5, 1.0, 0.8, 0.5, 0.4, 0.3, 0.2, 0.1, 0.1, 0.1, 0.1])  # 5 s an entry
    lines = out.getvalue().splitlines()
    assert lines[0] == "iter 0  loss 2.3  lr 0.01"
    assert lines[1] == "iter 60  loss 0.4 (falling x0.17)  lr 0.01  500 ms/iter"
    assert len(lines) == 3 and "\r" not in out.getvalue()


def test_on_a_terminal_the_line_is_redrawn_in_place():
    clock, out = Clock(), Terminal()
    status = StatusLine(out, every=30, clock=clock)
    train(status, clock, [1.0, 1.0, 5.0])
    status.clear()
    text = out.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n") and text.count("\n") == 1
    assert "iter 20  loss 5 (rising x5)  lr 0.01  500 ms/iter" in text


def test_before_the_first_iteration():
    assert Status(None, None, None, None, None).render() == "caffe: starting (no iteration logged yet)"
