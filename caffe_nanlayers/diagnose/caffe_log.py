"""Read a ``caffe train`` log (glog lines) one line at a time, in bounded memory.

Training logs are often the only thing left of a run that went NaN. Some are
gigabytes long (a run left going for days), some are a dozen lines a user
pasted into an issue: an excerpt that starts mid-run, only the
``Train net output`` lines, a ``debug_info`` dump without any ``Iteration``
line, lines that lost their glog prefix or were flattened into one. Both are
read by one reader that never fails on a line it does not know (forks add
their own; tests and other threads interleave) and reads numbers in every
spelling the C++ runtimes print for NaN and Inf (``nan``, ``-nan``, ``inf``,
``1.#QNAN``, ``-1.#IND``, ``-nan(ind)``...).

The incremental form, for a tool that follows a running log::

    reader = LogReader()
    for line in follow(path):
        sign = reader.feed(line)   # a Sign the first time one shows, else None
        if sign is not None:
            print(sign.describe())
            break
    log = reader.finish()          # a TrainingLog, as parse_log returns

A *sign* is the first line showing that training went bad: a non-finite loss,
loss output or learning rate, a non-finite value in a ``debug_info`` line, or
a loss at the SoftmaxWithLoss ceiling 87.3365 (= -log(FLT_MIN): the softmax
saturated). ``feed`` reports it on the line it appears, once; ``first_sign``
keeps it. Memory stays bounded whatever the length of the log: a line is cut
at ``LINE_LIMIT`` characters, and each series keeps its first readings, a
sample of the whole (a stride that doubles as it fills), its readings when
the first sign appeared, and its last ones, with counts.

``parse_log(lines)`` reads a whole log through the same reader.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import deque
from collections.abc import Iterable, Iterator

# A line longer than this is cut: no Caffe line comes close, and a log whose
# newlines were lost (or a binary file) must not be held whole in memory.
LINE_LIMIT = 64 * 1024

# Output names kept per phase: a net has a handful; a stream of new names is no net's
# (output lines of many runs concatenated, garbage), and must not grow memory.
MAX_OUTPUTS = 256
# The first net printed at start-up (training's) is kept for lint-prototxt up to this size; the
# deepest published nets print a few hundred KB.
MAX_NET_TEXT = 4 * 1024 * 1024
# Solver fields and layer names kept from the start-up dumps (the largest nets have about 1000 layers).
MAX_BLOCK_ENTRIES = 8192

# -log(FLT_MIN): SoftmaxWithLoss clamps a probability of 0 at FLT_MIN, so a
# loss pinned here means the scores diverged or went non-finite.
SATURATED_LOSS = 87.3365
# Printed with 6 significant digits, averaged over iterations (average_loss)
# or over a test pass, it reads 87.3362 to 87.3366; 87.2935 is another value.
_SATURATED_TOLERANCE = 6e-4
# A total loss at k x 87.3365 (k losses saturated, or one under loss_weight k).
_SATURATED_MULTIPLES = 64

_NUM = r"([-+]?[\w.#+-]+(?:\(\w+\))?)"
GLOG_PREFIX = re.compile(r"^[IWEF]?\d{4,8}[ T][\d:.]+\s+\d+ ([^\]\s]+):\d+\] ")
# Where one glog line starts inside another (a log pasted as one line).
_GLOG_INSIDE = re.compile(r"(?<=\s)[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ [^\]\s]+:\d+\] ")
# Where a Caffe message starts, for flattened lines that lost their prefixes too.
_MESSAGE_START = re.compile(
    r"(?:(?<=\s)|^)(?=Iteration \d+[ ,]|(?:Train|Test) net output #|\[(?:Forward|Backward)\] )"
)
LOSS_LINE = re.compile(r"Iteration (\d+)(?: \([^)]*\))?, loss = " + _NUM)
LR_LINE = re.compile(r"Iteration (\d+)(?: \([^)]*\))?, lr = " + _NUM)
_OUTPUT = re.compile(r"(Train|Test) net output #(\d+): (.+?) = " + _NUM + r"(?: \(\* " + _NUM + r" = )?")
TESTING_LINE = re.compile(r"Iteration (\d+)(?: \([^)]*\))?, Testing net \(#(\d+)\)")
# What Solver::Test prints once its forward passes are done: from here on, debug lines are training's.
_TEST_PASS_END = ("Test net output #", "Test score #", "Test loss:", "Test interrupted")
_FORWARD = re.compile(r"\[Forward\] Layer (.+?), (top blob|param blob) (\S+) data: " + _NUM)
_BACKWARD = re.compile(r"\[Backward\] Layer (.+?), (bottom blob|param blob) (\S+) diff: " + _NUM)
_ALL_PARAMS = re.compile(
    r"\[Backward\] All net params \(data, diff\): L1 norm = \(" + _NUM + ", " + _NUM + r"\); "
    r"L2 norm = \(" + _NUM + ", " + _NUM + r"\)"
)
_UPDATE = re.compile(
    r"\[Update\] Layer (.+?), param (?:blob )?(\S+)(?: \(owned by [^)]*\))? (?:data: .*?)?diff: " + _NUM
)
# A custom layer's own print of its loss ("total loss: nan, loc loss: inf").
_CUSTOM_LOSS = re.compile(r"(\w[\w ]{0,40}?loss)\s*[:=]\s*" + _NUM, re.IGNORECASE)
_NONFINITE_HINT = re.compile(r"nan|inf|#IND|#QNAN", re.IGNORECASE)
# A custom print's token must be spelled as a non-finite number, not merely contain "inf".
_NONFINITE_TOKEN = re.compile(r"[-+]?(?:nan|inf|infinity|1\.#\w+|nan\(\w+\))", re.IGNORECASE)
# "All net params" lines held until their iteration's loss line (one a display).
_PENDING_NORMS = 64
# Net::Init's set-up lines: which layers make a loss, and which have bottoms.
_SETTING_UP = re.compile(r"^Setting up (\S+)$")
_LOSS_WEIGHT = re.compile(r"^\s*with loss weight " + _NUM + "$")
_BOTTOM = re.compile(r"^(\S+) <- (\S+)$")
# A loss sends back a gradient about as large as the loss itself; one a million times larger
# (mean |diff| against the loss) is a loss dividing by an input clamped near 0 (as locate judges).
LOSS_GRADIENT_RATIO = 1e6
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


def is_saturated(value: float, weights: Iterable[float] = ()) -> bool:
    """True for 87.3365 (SoftmaxWithLoss's ceiling), k x 87.3365, or it under a known loss_weight."""
    if not math.isfinite(value) or value <= 0:
        return False
    multiple = round(value / SATURATED_LOSS)
    near = abs(value - multiple * SATURATED_LOSS) <= _SATURATED_TOLERANCE * multiple
    if 1 <= multiple <= _SATURATED_MULTIPLES and near:
        return True
    return any(
        w > 0 and abs(value - w * SATURATED_LOSS) <= _SATURATED_TOLERANCE * max(1.0, w) for w in weights
    )


@dataclasses.dataclass(frozen=True)
class Reading:
    """One number read from the log, and where."""

    iteration: int | None  # None: printed before the excerpt's first Iteration line says which
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
    """One series of readings (the loss, an output, lr...), kept in bounded memory.

    It keeps the first ``HEAD`` readings, a sample of the whole series (every
    ``stride``-th, the stride doubling whenever ``SAMPLE`` are held), the last
    ``TAIL`` as they were when the log first showed a sign (``freeze``), and
    the last ``TAIL``; with the count, the first non-finite and the first
    saturated reading. That is what the verdict and the plot read: the start
    of a run, its shape, and the readings just before it went bad.
    """

    HEAD = 32
    SAMPLE = 512
    TAIL = 256

    def __init__(self):
        self.count = 0
        self._head: list[tuple] = []
        self._sample: list[tuple] = []
        self._stride = 1
        self._tail: deque[tuple] = deque(maxlen=self.TAIL)
        self._frozen: tuple[tuple, ...] = ()
        self._first_bad: tuple | None = None
        self.first_saturated: Reading | None = None
        self.saturated_count = 0

    def append(self, iteration: int | None, value: float, text: str, line: int) -> tuple:
        """Add a reading; return it as stored, (index, iteration, value, spelling, line).

        The spelling is kept only where it matters, for non-finite values ("-nan", "1.#INF");
        a ``Reading`` is made from the tuple when one is asked for.
        """
        item = (self.count, iteration, value, None if math.isfinite(value) else text, line)
        self.count += 1
        if len(self._head) < self.HEAD:
            self._head.append(item)
        if item[0] % self._stride == 0:
            self._sample.append(item)
            if len(self._sample) >= self.SAMPLE:
                self._stride *= 2
                self._sample = [s for s in self._sample if s[0] % self._stride == 0]
        self._tail.append(item)
        if item[3] is not None and self._first_bad is None:
            self._first_bad = item
        return item

    def freeze(self) -> None:
        """Keep the last readings as they are now: those before the log's first sign."""
        if not self._frozen:
            self._frozen = tuple(self._tail)

    def settle(self, iteration: int, line: int) -> None:
        """Readings printed before ``line`` with no iteration yet get ``iteration``."""

        def settled(item):
            return (item[0], iteration, *item[2:]) if item[1] is None and item[4] < line else item

        self._head = [settled(i) for i in self._head]
        self._sample = [settled(i) for i in self._sample]
        self._tail = deque((settled(i) for i in self._tail), maxlen=self.TAIL)
        self._frozen = tuple(settled(i) for i in self._frozen)
        if self._first_bad is not None:
            self._first_bad = settled(self._first_bad)

    def kept(self) -> list[Reading]:
        """Every reading still held, in log order."""
        items = {i[0]: i for part in (self._head, self._sample, self._frozen, self._tail) for i in part}
        return [_reading(items[k]) for k in sorted(items)]

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Reading:
        if index == 0 and self._head:
            return _reading(self._head[0])
        if index == -1 and self._tail:
            return _reading(self._tail[-1])
        return self.kept()[index]

    def __iter__(self) -> Iterator[Reading]:
        return iter(self.kept())

    @property
    def iterations(self) -> list[int | None]:
        return [r.iteration for r in self.kept()]

    @property
    def values(self) -> list[float]:
        return [r.value for r in self.kept()]

    def first_bad(self) -> Reading | None:
        """The first non-finite reading, or None."""
        return None if self._first_bad is None else _reading(self._first_bad)

    def before(self, line: int) -> list[Reading]:
        """The kept readings printed on lines before ``line``."""
        return [r for r in self.kept() if r.line < line]

    def values_before(self, line: int) -> list[float]:
        """The kept values read on lines before ``line``."""
        return [r.value for r in self.before(line)]

    def bad_before(self, line: int) -> Reading | None:
        """The first non-finite reading on a line before ``line``, or None."""
        bad = self.first_bad()
        return bad if bad is not None and bad.line < line else None


def _reading(item: tuple) -> Reading:
    _, iteration, value, text, line = item
    return Reading(iteration, value, text or f"{value:g}", line)


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


@dataclasses.dataclass(frozen=True)
class CustomPrint:
    """A non-finite loss printed by a layer's own code ("total loss: nan"), outside Caffe's displays."""

    source_file: str  # the glog prefix's file, e.g. CenternetLossLayer.cpp
    key: str  # "total loss"
    reading: Reading


@dataclasses.dataclass(frozen=True)
class Sign:
    """The first line showing that training went bad."""

    kind: str  # "nonfinite" | "saturated"
    what: str  # "loss", "lr", "train output NAME", "test output NAME", "debug_info", "custom print"
    reading: Reading
    debug: DebugReading | None = None
    custom: CustomPrint | None = None

    @property
    def in_test(self) -> bool:
        """Shown by a test pass (its outputs or its net's debug_info lines), not by training."""
        return self.what.startswith("test output") or (
            self.debug is not None and self.debug.test_net is not None
        )

    def describe(self) -> str:
        iteration = self.reading.iteration
        where = f"iteration {iteration}" if iteration is not None else "before any Iteration line"
        if self.debug is not None:
            layer = self.debug.layer or "all params"
            subject = f"debug_info: {self.debug.direction} layer {layer}, {self.debug.blob}"
        elif self.custom is not None:
            subject = f"{self.custom.source_file}: {self.custom.key}"
        else:
            subject = self.what
        state = "saturated at -log(FLT_MIN)" if self.kind == "saturated" else "non-finite"
        return f"{subject} = {self.reading.text} ({state}) at {where}, line {self.reading.line}"


@dataclasses.dataclass
class TrainingLog:
    """What a training log says, in the order it said it (bounded: see ``Series``)."""

    losses: Series = dataclasses.field(default_factory=Series)
    lrs: Series = dataclasses.field(default_factory=Series)
    outputs: dict[str, Series] = dataclasses.field(default_factory=dict)
    loss_weights: dict[str, float] = dataclasses.field(default_factory=dict)
    test_outputs: dict[str, Series] = dataclasses.field(default_factory=dict)
    test_loss_weights: dict[str, float] = dataclasses.field(default_factory=dict)
    param_diff_norms: Series = dataclasses.field(default_factory=Series)  # L2 of all gradients
    solver: dict[str, str] = dataclasses.field(default_factory=dict)
    layer_types: dict[str, str] = dataclasses.field(default_factory=dict)
    # From the set-up lines: the layers with a non-zero loss weight, and those fed by a bottom.
    # The training net as Caffe printed it at start-up (after its phase filter): prototxt text.
    net_text: str | None = None
    loss_layers: set[str] = dataclasses.field(default_factory=set)
    layers_with_bottoms: set[str] = dataclasses.field(default_factory=set)
    # debug_info: a loss layer's [Forward] top and the [Backward] diff it sent back, a million
    # times larger, before any non-finite debug line (a loss dividing by an input clamped near 0).
    loss_spike: tuple[DebugReading, DebugReading] | None = None
    first_bad_debug: DebugReading | None = None  # of training (forward, backward, update)
    # A net with debug_info prints its test passes too: those lines are the test net's, never training's.
    first_bad_test_debug: DebugReading | None = None
    # The largest finite forward value before the first bad debug line (activations that blew up).
    largest_forward: DebugReading | None = None
    first_custom: CustomPrint | None = None
    finite_forward_lines: int = 0  # training's [Forward] lines before its first bad debug line
    first_sign: Sign | None = None  # in line order, training's or a test pass's
    first_train_sign: Sign | None = None  # training's own (a test net's NaN may come first)
    debug_lines: int = 0
    lines: int = 0
    recognized: int = 0
    caffe_lines: int = 0  # lines with a glog prefix or a Caffe message: 0 means no Caffe log at all
    cut_lines: int = 0  # lines longer than line_limit, read up to it
    line_limit: int = LINE_LIMIT
    excerpt: bool = False  # readings came before any Iteration line: the paste starts mid-run

    def first_bad(self, readings: Series) -> Reading | None:
        return readings.first_bad()

    def is_loss_output(self, name: str, phase: str = "Train") -> bool:
        """A loss (it has a loss_weight, or says loss in its name), not a metric such as accuracy."""
        weights = self.loss_weights if phase == "Train" else self.test_loss_weights
        return weights.get(name, 0) != 0 or (name not in weights and "loss" in name.lower())


class _BlockReader:
    """The multi-line parameter dumps glog prints at start-up (no prefix on continuation lines)."""

    def __init__(self):
        self.kind: str | None = None
        self.depth = 0
        self.layer: dict[str, str] = {}
        self.net_lines: list[str] | None = None
        self.net_size = 0

    def start(self, kind: str, log: TrainingLog):
        self.kind, self.depth, self.layer = kind, 0, {}
        self.net_lines: list[str] | None = [] if kind == "net" and log.net_text is None else None
        self.net_size = 0

    def keep_net(self, log: TrainingLog):
        if self.net_lines is not None and self.net_size <= MAX_NET_TEXT:
            log.net_text = "\n".join(self.net_lines) + "\n"

    def end(self, log: TrainingLog):
        self.keep_net(log)
        self.kind, self.net_lines = None, None

    def feed(self, text: str, log: TrainingLog):
        if self.net_lines is not None and self.net_size <= MAX_NET_TEXT:
            self.net_lines.append(text)
            self.net_size += len(text) + 1
        match = _FIELD.match(text)
        if self.kind == "solver":
            if match and self.depth == 0 and len(log.solver) < MAX_BLOCK_ENTRIES:
                log.solver.setdefault(match.group(1), match.group(2))
        elif match and self.depth == 1 and match.group(1) in ("name", "type"):
            self.layer[match.group(1)] = match.group(2)
            complete = "name" in self.layer and "type" in self.layer
            if complete and len(log.layer_types) < MAX_BLOCK_ENTRIES:
                log.layer_types.setdefault(self.layer["name"], self.layer["type"])
        opened, closed = text.count("{"), text.count("}")
        if self.depth == 0 and opened:
            self.layer = {}
        self.depth = max(0, self.depth + opened - closed)


class LogReader:
    """Feed it a log line by line; it keeps bounded state and reports the first sign of trouble."""

    def __init__(self, line_limit: int = LINE_LIMIT):
        self.log = TrainingLog(line_limit=line_limit)
        self.line_limit = line_limit
        self._block = _BlockReader()
        self._pending_debug: list[DebugReading] = []  # this iteration's, until its loss line
        self._pending_bad_debug: DebugReading | None = None
        self._pending_spike: tuple[DebugReading, DebugReading] | None = None
        self._loss_forward: dict[str, DebugReading] = {}  # this iteration's [Forward] of each loss layer
        self._setting_up: str | None = None
        self._iteration: int | None = None  # None until the first Iteration line
        self._testing = False
        self._test_net: int | None = None  # inside test net #k's forward passes
        self._settled = False

    @property
    def first_sign(self) -> Sign | None:
        return self.log.first_sign

    def feed(self, raw: str) -> Sign | None:
        """Read one line; return the first sign if this line shows it, else None."""
        log = self.log
        log.lines += 1
        had = log.first_sign
        if len(raw) > self.line_limit:
            raw = raw[: self.line_limit]
            log.cut_lines += 1
        line = raw.rstrip("\r\n")
        for piece in _pieces(line):
            self._feed_one(piece, log.lines)
        return log.first_sign if had is None else None

    def finish(self) -> TrainingLog:
        """The log read so far, its pending debug lines settled."""
        self._block.keep_net(self.log)  # a log that ends inside the dump (reading may go on)
        if self._pending_debug or self._pending_bad_debug is not None or self._pending_spike is not None:
            # After a test pass at N, training's own step N follows; after a display of N, step N + 1.
            iteration = self._iteration
            if iteration is not None and not self._testing:
                iteration += 1
            self._settle_debug(iteration)
        return self.log

    # The rest reads one message; ``number`` is the line it is on.

    def _feed_one(self, line: str, number: int) -> None:
        log = self.log
        prefixed = GLOG_PREFIX.match(line)
        block = self._block
        if block.kind is not None:
            if prefixed or not line.strip():
                block.end(log)
            else:
                block.feed(line, log)
                return
        if prefixed:
            log.caffe_lines += 1
        body = line[prefixed.end() :] if prefixed else line
        if _SOLVER_BLOCK in body:
            block.start("solver", log)
            log.recognized += 1
            return
        if _NET_BLOCK in body:
            block.start("net", log)
            log.recognized += 1
            return
        if "Iteration" in body and self._iteration_line(body, number, prefixed):
            return
        if self._test_net is not None and any(end in body for end in _TEST_PASS_END):
            self._test_net = None
        if "net output #" in body:
            match = _OUTPUT.search(body)
            if match:
                self._output(match, number, prefixed)
            return
        if "[" in body:
            debug = _debug_reading(body, number)
            if debug is not None:
                self._debug(debug, prefixed)
                return
        if prefixed and self._net_setup(body):
            return
        if prefixed and _NONFINITE_HINT.search(body):
            self._custom_print(prefixed.group(1), body, number)

    def _net_setup(self, body: str) -> bool:
        """Net::Init's lines that say which layers make a loss ("with loss weight") and have bottoms."""
        log = self.log
        if len(log.loss_layers) + len(log.layers_with_bottoms) >= 2 * MAX_BLOCK_ENTRIES:
            return False
        match = _SETTING_UP.match(body)
        if match:
            self._setting_up = match.group(1)
            return True
        match = _LOSS_WEIGHT.match(body)
        if match:
            weight = parse_number(match.group(1))
            if self._setting_up is not None and weight:
                log.loss_layers.add(self._setting_up)
            return True
        match = _BOTTOM.match(body)
        if match:
            log.layers_with_bottoms.add(match.group(1))
            return True
        return False

    def _count(self, prefixed) -> None:
        self.log.recognized += 1
        if not prefixed:
            self.log.caffe_lines += 1

    def _iteration_line(self, body: str, number: int, prefixed) -> bool:
        # A substring test first: most lines are a loss or an lr line, and a failed search costs.
        match = TESTING_LINE.search(body) if "Testing net" in body else None
        if match:
            self._at_iteration(int(match.group(1)), number, "testing")
            self._testing, self._test_net = True, int(match.group(2))
            self._count(prefixed)
            return True
        match = LOSS_LINE.search(body) if "loss = " in body else None
        if match:
            iteration = int(match.group(1))
            self._at_iteration(iteration, number, "loss")
            self._testing, self._test_net = False, None
            item = _read(self.log.losses, iteration, match.group(2), number)
            if item is not None:
                self._count(prefixed)
                self._check(
                    item, "loss", self.log.losses, saturable=True, weights=self.log.loss_weights.values()
                )
            if self._pending_debug or self._pending_bad_debug is not None or self._pending_spike is not None:
                self._settle_debug(iteration)
            return True
        match = LR_LINE.search(body) if "lr = " in body else None
        if match:
            iteration = int(match.group(1))
            self._at_iteration(iteration, number, "lr")
            item = _read(self.log.lrs, iteration, match.group(2), number)
            if item is not None:
                self._count(prefixed)
                self._check(item, "lr", self.log.lrs)
            return True
        return False

    def _at_iteration(self, iteration: int, number: int, kind: str) -> None:
        """The first Iteration line of an excerpt says which iteration the lines before it were."""
        self._iteration = iteration
        if self._settled:
            return
        self._settled = True
        log = self.log
        if not log.excerpt:
            return
        # Caffe prints a test pass, then the loss and train outputs, then lr, for one iteration:
        # test outputs before a loss or lr line are its; train outputs only before its lr line.
        if kind != "testing":
            for series in log.test_outputs.values():
                series.settle(iteration, number)
        if kind == "lr":
            for series in log.outputs.values():
                series.settle(iteration, number)
        for field in ("first_sign", "first_train_sign"):
            sign = getattr(log, field)
            unsettled = sign is not None and sign.reading.iteration is None
            # train outputs are their lr line's; a test pass's outputs, its loss line's too
            ours = kind == "lr" or (kind == "loss" and unsettled and sign.in_test)
            if unsettled and sign.debug is None and sign.custom is None and ours:
                reading = dataclasses.replace(sign.reading, iteration=iteration)
                setattr(log, field, dataclasses.replace(sign, reading=reading))

    def _output(self, match: re.Match, number: int, prefixed) -> None:
        log = self.log
        phase, name = match.group(1), match.group(3)
        value = parse_number(match.group(4))
        if value is None:
            return
        train = phase == "Train" and not self._testing
        target = log.outputs if train else log.test_outputs
        weights = log.loss_weights if train else log.test_loss_weights
        series = target.get(name)
        if series is None:
            if len(target) >= MAX_OUTPUTS:  # a net has a few outputs; more are no net's
                return
            series = target[name] = Series()
        if match.group(5) is not None:
            weight = parse_number(match.group(5))
            if weight is not None:
                weights.setdefault(name, weight)
        if self._iteration is None:
            log.excerpt = True
        item = series.append(self._iteration, value, match.group(4), number)
        self._count(prefixed)
        if log.is_loss_output(name, "Train" if train else "Test"):
            self._check(item, f"{'train' if train else 'test'} output {name}", series, saturable=True)

    def _debug(self, debug: DebugReading, prefixed) -> None:
        log = self.log
        self._count(prefixed)
        log.debug_lines += 1
        if debug.direction != "forward":
            self._test_net = None  # test nets run forward only: a backward or update line is training's
        if self._test_net is not None:
            debug = dataclasses.replace(debug, iteration=self._iteration, test_net=self._test_net)
            if log.first_bad_test_debug is None and not debug.finite:
                log.first_bad_test_debug = debug
                self._sign_debug(debug)
            return
        if debug.direction == "update":
            # [Update] lines follow their iteration's loss and lr lines.
            debug = dataclasses.replace(debug, iteration=self._iteration)
            self._record_debug(debug)
            if not debug.finite:
                self._sign_debug(debug)
            return
        if self._iteration is None and not self._settled:
            log.excerpt = True
        if debug.blob == "all params" and len(self._pending_debug) < _PENDING_NORMS:
            self._pending_debug.append(debug)  # one a display; kept only until the loss line
        if not debug.finite:
            self._sign_debug(debug)
        elif debug.direction == "forward" and log.first_bad_debug is None and self._pending_bad_debug is None:
            log.finite_forward_lines += 1
        if (
            debug.finite
            and debug.direction == "forward"
            and log.first_bad_debug is None
            and self._pending_bad_debug is None
            and debug.blob.startswith("top")
            and (log.largest_forward is None or debug.value > log.largest_forward.value)
        ):
            log.largest_forward = debug
        if not debug.finite and debug.blob != "all params" and self._pending_bad_debug is None:
            self._pending_bad_debug = debug
        self._watch_loss_gradient(debug)

    def _watch_loss_gradient(self, debug: DebugReading) -> None:
        """Keep the first loss layer that sent back a gradient far beyond its loss, before any bad line."""
        log = self.log
        if (
            debug.layer not in log.loss_layers
            or log.loss_spike is not None
            or self._pending_spike is not None
        ):
            return
        if log.first_bad_debug is not None or self._pending_bad_debug is not None or not debug.finite:
            return
        if debug.direction == "forward" and debug.blob.startswith("top"):
            self._loss_forward[debug.layer] = debug
            return
        forward = self._loss_forward.get(debug.layer)
        if forward is None or debug.direction != "backward" or not debug.blob.startswith("bottom"):
            return
        if debug.value > LOSS_GRADIENT_RATIO * max(1.0, abs(forward.value)):
            self._pending_spike = (forward, debug)

    def _sign_debug(self, debug: DebugReading) -> None:
        reading = Reading(debug.iteration, debug.value, debug.text, debug.line)
        self._set_sign(Sign("nonfinite", "debug_info", reading, debug=debug))

    def _record_debug(self, debug: DebugReading) -> None:
        log = self.log
        if debug.blob == "all params":
            log.param_diff_norms.append(debug.iteration, debug.value, debug.text, debug.line)
        elif log.first_bad_debug is None and not debug.finite:
            log.first_bad_debug = debug

    def _settle_debug(self, iteration: int | None) -> None:
        """Forward and backward debug lines precede their iteration's loss line: give them its number."""
        pending = list(self._pending_debug)
        if self._pending_bad_debug is not None:
            pending = sorted([*pending, self._pending_bad_debug], key=lambda d: d.line)
        for debug in pending:
            self._record_debug(dataclasses.replace(debug, iteration=iteration))
        big = self.log.largest_forward
        if big is not None and big.iteration is None:
            self.log.largest_forward = dataclasses.replace(big, iteration=iteration)
        if self._pending_spike is not None:
            self.log.loss_spike = tuple(
                dataclasses.replace(d, iteration=iteration) for d in self._pending_spike
            )
        self._pending_debug.clear()
        self._pending_bad_debug = None
        self._pending_spike = None
        self._loss_forward.clear()
        if iteration is None:
            return
        for field in ("first_sign", "first_train_sign"):
            sign = getattr(self.log, field)
            if sign is not None and sign.debug is not None and sign.reading.iteration is None:
                debug = dataclasses.replace(sign.debug, iteration=iteration)
                reading = dataclasses.replace(sign.reading, iteration=iteration)
                setattr(self.log, field, dataclasses.replace(sign, reading=reading, debug=debug))

    def _custom_print(self, source_file: str, body: str, number: int) -> None:
        for match in _CUSTOM_LOSS.finditer(body):
            value = parse_number(match.group(2))
            if _NONFINITE_TOKEN.fullmatch(match.group(2)) and value is not None and not math.isfinite(value):
                self._count(True)
                reading = Reading(self._iteration, value, match.group(2), number)
                custom = CustomPrint(source_file, match.group(1).strip(), reading)
                if self.log.first_custom is None:
                    self.log.first_custom = custom
                self._set_sign(Sign("nonfinite", "custom print", reading, custom=custom))
                return

    def _check(
        self, item: tuple, what: str, series: Series, saturable: bool = False, weights: Iterable[float] = ()
    ) -> None:
        if item[3] is not None:  # spelled: non-finite
            self._set_sign(Sign("nonfinite", what, _reading(item)))
        elif saturable and is_saturated(item[2], weights):
            reading = _reading(item)
            series.saturated_count += 1
            if series.first_saturated is None:
                series.first_saturated = reading
            self._set_sign(Sign("saturated", what, reading))

    def _set_sign(self, sign: Sign) -> None:
        log = self.log
        if log.first_sign is None:
            log.first_sign = sign
        if log.first_train_sign is not None or sign.in_test:
            return
        log.first_train_sign = sign
        for series in (
            log.losses,
            log.lrs,
            log.param_diff_norms,
            *log.outputs.values(),
            *log.test_outputs.values(),
        ):
            series.freeze()


def _pieces(line: str) -> list[str]:
    """One line, or the lines a paste flattened into it (split where a glog prefix or a message starts)."""
    # Cheap first: a line that can hold two messages has two glog prefixes' "] " or two messages.
    if line.count("] ") < 2 and line.count("Iteration ") + line.count("net output #") < 2:
        return [line]
    starts = [m.start() for m in _GLOG_INSIDE.finditer(line)]
    if not starts:
        # No prefixes left: split before each message but the first, which keeps what precedes it.
        starts = [m.start() for m in _MESSAGE_START.finditer(line)][1:]
    if not starts:
        return [line]
    bounds = [0, *starts, len(line)]
    return [line[a:b].rstrip() for a, b in zip(bounds, bounds[1:]) if line[a:b].strip()]


def parse_log(lines: Iterable[str], line_limit: int = LINE_LIMIT) -> TrainingLog:
    """Read a Caffe training log line by line; unknown lines are skipped."""
    reader = LogReader(line_limit)
    for line in lines:
        reader.feed(line)
    return reader.finish()


def _read(series: Series, iteration: int | None, token: str, line: int) -> tuple | None:
    """Append the number ``token`` to ``series``; None if it is no number."""
    value = parse_number(token)
    if value is None:
        return None
    return series.append(iteration, value, token, line)


def _debug_reading(body: str, line: int) -> DebugReading | None:
    match = _ALL_PARAMS.search(body)
    if match:
        value, text = parse_number(match.group(4)), match.group(4)
        l1 = parse_number(match.group(2))
        if value is not None and not math.isfinite(value) and l1 is not None and math.isfinite(l1):
            # Caffe sums the squares in float: gradients near 1e19 overflow the L2 norm, not
            # themselves. The finite L1 norm says every gradient is finite, and bounds the L2 norm.
            value, text = l1, f"{match.group(2)} (L1; the L2 sum of squares overflowed)"
        if value is None:
            return None
        return DebugReading(None, "backward", "", "all params", value, text, line)
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
