"""Turn what a training log says into the probable cause of its first NaN.

The log cannot be re-run, so the doctor reasons from order and history the
way an experienced Caffe user does: a non-finite learning rate is the
schedule's fault; a loss that climbed by orders of magnitude is an explosion;
a steady loss that turns NaN at once is a bad batch or a loss layer's
log(0); NaN before any update is the net or its data; debug_info lines name
the layer. The rules are ordered; the first that applies wins, and the
evidence it used goes into the verdict.
"""

from __future__ import annotations

import math

from caffe_nanlayers.diagnose import trend
from caffe_nanlayers.diagnose.caffe_log import Reading, Series, TrainingLog
from caffe_nanlayers.diagnose.causes import cause, cause_for_layer_type
from caffe_nanlayers.diagnose.diagnosis import Diagnosis
from caffe_nanlayers.lint.lr_schedule import REQUIRED


def diagnose(log: TrainingLog, source: str) -> Diagnosis:
    """The verdict on a parsed log."""
    first = _first_nonfinite(log)
    details = {"lines": log.lines, "recognized_lines": log.recognized, "first": None, "first_layer": None}
    if log.losses:
        details["iterations"] = [log.losses[0].iteration, log.losses[-1].iteration]
    if first is None:
        last = log.losses[-1] if log.losses else None
        summary = "no NaN/Inf in the log"
        if last is not None:
            summary += f" (last loss {last.value:.6g} at iteration {last.iteration})"
        return Diagnosis("doctor", source, False, summary, details=details)

    what, reading = first
    details["first"] = {"what": what, **reading.as_dict()}
    layer = _first_bad_layer(log, what)
    if layer is not None:
        details["first_layer"] = {**layer.as_dict(), "type": log.layer_types.get(layer.layer)}
    diagnosis = Diagnosis(
        "doctor",
        source,
        True,
        f"first NaN/Inf at iteration {reading.iteration}: {what} = {reading.text} (line {reading.line})",
        iteration=reading.iteration,
        details=details,
    )
    _classify(log, what, reading, diagnosis)
    return diagnosis


def _first_nonfinite(log: TrainingLog) -> tuple[str, Reading] | None:
    """The non-finite train value printed first (by line): loss, an output, or lr."""
    candidates: list[tuple[str, Reading]] = []
    for what, readings in [("loss", log.losses), ("lr", log.lrs)] + [
        (f"train output {name}", r) for name, r in log.outputs.items()
    ]:
        bad = log.first_bad(readings)
        if bad is not None:
            candidates.append((what, bad))
    if not candidates:
        for name, readings in log.test_outputs.items():
            bad = log.first_bad(readings)
            if bad is not None:
                candidates.append((f"test output {name}", bad))
    return min(candidates, key=lambda c: c[1].line) if candidates else None


def _first_bad_layer(log: TrainingLog, what: str):
    """The debug_info line that names the layer: the test net's for a NaN seen only in testing.

    A test net prints its own debug lines (forward only) when debug_info is on; they never
    explain a training NaN, and a training NaN is never found in them.
    """
    return log.first_bad_test_debug if what.startswith("test output") else log.first_bad_debug


def _before(readings: Series, line: int):
    return readings.values_before(line)


def _classify(log: TrainingLog, what: str, first: Reading, diagnosis: Diagnosis):
    evidence = diagnosis.evidence
    layer = _first_bad_layer(log, what)
    layer_type = log.layer_types.get(layer.layer) if layer else None
    if layer is not None:
        kind = f" ({layer_type})" if layer_type else ""
        where = (
            f"test net #{layer.test_net} at iteration {layer.iteration}"
            if layer.test_net is not None
            else f"iteration {layer.iteration}"
        )
        evidence.append(
            f"debug_info: first non-finite {layer.direction} value in layer {layer.layer}{kind}, "
            f"{layer.blob} = {layer.text} ({where}, line {layer.line})"
        )

    if what == "lr":
        evidence.append(
            f"Iteration {first.iteration}, lr = {first.text} (line {first.line}): before any NaN loss"
        )
        policy = log.solver.get("lr_policy")
        if policy:
            missing = _missing_lr_params(policy, log.solver)
            note = f"; the solver printed at start-up has no {', '.join(missing)}" if missing else ""
            evidence.append(f'lr_policy: "{policy}"{note}')
        diagnosis.cause = cause("lr_policy")
        return

    losses_before = _before(log.losses, first.line)
    growths = _output_growths(log, first.line)
    grown = [(name, factor) for name, factor in growths if factor >= trend.EXPLOSION_FACTOR]
    ratio = trend.growth(losses_before)
    diff_norms = _before(log.param_diff_norms, first.line)
    norm_ratio = trend.growth(diff_norms)
    bad_norm = log.param_diff_norms.bad_before(first.line)
    saturated = trend.saturated_softmax(losses_before)
    loss_grew = ratio is not None and ratio >= trend.EXPLOSION_FACTOR
    norms_grew = norm_ratio is not None and norm_ratio >= trend.EXPLOSION_FACTOR
    if loss_grew or grown or norms_grew or bad_norm or saturated:
        if ratio is not None:
            evidence.append(
                f"loss grew {ratio:.3g}x over the {len(losses_before)} iterations logged before "
                f"(from {losses_before[0]:.4g} to {_last_finite(losses_before):.4g})"
            )
        if norms_grew:
            evidence.append(f"debug_info: L2 norm of all gradients grew {norm_ratio:.3g}x")
        if bad_norm is not None:
            evidence.append(
                f"debug_info: L2 norm of all gradients = {bad_norm.text} at iteration {bad_norm.iteration} "
                f"(line {bad_norm.line}), before the loss"
            )
        if saturated:
            evidence.append(
                f"loss pinned at {trend.SATURATED_SOFTMAX_LOSS} = -log(FLT_MIN): the softmax saturated"
            )
        if growths and len(log.loss_weights) > 1:
            # The total may cross the threshold while no output does alone: name the one that grew most.
            name, factor = growths[0]
            weight = log.loss_weights.get(name)
            evidence.append(
                f"of the {len(log.loss_weights)} loss outputs, {name} grew most ({factor:.3g}x): "
                f"lower its loss_weight (now {weight:g})"
            )
            diagnosis.details["grew"] = {"output": name, "factor": factor, "loss_weight": weight}
        diagnosis.cause = cause("gradient_explosion")
        return

    if layer_type and cause_for_layer_type(layer_type):
        diagnosis.cause = cause(cause_for_layer_type(layer_type))
        return
    lrs_before = _before(log.lrs, first.line)
    if first.iteration == 0 or (lrs_before and all(v == 0 for v in lrs_before)):
        why = "at iteration 0, before any update" if first.iteration == 0 else "with lr = 0 until then"
        evidence.append(f"the first value is already non-finite {why}")
        diagnosis.cause = cause("initialization")
        diagnosis.also_possible += [cause("fillers"), cause("bad_input")]
        return

    if ratio is not None:
        trend_word = "steady" if ratio >= 0.5 else "falling"
        evidence.append(
            f"loss {trend_word} before (x{ratio:.3g} over {len(losses_before)} iterations), then "
            f"{first.text} at once"
        )
    else:
        evidence.append(f"only {len(losses_before)} finite loss values before the NaN: no trend to read")
    if what.startswith("test output"):
        evidence.append("training stayed finite: only the test net went bad (TEST data or TEST-only layers)")
    diagnosis.cause = cause("bad_input")
    diagnosis.also_possible.append(cause("loss_layer"))


def _output_growths(log: TrainingLog, line: int) -> list[tuple[str, float]]:
    """How much each loss output (weighted) grew before ``line``, the fastest first."""
    growths = []
    for name, readings in log.outputs.items():
        if log.loss_weights.get(name, 0) == 0:
            continue
        ratio = trend.growth(_before(readings, line))
        if ratio is not None:
            growths.append((name, ratio))
    return sorted(growths, key=lambda g: -g[1])


def _last_finite(values: list[float]) -> float:
    return next(v for v in reversed(values) if math.isfinite(v))


def _missing_lr_params(policy: str, solver: dict[str, str]) -> list[str]:
    return [name for name in REQUIRED.get(policy, ()) if name not in solver]
