"""The one-line status of a watched run: iteration, loss and its trend, lr, time per iteration.

On a terminal the line is redrawn in place, at most a few times a second;
in a pipe or a log file (CI, nohup) it is a plain line at most every
``every`` seconds, so the output stays readable and small over days.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import TextIO

from caffe_nanlayers.diagnose.watch_log import WatchReader

REDRAW_SECONDS = 0.2


@dataclasses.dataclass(frozen=True)
class Status:
    iteration: int | None
    loss: float | None
    trend: float | None  # last loss / first of the recent window
    lr: float | None
    seconds_per_iteration: float | None

    def render(self) -> str:
        if self.iteration is None:
            return "caffe: starting (no iteration logged yet)"
        parts = [f"iter {self.iteration}"]
        if self.loss is not None:
            parts.append(f"loss {self.loss:.5g}" + (f" ({_trend_word(self.trend)})" if self.trend else ""))
        if self.lr is not None:
            parts.append(f"lr {self.lr:.3g}")
        if self.seconds_per_iteration is not None:
            parts.append(f"{_duration(self.seconds_per_iteration)}/iter")
        return "  ".join(parts)


def _trend_word(ratio: float) -> str:
    if not math.isfinite(ratio):
        return "?"
    if ratio > 1.2:
        return f"rising x{ratio:.2g}"
    if ratio < 1 / 1.2:
        return f"falling x{ratio:.2g}"
    return "steady"


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


class StatusLine:
    """Decides when to show the status and how (redrawn on a terminal, plain lines elsewhere)."""

    def __init__(self, stream: TextIO, every: float = 30.0, clock=time.monotonic):
        self.stream = stream
        self.every = every
        self.clock = clock
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._shown_at: float | None = None
        self._drawn = 0  # width of the line on the terminal
        self._timing: tuple[int, float] | None = None  # (iteration, time) the time per iteration counts from
        self._last_iteration: int | None = None
        self._per_iteration: float | None = None

    def status(self, reader: WatchReader) -> Status:
        now = self.clock()
        if reader.iteration is not None and reader.iteration != self._last_iteration:
            if self._timing is None:
                self._timing = (reader.iteration, now)
            elif reader.iteration > self._timing[0]:
                self._per_iteration = (now - self._timing[1]) / (reader.iteration - self._timing[0])
            self._last_iteration = reader.iteration
        losses = reader.losses
        trend = losses[-1] / losses[0] if len(losses) > 1 and losses[0] > 0 else None
        return Status(reader.iteration, reader.loss, trend, reader.lr, self._per_iteration)

    def update(self, reader: WatchReader) -> None:
        status = self.status(reader)
        now = self.clock()
        wait = REDRAW_SECONDS if self.tty else self.every
        if self._shown_at is not None and now - self._shown_at < wait:
            return
        self._shown_at = now
        self.show(status.render())
        if reader.iteration is not None and self._per_iteration is not None:
            self._timing = (reader.iteration, now)  # the next figure is over the next interval only

    def show(self, text: str) -> None:
        if self.tty:
            pad = " " * max(0, self._drawn - len(text))
            self.stream.write(f"\r{text}{pad}")
            self._drawn = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        """End the redrawn line, so the next output starts on a line of its own."""
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = 0
