"""Read a ``caffe train`` log (glog lines) in one streaming pass.

Training logs are often the only thing left of a run that went NaN, and
they can be gigabytes long. This parser looks at each line once, keeps only
the numbers (losses, outputs, learning rates, debug_info statistics, the
solver's and net's parameters printed at start-up), each series in compact
arrays (24 bytes a reading, not a Python object each), and never fails on a line
it does not know: other Caffe versions and forks add their own lines, and
tests interleave with training. Numbers are read in every spelling the C++
runtimes print for NaN and Inf (``nan``, ``-nan``, ``inf``, ``1.#QNAN``,
``-1.#IND``, ``-nan(ind)``...).
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import re
from array import array
from collections.abc import Iterable, Iterator

_NUM = r"([-+]?[\w.#+-]+(?:\(\w+\))?)"
_GLOG_PREFIX = re.compile(r"^[IWEF]\d{4,8}[ T][\d:.]+\s+\d+ [^\]\s]+:\d+\] ")
_LOSS = re.compile(r"Iteration (\d+)(?: \([^)]*\))?, loss = " + _NUM)
_LR = re.compile(r"Iteration (\d+)(?: \([^)]*\))?, lr = " + _NUM)
_OUTPUT = re.compile(r"(Train|Test) net output #(\d+): (\S+) = " + _NUM + r"(?: \(\* " + _NUM + r" = )?")
_TESTING = re.compile(r"Iteration (\d+)(?: \([^)]*\))?, Testing net \(#(\d+)\)")
# What Solver::Test prints once its forward passes are done: from here on, debug lines are training's.
_TEST_PASS_END = ("Test net output #", "Test loss:", "Test interrupted")
_FORWARD = re.compile(r"\[Forward\] Layer (.+?), (top blob|param blob) (\S+) data: " + _NUM)
_BACKWARD = re.compile(r"\[Backward\] Layer (.+?), (bottom blob|param blob) (\S+) diff: " + _NUM)
_ALL_PARAMS = re.compile(
    r"\[Backward\] All net params \(data, diff\): L1 norm = \(" + _NUM + ", " + _NUM + r"\); "
    r"L2 norm = \(" + _NUM + ", " + _NUM + r"\)"
)
_UPDATE = re.compile(
    r"\[Update\] Layer (.+?), param (?:blob )?(\S+)(?: \(owned by [^)]*\))? (?:data: .*?)?diff: " + _NUM
)
_SOLVER_BLOCK = "Initializing solver from parameters:"
_NET_BLOCK = "Initializing net from parameters:"
_FIELD = re.compile(r'^\s*(\w+)\s*:\s*"?([^"\s]*)"?\s*$')


def parse_number(token: str) -> float | None:
    """A float as Caffe's C++ runtime printed it (any NaN/Inf spelling), or None."""
    text = token.strip().lower()
    negative = text.startswith("-")
    if "nan" in text or "#ind" in text:
        return math.nan
    if "inf" in text:
        return -math.inf if negative else math.inf
    try:
        return float(text)
    except ValueError:
        return None


@dataclasses.dataclass(frozen=True)
class Reading:
    """One number read from the log, and where."""

    iteration: int
    value: float
    text: str  # as spelled in the log, e.g. "-nan"
    line: int  # 1-based line number

    @property
    def finite(self) -> bool:
        return math.isfinite(self.value)

    def as_dict(self) -> dict:
        return {
            "iteration": self.iteration,
            "value": self.text if not self.finite else self.value,
            "line": self.line,
        }


class Series:
    """One series of readings (the loss, an output, lr...), in the order of the log, kept compactly.

    Iterations, values and line numbers live in typed arrays; the spelling of a value is kept
    only where it matters, for the non-finite ones ("-nan", "1.#INF"). Indexing and iterating
    give ``Reading``s, made on demand.
    """

    def __init__(self):
        self.iterations = array("q")
        self.values = array("d")
        self.lines = array("q")  # increasing: the log is read in order
        self._texts: dict[int, str] = {}  # index -> spelling, for non-finite values
        self._first_bad: int | None = None

    def append(self, iteration: int, value: float, text: str, line: int) -> None:
        if not math.isfinite(value):
            index = len(self.values)
            self._texts[index] = text
            if self._first_bad is None:
                self._first_bad = index
        self.iterations.append(iteration)
        self.values.append(value)
        self.lines.append(line)

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index: int) -> Reading:
        index = range(len(self.values))[index]  # negative indices, IndexError
        value = self.values[index]
        text = self._texts.get(index) or f"{value:g}"
        return Reading(self.iterations[index], value, text, self.lines[index])

    def __iter__(self) -> Iterator[Reading]:
        return (self[i] for i in range(len(self.values)))

    def first_bad(self) -> Reading | None:
        """The first non-finite reading, or None."""
        return None if self._first_bad is None else self[self._first_bad]

    def values_before(self, line: int) -> array:
        """The values read on lines before ``line``."""
        return self.values[: bisect.bisect_left(self.lines, line)]

    def bad_before(self, line: int) -> Reading | None:
        """The first non-finite reading on a line before ``line``, or None."""
        bad = self.first_bad()
        return bad if bad is not None and bad.line < line else None


@dataclasses.dataclass(frozen=True)
class DebugReading:
    """One debug_info statistic: the mean |value| of a blob after a layer ran."""

    iteration: int | None  # filled in when the iteration's loss line arrives
    direction: str  # "forward" | "backward" | "update"
    layer: str  # "" for the all-params line
    blob: str  # "top blob fc1", "bottom blob data", "param blob 0", "all params"
    value: float
    text: str
    line: int
    test_net: int | None = None  # printed by test net #k's forward pass, not by training

    @property
    def finite(self) -> bool:
        return math.isfinite(self.value)

    def as_dict(self) -> dict:
        return {
            "iteration": self.iteration,
            "direction": self.direction,
            "layer": self.layer or None,
            "blob": self.blob,
            "value": self.text if not self.finite else self.value,
            "line": self.line,
            "test_net": self.test_net,
        }


@dataclasses.dataclass
class TrainingLog:
    """What a training log says, in the order it said it."""

    losses: Series = dataclasses.field(default_factory=Series)
    lrs: Series = dataclasses.field(default_factory=Series)
    outputs: dict[str, Series] = dataclasses.field(default_factory=dict)
    loss_weights: dict[str, float] = dataclasses.field(default_factory=dict)
    test_outputs: dict[str, Series] = dataclasses.field(default_factory=dict)
    param_diff_norms: Series = dataclasses.field(default_factory=Series)  # L2 of all gradients
    solver: dict[str, str] = dataclasses.field(default_factory=dict)
    layer_types: dict[str, str] = dataclasses.field(default_factory=dict)
    first_bad_debug: DebugReading | None = None  # of training (forward, backward, update)
    # A net with debug_info prints its test passes too: those lines are the test net's, never training's.
    first_bad_test_debug: DebugReading | None = None
    debug_lines: int = 0
    lines: int = 0
    recognized: int = 0

    def first_bad(self, readings: Series) -> Reading | None:
        return readings.first_bad()


class _BlockReader:
    """The multi-line parameter dumps glog prints at start-up (no prefix on continuation lines)."""

    def __init__(self):
        self.kind: str | None = None
        self.depth = 0
        self.layer: dict[str, str] = {}

    def start(self, kind: str):
        self.kind, self.depth, self.layer = kind, 0, {}

    def feed(self, text: str, log: TrainingLog):
        if self.kind == "solver":
            match = _FIELD.match(text)
            if match and self.depth == 0:
                log.solver.setdefault(match.group(1), match.group(2))
        else:
            match = _FIELD.match(text)
            if match and self.depth == 1 and match.group(1) in ("name", "type"):
                self.layer[match.group(1)] = match.group(2)
                if "name" in self.layer and "type" in self.layer:
                    log.layer_types.setdefault(self.layer["name"], self.layer["type"])
        opened, closed = text.count("{"), text.count("}")
        if self.depth == 0 and opened:
            self.layer = {}
        self.depth = max(0, self.depth + opened - closed)


def parse_log(lines: Iterable[str]) -> TrainingLog:
    """Read a Caffe training log line by line; unknown lines are skipped."""
    log = TrainingLog()
    block = _BlockReader()
    pending_debug: list[DebugReading] = []
    iteration = 0
    testing = False
    test_net: int | None = None  # inside test net #k's forward passes (their debug lines are its)
    for number, raw in enumerate(lines, 1):
        log.lines = number
        line = raw.rstrip("\r\n")
        prefixed = _GLOG_PREFIX.match(line)
        if block.kind is not None:
            if prefixed or not line.strip():
                block.kind = None
            else:
                block.feed(line, log)
                continue
        body = line[prefixed.end() :] if prefixed else line
        if _SOLVER_BLOCK in body:
            block.start("solver")
            log.recognized += 1
            continue
        if _NET_BLOCK in body:
            block.start("net")
            log.recognized += 1
            continue
        if "Iteration" in body:
            match = _TESTING.search(body)
            if match:
                iteration, testing = int(match.group(1)), True
                test_net = int(match.group(2))
                log.recognized += 1
                continue
            match = _LOSS.search(body)
            if match:
                iteration, testing, test_net = int(match.group(1)), False, None
                if _read(log.losses, iteration, match.group(2), number):
                    log.recognized += 1
                if pending_debug:
                    _settle_debug(pending_debug, iteration, log)
                continue
            match = _LR.search(body)
            if match:
                if _read(log.lrs, int(match.group(1)), match.group(2), number):
                    log.recognized += 1
                continue
        if test_net is not None and any(end in body for end in _TEST_PASS_END):
            test_net = None
        if "net output #" in body:
            match = _OUTPUT.search(body)
            if match:
                phase, name = match.group(1), match.group(3)
                value = parse_number(match.group(4))
                if value is not None:
                    target = log.outputs if phase == "Train" and not testing else log.test_outputs
                    series = target.get(name)
                    if series is None:
                        series = target[name] = Series()
                    series.append(iteration, value, match.group(4), number)
                    log.recognized += 1
                    if phase == "Train" and match.group(5) is not None:
                        weight = parse_number(match.group(5))
                        if weight is not None:
                            log.loss_weights.setdefault(name, weight)
            continue
        if "[" in body:
            debug = _debug_reading(body, number)
            if debug is not None:
                log.recognized += 1
                log.debug_lines += 1
                if test_net is not None:
                    if log.first_bad_test_debug is None and not debug.finite:
                        log.first_bad_test_debug = dataclasses.replace(
                            debug, iteration=iteration, test_net=test_net
                        )
                elif debug.direction == "update":
                    # [Update] lines follow their iteration's loss and lr lines.
                    _settle_debug([debug], iteration, log)
                else:
                    pending_debug.append(debug)
    if pending_debug:
        _settle_debug(pending_debug, iteration + 1 if log.losses else 0, log)
    return log


def _read(series: Series, iteration: int, token: str, line: int) -> bool:
    """Append the number ``token`` to ``series``; False if it is no number."""
    value = parse_number(token)
    if value is None:
        return False
    series.append(iteration, value, token, line)
    return True


def _debug_reading(body: str, line: int) -> DebugReading | None:
    match = _ALL_PARAMS.search(body)
    if match:
        value = parse_number(match.group(4))
        if value is None:
            return None
        return DebugReading(None, "backward", "", "all params", value, match.group(4), line)
    for pattern, direction in ((_FORWARD, "forward"), (_BACKWARD, "backward")):
        match = pattern.search(body)
        if match:
            value = parse_number(match.group(4))
            if value is None:
                return None
            blob = f"{match.group(2)} {match.group(3)}"
            return DebugReading(None, direction, match.group(1), blob, value, match.group(4), line)
    match = _UPDATE.search(body)
    if match:
        value = parse_number(match.group(3))
        if value is None:
            return None
        return DebugReading(
            None, "update", match.group(1), f"param {match.group(2)}", value, match.group(3), line
        )
    return None


def _settle_debug(pending: list[DebugReading], iteration: int, log: TrainingLog):
    """Debug lines precede their iteration's loss line: give them its number."""
    for debug in pending:
        debug = dataclasses.replace(debug, iteration=iteration)
        if debug.blob == "all params":
            log.param_diff_norms.append(iteration, debug.value, debug.text, debug.line)
        if log.first_bad_debug is None and not debug.finite and debug.blob != "all params":
            log.first_bad_debug = debug
    pending.clear()
