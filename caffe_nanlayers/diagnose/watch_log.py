"""What ``caffe-nan watch`` needs from a ``caffe train`` log, one line at a time.

Watching a run means deciding on every line, as Caffe writes it, whether
training has just gone bad: the first non-finite loss, output, ``lr`` or
``debug_info`` value, or a loss pinned at -log(FLT_MIN). That decision is the
doctor's incremental reader's (``caffe_log.LogReader``), so the two tools never
disagree on it; this reader adds what only the watch needs: the status
line's numbers (iteration, loss, lr), the snapshots Caffe announced (and
whether it finished writing them), its last FATAL line, the iteration a live
run is at when a line says none. The watch's ``Sign`` is a flat value for its
report; the doctor's verdict comes from ``verdict`` over the saved log.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import deque
from collections.abc import Iterable

from caffe_nanlayers.diagnose import caffe_log
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
    """Feed it the log line by line; it answers with the first sign of a NaN, once.

    The sign is the doctor's incremental reader's (``caffe_log.LogReader``), so the watch and the
    doctor never disagree on it; this class adds what the watch needs besides: the status line's
    numbers, the snapshots Caffe announced, its FATAL line, whether it finished.
    """

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
        self.doctor = caffe_log.LogReader()
        self._solving: int | None = None  # where training starts, once Caffe says it is solving
        self._testing_at: int | None = None  # the iteration of the last test pass, until the next loss line
        self._pending_snapshot: Snapshot | None = None

    @property
    def solver_fields(self) -> dict[str, str]:
        """The solver's parameters as Caffe printed them at start-up."""
        return self.doctor.log.solver

    def feed(self, raw: str) -> Sign | None:
        """Read one line; the first sign (only once: later lines return None)."""
        self.lines += 1
        line = raw.rstrip("\r\n")
        self._settle_snapshot(line)
        self._read(line)
        found = self.doctor.feed(raw)
        if found is not None and self.sign is None:
            self.sign = self._sign(found)
            return self.sign
        return None

    def _sign(self, found) -> Sign:
        """The doctor's sign in the watch's terms, with the iteration a live run knows."""
        reading, debug = found.reading, found.debug
        what = "saturated softmax" if found.kind == "saturated" else found.what
        iteration = reading.iteration
        if debug is not None:
            # Debug lines come before their iteration's loss line: it is the next one displayed.
            iteration = self._next_displayed()
            return Sign(
                iteration,
                "debug_info",
                reading.text,
                reading.line,
                debug.layer or None,
                debug.blob,
                debug.direction,
            )
        if iteration is None:
            iteration = self._at()
        blob = found.what.removeprefix("train output ") if found.what.startswith("train output") else None
        return Sign(iteration, what, reading.text, reading.line, blob=blob)

    def _read(self, line: str) -> None:
        prefix = caffe_log.GLOG_PREFIX.match(line)
        body = line[prefix.end() :] if prefix else line
        if line.startswith("F"):
            fatal = _FATAL.match(line)
            if fatal:
                self.fatal = f"{fatal.group(2).strip()} ({fatal.group(1)})"
                return
        if "Snapshotting" in body:
            self._read_snapshot(body)
        elif _DONE in body:
            self.done = True
        elif body.startswith(_SOLVING):
            self._solving = 0
        elif body.startswith(_RESTORING):
            number = _SNAPSHOT_ITER.search(body.strip())
            self._solving = int(number.group(1)) if number else self._solving
        elif "Iteration" in body:
            self._read_iteration(body)

    def _read_iteration(self, body: str) -> None:
        match = caffe_log.TESTING_LINE.search(body)
        if match:
            self.iteration = self._testing_at = int(match.group(1))
            return
        match = caffe_log.LOSS_LINE.search(body)
        if match:
            self._testing_at = None
            self.iteration = int(match.group(1))
            value = caffe_log.parse_number(match.group(2))
            if value is not None:
                self.loss = value
                if math.isfinite(value):
                    self.losses.append(value)
            return
        match = caffe_log.LR_LINE.search(body)
        if match:
            value = caffe_log.parse_number(match.group(2))
            if value is not None:
                self.lr = value

    def _at(self) -> int | None:
        if self.iteration is not None:
            return self.iteration
        return self._solving

    def _next_displayed(self) -> int | None:
        if self.iteration is None or self._testing_at == self.iteration:
            return self._at()  # before the first loss line, or right after the test pass of this iteration
        display = caffe_log.parse_number(self.solver_fields.get("display", "1")) or 1
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
