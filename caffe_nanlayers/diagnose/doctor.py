"""Turn what a training log says into the probable causes of its first NaN, weighed.

The log cannot be re-run, so the doctor reasons from order and history the
way an experienced Caffe user does, in three steps kept apart:

1. facts (``evidence.Fact``): what the log shows around its first sign, with
   the readings that show it: a non-finite lr, a loss that grew by orders of
   magnitude, a loss at 87.3365, the first layer debug_info names, a loss in
   the thousands from the start, how many finite readings came before and
   how many iterations lay between the last of them and the NaN;
2. candidates (``evidence.Candidate``): each fact points at causes with a
   confidence: high when the reading has one explanation (lr = nan is the
   schedule's), medium when it favours one, low when the log cannot tell the
   causes apart; ranked by confidence, then by how often each cause is seen;
3. the words, rendered from both at the end, with what to collect next when
   the log is not enough.
"""

from __future__ import annotations

import dataclasses
import math
import re

from caffe_nanlayers.diagnose import trend
from caffe_nanlayers.diagnose.caffe_log import DebugReading, Reading, Series, Sign, TrainingLog
from caffe_nanlayers.diagnose.causes import cause, cause_for_layer_type
from caffe_nanlayers.diagnose.diagnosis import Diagnosis
from caffe_nanlayers.diagnose.evidence import HIGH, LOW, MEDIUM, Candidate, Fact, rank, render
from caffe_nanlayers.diagnose.net_settings import nan_settings
from caffe_nanlayers.lr_schedule import REQUIRED

# A first loss above this is no ordinary start (ln(1000 classes) is 6.9; detectors start in the hundreds).
HUGE_START = 1000.0
# Mean |activation| of a top blob that says the weights have already diverged.
HUGE_ACTIVATION = 1e10
# Layers whose output is their weights times their input: the first to overflow in a forward pass,
# they were given too-wide weights (iteration 0: the fillers) or the updates grew them (later).
WEIGHTED_LAYER_TYPES = frozenset({"InnerProduct", "Convolution", "Deconvolution", "Embed"})
# Readings, displayed one iteration apart, that make a loss "steady" before a sudden NaN.
STEADY_READINGS = 5


def diagnose(log: TrainingLog, source: str) -> Diagnosis:
    """The verdict on a parsed log."""
    details = {
        "lines": log.lines,
        "recognized_lines": log.recognized,
        "first": None,
        "first_layer": None,
        "facts": [],
        "causes": [],
    }
    if log.losses:
        details["iterations"] = [log.losses[0].iteration, log.losses[-1].iteration]
    # Training's own first sign: a test net's NaN that came first explains only itself.
    sign = log.first_train_sign or log.first_sign
    if sign is None:
        return _clean(log, source, details)

    facts = _facts(log, sign)
    candidates = rank(_weigh(facts, log))
    top = candidates[0]
    lacks = _lacks(log, top)
    details["first"] = {"what": sign.what, "kind": sign.kind, **sign.reading.as_dict()}
    layer = _fact(facts, "first_layer")
    if layer is not None:
        details["first_layer"] = {**layer.readings[0].as_dict(), "type": layer.values.get("type")}
        details["first_layer"]["type_source"] = layer.values.get("type_source")
    grew = _fact(facts, "output_grew")
    if grew is not None:
        details["grew"] = {k: grew.values[k] for k in ("output", "factor", "loss_weight")}
    details["facts"] = [f.as_dict() for f in facts]
    details["causes"] = [
        {"id": c.cause_id, "confidence": c.confidence, "facts": list(c.facts)} for c in candidates
    ]
    details["separable"] = top.confidence != LOW
    details["log_lacks"] = [f.as_dict() for f in lacks]
    diagnosis = Diagnosis(
        "doctor",
        source,
        True,
        _summary(sign),
        iteration=sign.reading.iteration,
        cause=cause(top.cause_id),
        also_possible=[cause(c.cause_id) for c in candidates[1:]],
        evidence=[render(f) for f in facts + lacks],
        details=details,
        confidence=top.confidence,
        next_steps=_next_steps(log, sign, facts, candidates),
    )
    if top.confidence == LOW:
        diagnosis.evidence.append(
            "the log cannot separate these causes: they are ranked by how often each produces this picture"
        )
    return diagnosis


def _clean(log: TrainingLog, source: str, details: dict) -> Diagnosis:
    last = log.losses[-1] if log.losses else None
    metric = _metric_nan(log)
    summary = "no NaN/Inf in the losses" if metric is not None else "no NaN/Inf in the log"
    if last is not None:
        summary += f" (last loss {last.value:.6g} at iteration {last.iteration})"
    elif not log.outputs and not log.test_outputs and not log.debug_lines:
        summary += f" ({log.lines} lines, none with a loss, an output or a debug_info value)"
    diagnosis = Diagnosis("doctor", source, False, summary, details=details)
    if metric is not None:
        details["facts"] = [metric.as_dict()]
        diagnosis.evidence.append(render(metric))
    return diagnosis


def _summary(sign: Sign) -> str:
    r = sign.reading
    at = f"iteration {r.iteration}" if r.iteration is not None else "an unknown iteration (excerpt)"
    subject = sign.what
    if sign.debug is not None:
        subject = f"debug_info {sign.debug.direction} {sign.debug.layer or 'all params'} {sign.debug.blob}"
    elif sign.custom is not None:
        subject = f"{sign.custom.key} ({sign.custom.source_file})"
    if sign.kind == "saturated":
        return f"loss saturated at 87.3365 (-log(FLT_MIN)) at {at}: {subject} = {r.text} (line {r.line})"
    return f"first NaN/Inf at {at}: {subject} = {r.text} (line {r.line})"


def _lacks(log: TrainingLog, top: Candidate) -> list[Fact]:
    """What the log would need to show for a cause it leaves unsure: the lines that name a layer."""
    if top.confidence == HIGH or log.debug_lines:
        return []
    return [Fact("no_layer_lines")]


def _fact(facts: list[Fact], fact_id: str) -> Fact | None:
    return next((f for f in facts if f.id == fact_id), None)


# Step 1: facts.


def _facts(log: TrainingLog, sign: Sign) -> list[Fact]:
    facts: list[Fact] = []
    line = sign.reading.line
    if sign.what == "lr":
        policy = log.solver.get("lr_policy")
        missing = [n for n in REQUIRED.get(policy, ()) if n not in log.solver] if policy else []
        facts.append(Fact("lr_nonfinite", (sign.reading,), {"policy": policy, "missing": missing}))
        return facts
    saturated = _saturated(log, sign)
    if saturated is not None:
        facts.append(saturated)
        later = _first_nonfinite(log)
        if later is not None and later[1].line > saturated.readings[0].line:
            what, reading = later
            facts.append(Fact("nonfinite_after_saturation", (reading,), {"what": what}))
    python_losses = sorted(n for n in log.loss_layers if log.layer_types.get(n) == "Python")
    if sign.what == "loss" and sign.reading.value == math.inf and python_losses and sign.debug is None:
        # +inf, not NaN: a log of 0 (or x/0) in a loss; the net's own loss code is the usual place
        facts.append(Fact("python_loss_inf", (sign.reading,), {"layers": python_losses}))
    for setting in nan_settings(log.net_text):
        facts.append(Fact("net_setting", (), dataclasses.asdict(setting)))
    if log.loss_spike is not None and log.loss_spike[1].line < line:
        forward, backward = log.loss_spike
        layer_type = log.layer_types.get(forward.layer)
        facts.append(Fact("loss_spike", (forward, backward), {"layer": forward.layer, "type": layer_type}))
    layer = _first_layer(log, sign)
    if layer is not None:
        facts.append(_layer_fact(log, layer))
        big = log.largest_forward
        huge = (
            big is not None
            and big.value >= HUGE_ACTIVATION
            and big.line < layer.line
            and layer.test_net is None
        )
        if layer.direction == "backward" and layer.test_net is None:
            # after huge values or a loss's huge gradient, the layer only carried them on
            upstream = huge or any(f.id == "loss_spike" for f in facts)
            values = {"forward_lines": log.finite_forward_lines, "upstream": upstream}
            facts.append(Fact("backward_first", (), values))
        if huge:
            facts.append(Fact("huge_activations", (big,), {"value": big.value}))
    if sign.custom is not None:
        facts.append(
            Fact("custom_print", (sign.reading,), {"file": sign.custom.source_file, "key": sign.custom.key})
        )
    facts += _growth_facts(log, line)
    start = _huge_start(log)
    if start is not None:
        facts.append(start)
    if sign.in_test:
        facts.append(Fact("test_only"))
    lrs_before = log.lrs.values_before(line)
    if sign.reading.iteration == 0:
        facts.append(Fact("before_any_update"))
    elif lrs_before and all(v == 0 for v in lrs_before):
        facts.append(Fact("before_any_update", values={"lr_zero": True}))
    elif sign.kind == "nonfinite" and not any(f.id in ("loss_grew", "norms_grew") for f in facts):
        facts += _history_facts(log, sign)  # the plateau is its own history
    if log.excerpt and sign.reading.iteration is None:
        facts.append(Fact("excerpt"))
    if log.cut_lines:
        facts.append(Fact("lines_cut", values={"count": log.cut_lines, "limit": log.line_limit}))
    return facts


def _saturated(log: TrainingLog, sign: Sign) -> Fact | None:
    """The loss at 87.3365: the sign itself, or beside a NaN in the same display or before it."""
    if sign.kind == "saturated":
        what, reading = sign.what, sign.reading
    else:
        found = [
            (what, series.first_saturated)
            for what, series in [("loss", log.losses)]
            + [(f"train output {n}", s) for n, s in log.outputs.items()]
            + [(f"test output {n}", s) for n, s in log.test_outputs.items()]
        ]
        found = [
            (w, r)
            for w, r in found
            if r is not None
            and (r.line < sign.reading.line or r.iteration == sign.reading.iteration is not None)
        ]
        if not found:
            return None
        what, reading = min(found, key=lambda f: f[1].line)
    series = _series(log, what)
    total = len(series) if series is not None else 1
    count = max(1, series.saturated_count) if series is not None else 1
    return Fact("saturated", (reading,), {"what": what, "count": count, "total": total})


def _series(log: TrainingLog, what: str) -> Series | None:
    if what == "loss":
        return log.losses
    for prefix, table in (("train output ", log.outputs), ("test output ", log.test_outputs)):
        if what.startswith(prefix):
            return table.get(what[len(prefix) :])
    return None


def _first_nonfinite(log: TrainingLog) -> tuple[str, Reading] | None:
    """The first non-finite loss or loss output, by line."""
    found = [("loss", log.losses.first_bad())]
    found += [(f"train output {n}", s.first_bad()) for n, s in log.outputs.items() if log.is_loss_output(n)]
    found = [(w, r) for w, r in found if r is not None]
    return min(found, key=lambda f: f[1].line) if found else None


def _first_layer(log: TrainingLog, sign: Sign) -> DebugReading | None:
    """The debug_info line that names the layer: the test net's for a NaN seen only in testing."""
    if sign.in_test:
        return log.first_bad_test_debug
    return log.first_bad_debug


def _layer_fact(log: TrainingLog, layer: DebugReading) -> Fact:
    layer_type = log.layer_types.get(layer.layer)
    source = "net" if layer_type else None
    if layer_type is None:
        layer_type = guess_layer_type(layer.layer)
        source = "name" if layer_type else None
    values = {
        "layer": layer.layer,
        "type": layer_type,
        "type_source": source,
        "loss": layer.layer in log.loss_layers,
        "has_bottoms": layer.layer in log.layers_with_bottoms or not log.layers_with_bottoms,
    }
    return Fact("first_layer", (layer,), values)


def _layer_cause(layer: Fact, before_update: bool) -> str | None:
    """The cause the first bad layer's type points at, as locate decides it for the layer it names."""
    layer_type, reading = layer.values.get("type"), layer.readings[0]
    if not layer_type:
        return None
    infinite = math.isinf(reading.value)
    if layer_type == "Python" and layer.values["loss"] and infinite and reading.direction == "forward":
        return "log0"  # a hand-written loss whose forward made an infinity: -log(0), unclamped
    by_type = cause_for_layer_type(layer_type, layer.values["has_bottoms"])
    if by_type is not None:
        return by_type
    if (
        layer_type in WEIGHTED_LAYER_TYPES
        and reading.direction == "forward"
        and not reading.blob.startswith("param")
    ):
        return "fillers" if before_update else "gradient_explosion"
    return None


# Layer-name words and the type they usually mean (in Caffe's model zoo and forks' nets).
_NAME_TYPES = (
    (("bn", "batchnorm", "batch_norm", "batchnormalization"), "BatchNorm"),
    (("abs", "absval"), "AbsVal"),
    (("scale",), "Scale"),
    (("relu", "prelu", "leaky"), "ReLU"),
    (("pool", "pooling"), "Pooling"),
    (("conv", "convolution", "deconv"), "Convolution"),
    (("fc", "ip", "innerproduct"), "InnerProduct"),
    (("lrn", "norm"), "LRN"),
    (("data", "input"), "Data"),
    (("loss",), "Loss"),
    (("softmax", "prob"), "Softmax"),
    (("power", "sqrt"), "Power"),
)


def guess_layer_type(name: str) -> str | None:
    """The type a layer's name suggests ("conv5_3/bn" -> BatchNorm), from its last telling word; or None."""
    words = [w for w in re.split(r"[/_.\-\s]+|(?<=[a-z])(?=\d)|(?<=\d)(?=[a-z])", name.lower()) if w]
    for word in reversed(words):
        for spellings, layer_type in _NAME_TYPES:
            if word in spellings or any(word.startswith(s) and len(s) > 2 for s in spellings):
                return layer_type
    return None


def _loss_grew(what: str, factor: float, readings) -> Fact:
    """The fact that a loss (or one loss output) grew ``factor`` times over its finite readings."""
    finite = [r for r in readings if r.finite]
    values = {
        "what": what,
        "factor": factor,
        "count": len(finite),
        "start": finite[0].value,
        "end": finite[-1].value,
    }
    return Fact("loss_grew", (finite[0], finite[-1]), values)


def _growth_facts(log: TrainingLog, line: int) -> list[Fact]:
    facts = []
    losses = log.losses.before(line)
    ratio = trend.growth([r.value for r in losses], minimum=2)
    if trend.is_explosion(ratio):
        facts.append(_loss_grew("loss", ratio, losses))
    growths = _output_growths(log, line)
    if growths and len(log.loss_weights) > 1:
        name, factor, readings = growths[0]
        if trend.is_explosion(factor) or facts:
            values = {
                "output": name,
                "name": name,
                "factor": factor,
                "loss_weight": log.loss_weights.get(name),
                "losses": len(log.loss_weights),
            }
            if not facts:  # the total did not cross, one output did: it is the growth
                facts.append(_loss_grew(f"loss output {name}", factor, readings))
            facts.append(Fact("output_grew", (), values))
    norms = log.param_diff_norms.values_before(line)
    norm_ratio = trend.growth(norms)
    if trend.is_explosion(norm_ratio):
        facts.append(Fact("norms_grew", (), {"factor": norm_ratio}))
    bad_norm = log.param_diff_norms.bad_before(line + 1)  # the sign itself when the norm went first
    if bad_norm is not None:
        # Whether that iteration's own loss was finite: then a backward pass made the gradient
        # non-finite; else the forward pass already had, and the gradient only follows it.
        loss = next((r for r in log.losses.kept() if r.iteration == bad_norm.iteration), None)
        loss_finite = loss is not None and loss.finite
        facts.append(
            Fact(
                "norm_nonfinite", (bad_norm,) + ((loss,) if loss_finite else ()), {"loss_finite": loss_finite}
            )
        )
    return facts


def _output_growths(log: TrainingLog, line: int) -> list[tuple[str, float, list[Reading]]]:
    """How much each weighted loss output grew before ``line``, the fastest first."""
    growths = []
    for name, series in log.outputs.items():
        if log.loss_weights.get(name, 0) == 0:
            continue
        readings = series.before(line)
        ratio = trend.growth([r.value for r in readings], minimum=2)
        if ratio is not None:
            growths.append((name, ratio, readings))
    return sorted(growths, key=lambda g: -g[1])


def _huge_start(log: TrainingLog) -> Fact | None:
    """A loss, or one loss output, in the thousands at its first reading."""
    candidates = [("loss", log.losses)] + [
        (f"loss output {n}", s) for n, s in log.outputs.items() if log.is_loss_output(n)
    ]
    for what, series in candidates:
        if len(series) and series[0].finite and abs(series[0].value) >= HUGE_START:
            return Fact("huge_start", (series[0],), {"what": what})
    return None


def _history_facts(log: TrainingLog, sign: Sign) -> list[Fact]:
    """How much of the run before the sign the log shows: enough to call the loss steady, or not."""
    before = [r for r in log.losses.before(sign.reading.line) if r.finite]
    gap = None
    if before and before[-1].iteration is not None and sign.reading.iteration is not None:
        gap = sign.reading.iteration - before[-1].iteration
    ratio = trend.growth([r.value for r in before])
    if ratio is not None and len(before) >= STEADY_READINGS:
        values = {
            "trend": "steady" if ratio >= 0.5 else "falling",
            "factor": ratio,
            "count": len(before),
            "gap": gap,
        }
        # displayed every iteration, an explosion would have shown; every N, it may hide in between
        return [Fact("steady" if gap == 1 else "coarse_display", (sign.reading,), values)]
    if before or sign.what == "loss" or sign.what.startswith("train output"):
        facts = [Fact("sparse_readings", tuple(before[-1:]), {"count": len(before), "gap": gap})]
        if [r.iteration for r in before] == [0] and sign.reading.iteration == 1 and sign.debug is None:
            facts.append(Fact("after_first_update", (before[0],)))
        return facts
    return []


def _metric_nan(log: TrainingLog) -> Fact | None:
    """A non-finite metric output (accuracy...), which is not a NaN of training."""
    found = [
        (f"{phase} output {name}", series.first_bad())
        for phase, table, p in (("train", log.outputs, "Train"), ("test", log.test_outputs, "Test"))
        for name, series in table.items()
        if not log.is_loss_output(name, p)
    ]
    found = [(w, r) for w, r in found if r is not None]
    if not found:
        return None
    what, reading = min(found, key=lambda f: f[1].line)
    return Fact("metric_only", (reading,), {"what": what})


# Step 2: candidates.


def _weigh(facts: list[Fact], log: TrainingLog) -> list[Candidate]:
    ids = {f.id for f in facts}
    out: list[Candidate] = []

    def point(cause_id: str, confidence: str, *fact_ids: str):
        out.append(Candidate(cause_id, confidence, fact_ids))

    if "lr_nonfinite" in ids:
        point("lr_policy", HIGH, "lr_nonfinite")
        return out
    if "loss_spike" in ids:
        # as locate: a loss that sends back a gradient a million times its value divides by ~0
        point("loss_layer", HIGH, "loss_spike")
    layer = _fact(facts, "first_layer")
    layer_cause = None
    if layer is not None:
        layer_cause = _layer_cause(layer, "before_any_update" in ids)
        if layer_cause is not None:
            from_net = layer.values["type_source"] == "net"
            # the type only suggests these: a weighted layer's overflow is its weights' (the fillers or
            # the updates); a Python loss's +inf is log(0) or a division by 0
            suggested = layer_cause in ("fillers", "gradient_explosion", "log0")
            sure = HIGH if from_net and not suggested else MEDIUM
            upstream = ("loss_spike" in ids and layer_cause != "loss_layer") or (
                "huge_activations" in ids and layer_cause not in ("fillers", "gradient_explosion")
            )
            if upstream:
                sure = LOW  # its input was already huge, or a loss's gradient blew the weights up
            point(layer_cause, sure, "first_layer")
            if layer_cause == "log0":
                point("layer_arithmetic", LOW, "first_layer")
    # settings of the printed net that make NaN: at iteration 0 they are the net's own; later, only
    # those that need a particular batch (a constant channel, raw scores <= 0) still explain a NaN
    settings = [f for f in facts if f.id == "net_setting"]
    for setting in settings:
        setting_cause = setting.values["cause_id"]
        later = setting_cause in ("loss_layer", "batchnorm", "float16")
        sure = MEDIUM if "before_any_update" in ids or later else LOW
        if layer_cause is not None and setting_cause != layer_cause:
            sure = LOW  # the log names the layer, and it is another
        point(setting_cause, sure, "net_setting")
    if "python_loss_inf" in ids:
        point("log0", MEDIUM if "before_any_update" in ids else LOW, "python_loss_inf")
        point("layer_arithmetic", LOW, "python_loss_inf")
    backward = _fact(facts, "backward_first")
    if (
        backward is not None
        and layer_cause is None
        and not backward.values["upstream"]
        and not ids & {"loss_grew", "norms_grew"}
    ):
        # finite forward, then a gradient made NaN inside one layer: its own backward arithmetic
        sure = HIGH if backward.values["forward_lines"] else MEDIUM
        point("layer_arithmetic", sure, "first_layer", "backward_first")
        layer_cause = "layer_arithmetic"
    for grown in ("loss_grew", "norms_grew"):
        if grown in ids:
            point("gradient_explosion", HIGH, grown)
    norm = _fact(facts, "norm_nonfinite")
    backward_made_it = norm is not None and norm.values["loss_finite"]
    if backward_made_it and "before_any_update" in ids:
        # a finite loss, a non-finite gradient, no update yet: one layer's backward (which, the
        # norm of all gradients does not say)
        for cause_id in ("loss_layer", "sparsity", "layer_arithmetic"):
            point(cause_id, LOW, "norm_nonfinite", "before_any_update")
    elif backward_made_it:
        point("gradient_explosion", MEDIUM, "norm_nonfinite")
        point("loss_layer", LOW, "norm_nonfinite")
    if "huge_activations" in ids:
        if "before_any_update" in ids:
            point("fillers", MEDIUM, "huge_activations", "before_any_update")
        else:
            point("gradient_explosion", MEDIUM, "huge_activations")
    if "saturated" in ids:
        if "before_any_update" in ids:
            point("fillers", MEDIUM, "saturated", "before_any_update")
            point("bad_input", LOW, "saturated", "before_any_update")
        else:
            point("gradient_explosion", MEDIUM, "saturated")
            point("loss_layer", LOW, "saturated")
            point("bad_input", LOW, "saturated")
    if "huge_start" in ids:
        point("gradient_explosion", MEDIUM, "huge_start")
    if "custom_print" in ids:
        custom = _fact(facts, "custom_print")
        if "loss" in custom.values["file"].lower() or "loss" in custom.values["key"].lower():
            point("loss_layer", MEDIUM, "custom_print")
        point("layer_arithmetic", LOW, "custom_print")
    if "before_any_update" in ids and not backward_made_it:  # a finite forward: not the net, nor its data
        # with a layer named, "before any update" only rules the updates out
        explained = layer_cause or settings or "python_loss_inf" in ids
        point("initialization", LOW if explained else MEDIUM, "before_any_update")
        point("fillers", LOW, "before_any_update")
        point("bad_input", LOW, "before_any_update")
    if "test_only" in ids:
        point("bad_input", MEDIUM, "test_only")
        point("loss_layer", LOW, "test_only")
    if "steady" in ids:
        point("bad_input", MEDIUM, "steady")
        point("loss_layer", LOW, "steady")
        point("gradient_explosion", LOW, "steady")
    if "after_first_update" in ids:
        # the one update between a finite loss and the NaN carried the first backward's gradient
        for cause_id in ("loss_layer", "sparsity", "layer_arithmetic"):
            point(cause_id, LOW, "after_first_update")
    thin = ids & {"sparse_readings", "coarse_display"}
    if thin or not out:
        because = tuple(sorted(thin))
        for cause_id in ("gradient_explosion", "bad_input", "loss_layer"):
            point(cause_id, LOW, *because)
    return out


# Step 3: what to collect next.


def _next_steps(log: TrainingLog, sign: Sign, facts: list[Fact], candidates: list[Candidate]) -> list[str]:
    ids = {f.id for f in facts}
    causes = [c.cause_id for c in candidates]
    sure = candidates[0].confidence == HIGH
    steps = []
    at = sign.reading.iteration
    snapshot = "the last snapshot" + (f" before iteration {at}" if at else "")
    if not sure:
        steps.append(
            f"caffe-nan locate SOLVER --weights <{snapshot}>.caffemodel: replays training to the first "
            "NaN/Inf and names the layer, the batch and the cause"
        )
    if not log.debug_lines and not sure:
        steps.append(
            "add debug_info: true to the solver: its [Forward]/[Backward] lines name the first bad layer"
        )
    gap = next((f.values.get("gap") for f in facts if f.id in ("sparse_readings", "coarse_display")), None)
    display = log.solver.get("display")
    every_iteration = display == "1" or (display is None and gap == 1)
    if ("sparse_readings" in ids or (gap or 0) > 1) and not sure and not every_iteration:
        shown = (
            f" (now {display})"
            if display
            else f" (the log shows one reading every {gap} iterations)"
            if gap
            else ""
        )
        steps.append(
            f"a smaller display{shown}, 1 near the NaN: an explosion inside the interval shows as growth"
        )
    if "bad_input" in causes[:2]:
        steps.append("caffe-nan scan SOLVER: reads every record of the data layers and names the bad ones")
    if causes[0] in ("fillers", "initialization", "pooling_stride", "batchnorm", "lr_policy"):
        steps.append("lint-prototxt SOLVER NET: fillers, lr_policy parameters and layer settings")
    return steps
