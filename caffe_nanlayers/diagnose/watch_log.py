"""What ``caffe-nan watch`` needs from a ``caffe train`` log, one line at a time.

Watching a run means deciding on every line, as Caffe writes it, whether
training has just gone bad: the first non-finite loss, output, ``lr`` or
``debug_info`` value, or a loss pinned at -log(FLT_MIN). The same reader
keeps what the status line shows (iteration, loss, lr), the snapshots Caffe
announced and its last FATAL line. Its interface is narrow on purpose
(``feed(line) -> Sign | None``): the numbers are read with the doctor's
patterns and number parser, so the two never disagree on what a line says,
and the doctor's verdict itself comes from ``verdict`` over the saved log.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import deque
from collections.abc import Iterable

from caffe_nanlayers.diagnose import caffe_log, trend
from caffe_nanlayers.diagnose.diagnosis import Diagnosis

_SNAPSHOT_MODEL = re.compile(r"Snapshotting to (?:binary proto|HDF5) file (\S+)")
_SNAPSHOT_STATE = re.compile(r"Snapshotting solver state to (?:binary proto|HDF5) file (\S+)")
_SNAPSHOT_ITER = re.compile(r"_iter_(\d+)\.(?:caffemodel|solverstate)(?:\.h5)?$")
_FATAL = re.compile(r"^F\d{4,8}[ T][\d:.]+\s+\d+ ([^\]\s]+:\d+)\] (.*)$")
_DONE = "Optimization Done."
_SOLVING = "Solving "
_RESTORING = "Restoring previous solver status from "
# Losses kept for the trend on the status line.
RECENT = 20


@dataclasses.dataclass(frozen=True)
class Sign:
    """The first line that says training went bad: what, at which iteration, on which log line."""

    iteration: int | None  # None: the log (a pasted excerpt) had said no iteration yet
    what: str  # "loss", "lr", "train output <name>", "test output <name>", "debug_info", "saturated softmax"
    text: str  # the value as Caffe spelled it ("-nan", "87.3365")
    line: int  # 1-based line of the log
    layer: str | None = None  # debug_info: the layer whose value it was
    blob: str | None = None  # debug_info: "top blob fc1", "param blob 0"...
    direction: str | None = None  # debug_info: forward, backward, update

    def short(self) -> str:
        """What was seen and where, without the iteration (said before it)."""
        if self.what == "debug_info":
            where = f"{self.direction} {self.blob} of layer {self.layer}"
            return f"debug_info: {where} = {self.text} (log line {self.line})"
        if self.what == "saturated softmax":
            return f"loss = {self.text} = -log(FLT_MIN), the softmax saturated (log line {self.line})"
        return f"{self.what} = {self.text} (log line {self.line})"

    def describe(self) -> str:
        if self.what == "debug_info":
            return (
                f"debug_info: {self.direction} {self.blob} of layer {self.layer} = {self.text} "
                f"(iteration {self.iteration}, log line {self.line})"
            )
        if self.what == "saturated softmax":
            return (
                f"loss = {self.text} at iteration {self.iteration} (log line {self.line}): "
                f"-log(FLT_MIN), the softmax saturated"
            )
        return f"{self.what} = {self.text} at iteration {self.iteration} (log line {self.line})"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """A snapshot Caffe announced: its weights, its solver state (once written), its iteration."""

    iteration: int
    model: str
    state: str | None
    line: int
    complete: bool  # a later log line followed the solver state: both files were written

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


class WatchReader:
    """Feed it the log line by line; it answers with the first sign of a NaN, once."""

    def __init__(self):
        self.lines = 0
        self.iteration: int | None = None
        self.loss: float | None = None
        self.lr: float | None = None
        self.losses: deque[float] = deque(maxlen=RECENT)
        self.snapshots: list[Snapshot] = []
        self.fatal: str | None = None  # "message (file.cpp:12)"
        self.done = False  # Caffe printed "Optimization Done."
        self.sign: Sign | None = None
        self._solving: int | None = None  # where training starts, once Caffe says it is solving
        self.start_up = caffe_log.TrainingLog()  # the solver's fields and the layer types printed at start
        self._block = caffe_log._BlockReader()
        self._testing = False  # inside a test pass: its debug lines are the test net's
        self._testing_at: int | None = None  # the iteration of the last test pass, until the next loss line
        self._pending_snapshot: Snapshot | None = None

    def feed(self, raw: str) -> Sign | None:
        """Read one line; the first sign (only once: later lines return None)."""
        self.lines += 1
        line = raw.rstrip("\r\n")
        self._settle_snapshot(line)
        sign = self._read(line)
        if sign is not None and self.sign is None:
            self.sign = sign
            return sign
        return None

    def _read(self, line: str) -> Sign | None:
        prefix = caffe_log._GLOG_PREFIX.match(line)
        if self._block.kind is not None:
            if prefix or not line.strip():
                self._block.kind = None
            else:
                self._block.feed(line, self.start_up)
                return None
        body = line[prefix.end() :] if prefix else line
        if caffe_log._SOLVER_BLOCK in body:
            self._block.start("solver")
            return None
        if caffe_log._NET_BLOCK in body:
            self._block.start("net")
            return None
        if line.startswith("F"):
            fatal = _FATAL.match(line)
            if fatal:
                self.fatal = f"{fatal.group(2).strip()} ({fatal.group(1)})"
                return None
        if "Snapshotting" in body:
            self._read_snapshot(body)
            return None
        if _DONE in body:
            self.done = True
            return None
        if body.startswith(_SOLVING):
            self._solving = 0
            return None
        if body.startswith(_RESTORING):
            number = _SNAPSHOT_ITER.search(body.strip())
            self._solving = int(number.group(1)) if number else self._solving
            return None
        if "Iteration" in body:
            return self._read_iteration(body)
        if self._testing and any(end in body for end in caffe_log._TEST_PASS_END):
            self._testing = False
        if "net output #" in body:
            match = caffe_log._OUTPUT.search(body)
            if match:
                value = caffe_log.parse_number(match.group(4))
                phase = "test" if match.group(1) == "Test" or self._testing else "train"
                if value is not None and not math.isfinite(value):
                    return Sign(self._at(), f"{phase} output {match.group(3)}", match.group(4), self.lines)
                weighted = match.group(5) is not None and caffe_log.parse_number(match.group(5))
                if phase == "train" and weighted and trend.saturated_softmax([value]):
                    # A loss output pinned at -log(FLT_MIN): its softmax saturated, whatever the total says.
                    return Sign(
                        self._at(), "saturated softmax", match.group(4), self.lines, blob=match.group(3)
                    )
            return None
        if "[" in body and not self._testing:
            debug = caffe_log._debug_reading(body, self.lines)
            if debug is not None and not debug.finite:
                # Debug lines come before their iteration's loss line: it is the next one displayed.
                iteration = self._next_displayed()
                return Sign(
                    iteration,
                    "debug_info",
                    debug.text,
                    self.lines,
                    debug.layer or None,
                    debug.blob,
                    debug.direction,
                )
        return None

    def _read_iteration(self, body: str) -> Sign | None:
        match = caffe_log._TESTING.search(body)
        if match:
            self.iteration, self._testing = int(match.group(1)), True
            self._testing_at = self.iteration
            return None
        match = caffe_log._LOSS.search(body)
        if match:
            self._testing, self._testing_at = False, None
            self.iteration = int(match.group(1))
            value = caffe_log.parse_number(match.group(2))
            if value is None:
                return None
            self.loss = value
            if not math.isfinite(value):
                return Sign(self.iteration, "loss", match.group(2), self.lines)
            self.losses.append(value)
            if trend.saturated_softmax([value]):
                return Sign(self.iteration, "saturated softmax", match.group(2), self.lines)
            return None
        match = caffe_log._LR.search(body)
        if match:
            value = caffe_log.parse_number(match.group(2))
            if value is None:
                return None
            self.lr = value
            if not math.isfinite(value):
                return Sign(int(match.group(1)), "lr", match.group(2), self.lines)
        return None

    def _at(self) -> int | None:
        if self.iteration is not None:
            return self.iteration
        return self._solving

    def _next_displayed(self) -> int:
        if self.iteration is None or self._testing_at == self.iteration:
            return self._at()  # before the first loss line, or right after the test pass of this iteration
        display = caffe_log.parse_number(self.start_up.solver.get("display", "1")) or 1
        return self.iteration + max(1, int(display))

    def _read_snapshot(self, body: str) -> None:
        match = _SNAPSHOT_STATE.search(body)
        if match:
            if self._pending_snapshot is not None:
                self._pending_snapshot = dataclasses.replace(self._pending_snapshot, state=match.group(1))
            return
        match = _SNAPSHOT_MODEL.search(body)
        if match:
            self._flush_snapshot(complete=False)
            path = match.group(1)
            number = _SNAPSHOT_ITER.search(path)
            # Caffe names snapshots <prefix>_iter_<N>; the iteration is the number of updates done.
            iteration = int(number.group(1)) if number else (self._at() or 0)
            self._pending_snapshot = Snapshot(iteration, path, None, self.lines, complete=False)

    def _settle_snapshot(self, line: str) -> None:
        """A line after the solver state's announcement means Caffe finished writing it."""
        pending = self._pending_snapshot
        if pending is not None and pending.state is not None and "Snapshotting solver state" not in line:
            self._flush_snapshot(complete=True)

    def _flush_snapshot(self, complete: bool) -> None:
        if self._pending_snapshot is not None:
            self.snapshots.append(dataclasses.replace(self._pending_snapshot, complete=complete))
            self._pending_snapshot = None

    def finish(self) -> None:
        """The log ended: a snapshot announced last was complete only if Caffe went on (it did not)."""
        self._flush_snapshot(complete=False)


def verdict(lines: Iterable[str], source: str) -> Diagnosis:
    """The doctor's verdict on these log lines (the saved log of the run)."""
    from caffe_nanlayers.diagnose.doctor import diagnose

    return diagnose(caffe_log.parse_log(lines), source)
