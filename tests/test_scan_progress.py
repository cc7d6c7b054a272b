"""progress: a redrawn bar with rate and ETA on a terminal, a plain line per tenth elsewhere."""

from __future__ import annotations

import io

from caffe_nanlayers.scan.progress import Progress, bar_line, format_duration


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_bar_line_shows_share_rate_and_eta():
    assert bar_line(250, 1000, 2.0, width=4) == "[#...]  25% 250/1000 records, 125 records/s, ETA 0:06"
    assert bar_line(0, 10, 0.0, width=2).endswith("0 records/s, ETA ?")
    assert format_duration(3725) == "1:02:05"


def test_terminal_redraws_one_line_and_measures_rate_from_the_first_update():
    stream, clock = io.StringIO(), FakeClock()
    progress = Progress(100, stream, is_terminal=True, clock=clock)
    progress.update(10)  # Caffe's start-up is not work done at infinite speed
    clock.now += 2
    progress.update(50)
    progress.finish()
    frames = stream.getvalue().split("\r")[1:]
    assert len(frames) == 2 and frames[1].endswith("\n")
    assert "50/100 records, 20 records/s, ETA 0:02" in frames[1]


def test_plain_output_writes_a_line_per_tenth():
    stream = io.StringIO()
    progress = Progress(10, stream, is_terminal=False, clock=FakeClock())
    for done in (3, 4, 10):
        progress.update(done)
    progress.finish()
    lines = stream.getvalue().splitlines()
    assert [line.split(" records")[0] for line in lines] == [" 30% 3/10", " 40% 4/10", "100% 10/10"]
    assert "\r" not in stream.getvalue()
