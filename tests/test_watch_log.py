"""The watch's line reader: the first sign of a NaN, the snapshots Caffe announced, its FATAL line.

The real logs users pasted (``logs/real``) are read line by line as the
watch would read them live; the snippets cover the order of lines the
watch depends on (debug lines before their loss line, test passes, a
snapshot cut short by the kill).
"""

from __future__ import annotations

import json

import pytest

from caffe_nanlayers.diagnose.watch_log import WatchReader

P = "I1130 10:00:00.000000  4242 "


def feed(lines: list[str]) -> WatchReader:
    reader = WatchReader()
    for line in lines:
        reader.feed(line + "\n")
    reader.finish()
    return reader


def test_each_real_log_signs_at_its_first_marker(shared_dir):
    """Pasted logs, read line by line as the watch reads a live one: a sign where the log has a marker,
    at the marker's iteration where the paste says it, and none in the healthy ones."""
    cases = json.loads((shared_dir / "logs" / "real" / "cases.json").read_text())["cases"]
    signed = checked = 0
    for case in cases:
        reader = feed(
            (shared_dir / "logs" / "real" / case["file"])
            .read_text(encoding="utf-8", errors="replace")
            .splitlines()
        )
        if case["has_nonfinite"] == "none":
            assert reader.sign is None, case["file"]
            continue
        if reader.sign is None:
            continue
        signed += 1
        if case["has_nonfinite"] == "87.3365":
            assert reader.sign.what == "saturated softmax" or reader.sign.text.lstrip("-") in ("nan", "inf")
        if reader.sign.iteration is not None and case["expected_first_iteration"] is not None:
            assert reader.sign.iteration == case["expected_first_iteration"], case["file"]
            checked += 1
    assert signed >= 16 and checked >= 11


def test_the_first_sign_is_given_once_and_kept():
    reader = WatchReader()
    assert reader.feed(P + "solver.cpp:231] Iteration 10, loss = 0.5") is None
    sign = reader.feed(P + "solver.cpp:231] Iteration 20, loss = -nan")
    assert (sign.what, sign.iteration, sign.text, sign.line) == ("loss", 20, "-nan", 2)
    assert reader.feed(P + "solver.cpp:231] Iteration 30, loss = nan") is None
    assert reader.sign == sign


@pytest.mark.parametrize(
    ("line", "what", "text"),
    [
        ("sgd_solver.cpp:106] Iteration 0, lr = nan", "lr", "nan"),
        ("solver.cpp:247]     Train net output #0: loss = inf (* 1 = inf loss)", "train output loss", "inf"),
        ("solver.cpp:231] Iteration 0, loss = 87.3365", "saturated softmax", "87.3365"),
        (
            "solver.cpp:247]     Train net output #1: cls = 87.3365 (* 1 = 87.3365 loss)",
            "saturated softmax",
            "87.3365",
        ),
        ("solver.cpp:231] Iteration 0 (0 iter/s, 0s/20 iters), loss = 1.#QNAN", "loss", "1.#QNAN"),
    ],
)
def test_signs(line, what, text):
    reader = WatchReader()
    reader.feed(P + "solver.cpp:282] Solving LeNet")
    sign = reader.feed(P + line)
    assert (sign.what, sign.text, sign.iteration) == (what, text, 0)


def test_an_unweighted_output_at_87_is_no_sign():
    """Only a loss sits at -log(FLT_MIN) because a softmax saturated; an accuracy of 87.3365 is just that."""
    reader = WatchReader()
    assert reader.feed(P + "solver.cpp:247]     Train net output #0: acc = 87.3365") is None


def test_a_debug_line_signs_for_the_iteration_displayed_next():
    reader = feed(
        [
            P + "solver.cpp:51] Initializing solver from parameters: ",
            "display: 10",
            "base_lr: 0.01",
            P + "solver.cpp:282] Solving net",
            P + "solver.cpp:231] Iteration 10, loss = 0.5",
            P + "net.cpp:608]     [Forward] Layer conv1, top blob conv1 data: 0.25",
            P + "net.cpp:608]     [Forward] Layer pool1, top blob pool1 data: nan",
            P + "solver.cpp:231] Iteration 20, loss = nan",
        ]
    )
    sign = reader.sign
    assert (sign.what, sign.iteration, sign.layer, sign.blob, sign.direction) == (
        "debug_info",
        20,
        "pool1",
        "top blob pool1",
        "forward",
    )
    assert reader.solver_fields["display"] == "10"


def test_a_test_pass_debug_line_is_a_sign_at_its_iteration():
    """As the doctor reads it: the test net went non-finite at iteration 0, before training's display."""
    reader = feed(
        [
            P + "solver.cpp:282] Solving net",
            P + "solver.cpp:346] Iteration 0, Testing net (#0)",
            P + "net.cpp:608]     [Forward] Layer ip, top blob ip data: nan",
            P + "solver.cpp:413]     Test net output #0: acc = 0.5",
            P + "solver.cpp:231] Iteration 0, loss = 0.7",
        ]
    )
    sign = reader.sign
    assert (sign.what, sign.iteration, sign.layer, sign.line) == ("debug_info", 0, "ip", 3)


def test_snapshots_complete_only_once_caffe_went_on():
    reader = feed(
        [
            P + "solver.cpp:581] Snapshotting to binary proto file snap/m_iter_10.caffemodel",
            P
            + "sgd_solver.cpp:273] Snapshotting solver state to binary proto file snap/m_iter_10.solverstate",
            P + "solver.cpp:231] Iteration 10, loss = 0.5",
            P + "solver.cpp:581] Snapshotting to binary proto file snap/m_iter_20.caffemodel",
            P
            + "sgd_solver.cpp:273] Snapshotting solver state to binary proto file snap/m_iter_20.solverstate",
        ]
    )
    assert [(s.iteration, s.model, s.state, s.complete) for s in reader.snapshots] == [
        (10, "snap/m_iter_10.caffemodel", "snap/m_iter_10.solverstate", True),
        (20, "snap/m_iter_20.caffemodel", "snap/m_iter_20.solverstate", False),
    ]


def test_the_last_fatal_line_is_kept():
    reader = feed(
        [
            "F1130 10:00:00.000000  4242 db_lmdb.cpp:14] Check failed: mdb_status == 0 (2 vs. 0) No such",
            "*** Check failure stack trace: ***",
        ]
    )
    assert reader.fatal == "Check failed: mdb_status == 0 (2 vs. 0) No such (db_lmdb.cpp:14)"
    assert reader.sign is None
