"""Progress of a long scan: a redrawn bar with rate and ETA on a terminal, plain lines in a log.

A scan of a million records takes minutes; the user wants to know it is
moving and when it will end. On a terminal one line is redrawn in place; in
a file or a CI log a carriage-return bar is noise, so a plain line is
written at every tenth of the work instead.
"""

from __future__ import annotations

import time


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def bar_line(
    done: int, total: int, elapsed: float, unit: str = "records", since: int = 0, width: int = 24
) -> str:
    """``[#########...] 37% 3700/10000 records, 5120 records/s, ETA 0:01``

    The rate counts the work done in ``elapsed`` seconds: ``done - since``.
    """
    fraction = min(1.0, done / total) if total else 1.0
    filled = int(width * fraction)
    rate = (done - since) / elapsed if elapsed > 0 and done > since else 0.0
    eta = format_duration((total - done) / rate) if rate > 0 else "?"
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {100 * fraction:3.0f}% {done}/{total} {unit}, "
        f"{rate:.0f} {unit}/s, ETA {eta}"
    )


class Progress:
    """Reports ``update(done)`` calls on ``stream``: a bar on a terminal, a line per 10% elsewhere.

    The rate is measured from the first update on, so the start-up of Caffe
    does not count as work done at infinite speed.
    """

    def __init__(
        self, total: int, stream, unit: str = "records", is_terminal: bool | None = None, clock=None
    ):
        self.total = total
        self.stream = stream
        self.unit = unit
        self.terminal = stream.isatty() if is_terminal is None else is_terminal
        self.clock = clock or time.monotonic
        self.start = None
        self.first_done = 0
        self.next_tenth = 1
        self.drawn = False

    def update(self, done: int) -> None:
        if self.start is None:
            self.start, self.first_done = self.clock(), done
        line = bar_line(done, self.total, self.clock() - self.start, self.unit, since=self.first_done)
        if self.terminal:
            self.stream.write("\r" + line)
            self.drawn = True
        else:
            tenth = 10 * done // self.total if self.total else 10
            if tenth >= self.next_tenth:
                self.stream.write(line.split("] ", 1)[1] + "\n")
                self.next_tenth = tenth + 1
        self.stream.flush()

    def finish(self) -> None:
        if self.terminal and self.drawn:
            self.stream.write("\n")
            self.stream.flush()
