"""The doctor's evidence as data: facts read from a log, causes weighed on them, words at the end.

A log rarely proves a cause. It shows facts (the loss grew 4000x; a layer's
top went to inf first; the loss sat at 87.3365; only one finite reading came
before the NaN), each pointing at some causes more than others. Keeping the
facts and the weighed causes as values lets the text and the JSON say the same
thing, lets tests assert on the reasoning rather than its wording, and lets
the doctor say plainly when the log cannot separate the causes: then they are
ranked by how often each produces the picture (a learning rate too high
first, as the usual catalogues of Caffe NaN causes and real users' threads
agree), and the report says what to collect next.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from caffe_nanlayers.diagnose.caffe_log import DebugReading, Reading

# How sure a cause is: one reading that only it explains; a reading it explains
# best but others can produce; nothing in the log to tell the causes apart.
HIGH, MEDIUM, LOW = "high", "medium", "low"
_CONFIDENCE_RANK = {HIGH: 0, MEDIUM: 1, LOW: 2}

# How often each cause is behind a NaN in Caffe training, most often first:
# the order in which causes the log cannot separate are listed.
PRIOR = (
    "gradient_explosion",
    "bad_input",
    "loss_layer",
    "fillers",
    "initialization",
    "batchnorm",
    "lr_policy",
    "pooling_stride",
    "sparsity",
    "layer_arithmetic",
    "log0",
    "update_overflow",
    "float16",
)


@dataclasses.dataclass(frozen=True)
class Fact:
    """Something the log shows, with the readings that show it."""

    id: str
    readings: tuple[Reading | DebugReading, ...] = ()
    values: dict[str, Any] = dataclasses.field(default_factory=dict, hash=False)

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "text": render(self),
            "readings": [r.as_dict() for r in self.readings],
            **{k: v for k, v in self.values.items() if _jsonable(v)},
        }


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A cause, how sure the log makes it, and the facts behind it."""

    cause_id: str
    confidence: str
    facts: tuple[str, ...]

    def sort_key(self) -> tuple[int, int]:
        prior = PRIOR.index(self.cause_id) if self.cause_id in PRIOR else len(PRIOR)
        return (_CONFIDENCE_RANK[self.confidence], prior)


def rank(candidates: list[Candidate]) -> list[Candidate]:
    """One entry a cause (its best confidence, every fact behind it), surest then most frequent first."""
    best: dict[str, Candidate] = {}
    for candidate in candidates:
        held = best.get(candidate.cause_id)
        if held is None:
            best[candidate.cause_id] = candidate
            continue
        facts = held.facts + tuple(f for f in candidate.facts if f not in held.facts)
        confidence = min(held.confidence, candidate.confidence, key=_CONFIDENCE_RANK.__getitem__)
        best[candidate.cause_id] = Candidate(candidate.cause_id, confidence, facts)
    return sorted(best.values(), key=Candidate.sort_key)


def _jsonable(value) -> bool:
    return isinstance(value, (str, int, float, bool, type(None), list))


def _at(reading: Reading | DebugReading) -> str:
    where = (
        "before the excerpt's first Iteration line"
        if reading.iteration is None
        else f"iteration {reading.iteration}"
    )
    return f"{where}, line {reading.line}"


def _g(value: float) -> str:
    return f"{value:.4g}"


def render(fact: Fact) -> str:
    """The sentence a user reads for ``fact``."""
    v, r = fact.values, fact.readings
    if fact.id == "lr_nonfinite":
        text = f"lr = {r[0].text} at {_at(r[0])}, before any non-finite loss"
        if v.get("policy"):
            text += f'; lr_policy "{v["policy"]}"'
            if v.get("missing"):
                text += f" and the solver printed at start-up has no {', '.join(v['missing'])}"
        return text
    if fact.id == "saturated":
        return (
            f"{v['what']} = {r[0].text} at {_at(r[0])}: 87.3365 = -log(FLT_MIN), the ceiling of "
            f"SoftmaxWithLoss when the true class gets probability 0 (scores diverged or non-finite); "
            f"{v['count']} of its {v['total']} readings sit there"
        )
    if fact.id == "nonfinite_after_saturation":
        return f"then {v['what']} = {r[0].text} at {_at(r[0])}"
    if fact.id == "loss_grew":
        return (
            f"{v['what']} grew {v['factor']:.3g}x over the {v['count']} readings before "
            f"(from {_g(v['start'])} to {_g(v['end'])})"
        )
    if fact.id == "output_grew":
        return (
            f"of the {v['losses']} loss outputs, {v['name']} grew most ({v['factor']:.3g}x): "
            f"lower its loss_weight (now {v['loss_weight']:g})"
        )
    if fact.id == "norms_grew":
        return f"debug_info: L2 norm of all gradients grew {v['factor']:.3g}x"
    if fact.id == "norm_nonfinite":
        text = f"debug_info: L2 norm of all gradients = {r[0].text} at {_at(r[0])}"
        if v.get("loss_finite"):
            return (
                text + f", while that iteration's loss was finite ({_g(r[1].value)}): a backward pass made it"
            )
        return text
    if fact.id == "first_layer":
        d = r[0]
        kind = ""
        if v.get("type"):
            source = (
                "from the net printed at start-up" if v["type_source"] == "net" else "guessed from its name"
            )
            kind = f" ({v['type']}, {source})"
        where = f"test net #{d.test_net}, " if d.test_net is not None else ""
        return (
            f"debug_info: first non-finite {d.direction} value in layer {d.layer}{kind}, "
            f"{d.blob} = {d.text} ({where}{_at(d)})"
        )
    if fact.id == "backward_first":
        if v.get("upstream"):
            return (
                f"it is a gradient, after {v['forward_lines']} finite [Forward] line(s), with values "
                "already huge before it: the layer carried them on"
            )
        if v["forward_lines"]:
            return (
                f"it is a gradient, after {v['forward_lines']} finite [Forward] line(s): the forward pass "
                "was finite, so this layer's own backward arithmetic made it"
            )
        return "it is a gradient (backward); the log shows no [Forward] line before it"
    if fact.id == "huge_activations":
        d = r[0]
        return (
            f"debug_info: activations already huge before it: layer {d.layer}, {d.blob} = {_g(d.value)} "
            f"({_at(d)})"
        )
    if fact.id == "huge_start":
        return (
            f"{v['what']} = {_g(r[0].value)} at the first reading ({_at(r[0])}): a loss in the thousands "
            "makes gradients that a usual learning rate turns into divergence"
        )
    if fact.id == "before_any_update":
        if v.get("lr_zero"):
            return "the first value is already bad with lr = 0 until then: no update can be blamed"
        return "the first value is already bad at iteration 0, before any update"
    if fact.id == "steady":
        return (
            f"loss {v['trend']} over {v['count']} readings before (x{v['factor']:.3g}), then "
            f"{r[0].text} at once, {v['gap']} iteration(s) after the last finite reading"
        )
    if fact.id == "coarse_display":
        interval = f"{v['gap']} iterations" if v.get("gap") else "an unknown number of iterations"
        return (
            f"loss {v['trend']} over {v['count']} readings before (x{v['factor']:.3g}), then {r[0].text} "
            f"{interval} after the last finite one: an explosion inside that interval would look the "
            "same as a bad batch"
        )
    if fact.id == "sparse_readings":
        text = f"only {v['count']} finite loss reading(s) before it"
        if v.get("gap"):
            text += f", the last {v['gap']} iterations earlier"
        return text + ": an explosion inside the display interval would look the same as a bad batch"
    if fact.id == "after_first_update":
        return (
            f"the loss was finite at iteration 0 ({_g(r[0].value)}) and non-finite right after the first "
            "update: the first backward pass may have made a gradient non-finite or enormous (a layer's "
            "0/0, a loss dividing by 0), or the second batch is bad"
        )
    if fact.id == "test_only":
        return "training stayed finite: only the test net went bad (TEST data or TEST-only layers)"
    if fact.id == "custom_print":
        return f"{v['file']} printed {v['key']} = {r[0].text} ({_at(r[0])}): the layer's own code"
    if fact.id == "metric_only":
        return (
            f"{v['what']} = {r[0].text} ({_at(r[0])}) is a metric, not a loss (no loss_weight): "
            "0/0 when a batch has no example of a class; training itself stayed finite"
        )
    if fact.id == "loss_spike":
        forward, backward = r
        kind = f" ({v['type']})" if v.get("type") else ""
        return (
            f"debug_info: loss layer {v['layer']}{kind} sent back {backward.blob} diff = "
            f"{_g(backward.value)} while its loss was {_g(forward.value)} ({_at(backward)}): "
            "it divides by an input clamped near 0"
        )
    if fact.id == "python_loss_inf":
        return (
            f"loss = {r[0].text} ({_at(r[0])}), +Inf rather than NaN, and the net's loss comes from Python "
            f"layer(s) {', '.join(v['layers'])}: a hand-written loss takes log(0) or divides by 0"
        )
    if fact.id == "net_setting":
        more = f" (and {v['count'] - 1} more)" if v["count"] > 1 else ""
        return f"the net printed at start-up, line {v['line']}: {v['code']} {v['message']}{more}"
    if fact.id == "no_layer_lines":
        return (
            "the log has no debug_info lines ([Forward]/[Backward]): nothing in it says which layer "
            "made the first NaN/Inf, so a cause that lives in one layer cannot be told from the others"
        )
    if fact.id == "excerpt":
        return "the paste shows no Iteration line before this point: the iteration is unknown"
    if fact.id == "lines_cut":
        return f"{v['count']} line(s) longer than {v['limit']} characters were read up to that length"
    raise ValueError(f"no wording for fact {fact.id!r}")
