"""Train step by step until the first NaN/Inf, keep the last good weights, and explain it.

``caffe train`` notices a NaN only when it prints the loss, long after the
layer that made it, and by then the weights are NaN too. Here the solver
takes one step at a time; a solver callback, run after forward/backward and
before the update, reads the loss and the raw gradients and copies the
weights about to be updated. At the first non-finite value (lr, loss,
gradient, or weights after the update) training stops, the copy is saved as
a ``.caffemodel``, and, if forward or backward went bad, the iteration is
replayed with those weights and the same batch through an instrumented net
(``replay``) to name the producing layer. The cause is then picked from the
catalogue using what was watched: lr first, then a loss layer that sent back
a gradient far larger than its loss (a division by a probability clamped near
0), then the growth of the gradient norms and the loss, then weights that
only the update made non-finite (lr × gradient overflowed), then the
producer's layer type (a Python loss that made an infinity: log(0)); an
ordinary layer that overflows after an update points at the weights the
updates made (gradient explosion), at iteration 0 at the fillers.

This runs in a child process (``isolate``): a Caffe CHECK that fails while
building or stepping the user's net becomes a one-line error.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from caffe_nanlayers.atomic import atomic_path, write_atomic
from caffe_nanlayers.diagnose import trend
from caffe_nanlayers.diagnose.causes import cause, cause_for_layer_type
from caffe_nanlayers.diagnose.diagnosis import Diagnosis
from caffe_nanlayers.diagnose.instrument import instrument_net
from caffe_nanlayers.diagnose.replay import Producer, replay
from caffe_nanlayers.errors import NonFiniteError, UserError, reading, refuse_to_overwrite, writing
from caffe_nanlayers.finite import all_finite, nonfinite_stats
from caffe_nanlayers.isolate import UserPythonLayers
from caffe_nanlayers.lr_schedule import Schedule
from caffe_nanlayers.proto_io import caffe_pb2, net_to_text, read_net_or_solver
from caffe_nanlayers.scan.scan_net import layers_in_phase
from caffe_nanlayers.scan.sources import check_for_training

DEFAULT_MAX_ITER = 1000
# What locate writes in --out besides the dumps and last_good_iter<N>.caffemodel.
WRITTEN_FILES = ("locate_solver.prototxt", "replay_net.prototxt", "report.json")
LAST_GOOD = re.compile(r"last_good_iter\d+\.caffemodel")
# A loss sends back a gradient about as large as the loss itself (SoftmaxWithLoss: at most 1;
# EuclideanLoss: about its square root). One a million times larger is a loss dividing by an
# input clamped near 0: MultinomialLogisticLoss and InfogainLoss send 1e20 / batch for p <= 1e-20.
LOSS_GRADIENT_RATIO = 1e6


@dataclasses.dataclass
class LocateOptions:
    solver: str
    out_dir: str
    weights: str | None = None
    max_iter: int | None = None
    # Resume from this .solverstate (weights, history, iteration), as caffe train -snapshot does.
    solverstate: str | None = None
    # Called as prepare(report, solver, resolved) before the first step (watch puts the data where it was).
    prepare: Callable | None = None


def _schedule(solver) -> Schedule:
    return Schedule(
        policy=solver.lr_policy,
        base_lr=solver.base_lr,
        gamma=solver.gamma,
        power=solver.power,
        stepsize=solver.stepsize,
        stepvalues=list(solver.stepvalue),
        max_iter=solver.max_iter,
    )


def _working_solver(resolved, out_dir: Path) -> Path:
    """The user's solver with the net inlined, no tests, snapshots or display: ours to step."""
    pb2 = caffe_pb2()
    solver = pb2.SolverParameter()
    solver.CopyFrom(resolved.solver)
    for field in (
        "net",
        "train_net",
        "train_net_param",
        "test_net",
        "test_net_param",
        "test_iter",
        "test_state",
    ):
        solver.ClearField(field)
    solver.net_param.CopyFrom(resolved.net)
    solver.test_interval = 0
    solver.test_initialization = False
    solver.snapshot = 0
    solver.snapshot_after_train = False
    solver.display = 0
    solver.debug_info = False
    solver.solver_mode = pb2.SolverParameter.CPU
    path = out_dir / "locate_solver.prototxt"
    write_atomic(path, net_to_text(solver))
    return path


class _Watch:
    """What the solver callback saw in the current iteration (before the update)."""

    def __init__(self, net):
        self.net = net
        names = list(net._blob_names)
        weights = list(net._blob_loss_weights)
        self.loss_outputs = [n for n in net.outputs if weights[names.index(n)] != 0]
        self.params = [(name, i, blob) for name, blobs in net.params.items() for i, blob in enumerate(blobs)]
        self.last_good = [np.array(blob.data, copy=True) for _, _, blob in self.params]
        self.losses: dict[str, float] = {}
        self.bad_gradients: list[tuple[str, object]] = []
        self.grad_norms: list[float] = []
        self.first_norms: dict[str, float] = {}
        self.last_norms: dict[str, float] = {}
        self.loss_layers = self._loss_layers(names, weights)
        self.loss_spike: dict | None = None  # the first gradient a loss sent back far beyond its loss
        self.iteration = 0  # the solver's iteration being stepped, set by the loop

    def _loss_layers(self, names, weights) -> dict[str, tuple[str, list[str], list[tuple[str, float]]]]:
        """name -> (type, bottom blobs, [(loss top, loss weight)]) of the layers that make a loss."""
        layers = {}
        for i, layer in enumerate(self.net.layers):
            tops = [(names[t], weights[t]) for t in self.net._top_ids(i) if weights[t] != 0]
            if tops:
                bottoms = [names[b] for b in self.net._bottom_ids(i)]
                layers[self.net._layer_names[i]] = (layer.type, bottoms, tops)
        return layers

    def _watch_loss_gradients(self):
        for name, (layer_type, bottoms, tops) in self.loss_layers.items():
            loss = sum(abs(w * float(np.sum(self.net.blobs[t].data))) for t, w in tops)
            for bottom in bottoms:
                diff = self.net.blobs[bottom].diff
                if diff.size == 0 or not all_finite(diff):
                    continue
                largest = max(float(diff.max()), -float(diff.min()))
                if largest > LOSS_GRADIENT_RATIO * max(1.0, loss):
                    self.loss_spike = {
                        "layer": name,
                        "type": layer_type,
                        "bottom": bottom,
                        "gradient": largest,
                        "loss": loss,
                        "iteration": self.iteration,
                    }
                    return

    def on_start(self):
        pass

    def on_gradients_ready(self):
        self.losses = {n: float(np.sum(self.net.blobs[n].data)) for n in self.loss_outputs}
        self.bad_gradients = []
        total = 0.0
        for k, (name, i, blob) in enumerate(self.params):
            np.copyto(self.last_good[k], blob.data)  # the weights this update starts from
            diff = blob.diff
            label = f"{name}[{i}]"
            if not all_finite(diff):
                self.bad_gradients.append((label, nonfinite_stats(diff)))
                continue
            wide = diff.ravel().astype(
                np.float64
            )  # float64 on both sides: a mixed dot skips BLAS (30x slower)
            norm = math.sqrt(float(np.dot(wide, wide)))
            total += norm * norm
            self.first_norms.setdefault(label, norm)
            self.last_norms[label] = norm
        self.grad_norms.append(math.sqrt(total) if not self.bad_gradients else math.inf)
        if self.loss_spike is None:
            self._watch_loss_gradients()


@dataclasses.dataclass
class Observed:
    """What went non-finite at the iteration locate stopped at, as facts.

    The decision reads these fields; the sentences of ``lines`` are only how
    the report words them, so rewording one never changes a diagnosis.
    """

    lr: float | None = None
    lr_division_by_zero: bool = False
    check_error: NonFiniteError | None = None
    bad_losses: dict[str, float] = dataclasses.field(default_factory=dict)
    bad_gradients: list[tuple[str, object]] = dataclasses.field(default_factory=list)
    bad_params: list[tuple[str, object]] = dataclasses.field(default_factory=list)

    @property
    def lr_bad(self) -> bool:
        return self.lr is not None and not math.isfinite(self.lr)

    def __bool__(self) -> bool:
        return bool(
            self.lr_division_by_zero
            or self.check_error
            or self.lr_bad
            or self.bad_losses
            or self.bad_gradients
            or self.bad_params
        )

    @property
    def in_forward_or_backward(self) -> bool:
        """The net itself made the value (a replay can name the layer), not the update."""
        return bool(self.check_error is not None or self.bad_losses or self.bad_gradients)

    @property
    def only_in_update(self) -> bool:
        """lr, loss and gradients finite, the weights not after the update: the update overflowed."""
        return bool(self.bad_params) and not self.in_forward_or_backward

    def lines(self) -> list[str]:
        if self.lr_division_by_zero:
            return ["lr: integer division by zero (stepsize 0), Caffe would die with SIGFPE"]
        if self.check_error is not None:
            error = self.check_error
            return [f"the net's own check {error.layer} fired ({error.direction})"]
        lines = []
        if self.lr_bad:
            lines.append(f"lr = {self.lr}")
        if self.bad_losses:
            lines.append("loss " + ", ".join(f"{n} = {v}" for n, v in self.bad_losses.items()))
        if self.bad_gradients:
            lines.append(
                "gradients non-finite: "
                + "; ".join(f"{p}: {s.describe()}" for p, s in self.bad_gradients[:3])
            )
        if self.bad_params:
            lines.append(
                "weights after the update non-finite: " + ", ".join(p for p, _ in self.bad_params[:5])
            )
        return lines


def _bad_params(watch: _Watch) -> list[tuple[str, object]]:
    return [
        (f"{name}[{i}]", nonfinite_stats(blob.data))
        for name, i, blob in watch.params
        if not all_finite(blob.data)
    ]


def _batch(net) -> dict[str, np.ndarray]:
    """The tops of the layers that read no blob: the batch of the last forward pass."""
    names = list(net._blob_names)
    batch = {}
    for i in range(len(net.layers)):
        if not list(net._bottom_ids(i)) and net.layers[i].type != "Parameter":
            for top in net._top_ids(i):
                batch[names[top]] = np.array(net._blobs[top].data, copy=True)
    return batch


def locate(report, options: LocateOptions) -> Diagnosis:
    """Run in a child process by ``isolate.run_isolated``; ``report`` sends progress lines."""
    from caffe_nanlayers.caffe_net import import_caffe

    caffe = import_caffe()
    resolved = read_net_or_solver(options.solver)
    if resolved.solver is None:
        raise UserError(
            f"{options.solver}: this is a net, locate needs a solver prototxt (base_lr, lr_policy...)"
        )
    out_dir = Path(options.out_dir)
    inputs = (options.solver, resolved.path, options.weights)
    for name in WRITTEN_FILES:
        refuse_to_overwrite(out_dir / name, inputs, "--out")
    if options.weights and LAST_GOOD.fullmatch(Path(options.weights).name):
        # Started from a previous run's weights: this run may save its own under the same name.
        refuse_to_overwrite(out_dir, (Path(options.weights).parent,), "--out (it holds the --weights file)")
    pb2 = caffe_pb2()
    state = resolved.solver.train_state if resolved.solver.HasField("train_state") else None
    with tempfile.TemporaryDirectory(prefix="nanlayers-locate-") as views:
        # The datasets are checked first (a missing one is one line naming it) and read through
        # private views: Caffe's lock files never land in them.
        check_for_training(layers_in_phase(resolved.net, pb2.TRAIN, state), Path(views))
        with writing(out_dir, "the report and the last good weights (--out)"):
            out_dir.mkdir(parents=True, exist_ok=True)
            solver_path = _working_solver(resolved, out_dir)
        # What the user's Python layers raise (a module that does not import, an error in their
        # setup or forward) is their mistake: one line naming the layer, not a traceback.
        with UserPythonLayers(resolved.net.layer) as python_layers:
            return _train(report, caffe, options, resolved, out_dir, solver_path, python_layers)


def _train(report, caffe, options, resolved, out_dir, solver_path, python_layers) -> Diagnosis:
    solver = caffe.get_solver(str(solver_path))
    if options.weights:
        with reading(options.weights, "a .caffemodel"):
            Path(options.weights).open("rb").close()
        # If Caffe dies now (not a NetParameter, another net's shapes), the weights are what it refused.
        report(("stage", f"{options.weights}: cannot load these weights into the net of {options.solver}"))
        solver.net.copy_from(str(options.weights))
        report(("stage", None))
    if options.solverstate:
        with reading(options.solverstate, "a .solverstate"):
            Path(options.solverstate).open("rb").close()
        report(
            ("stage", f"{options.solverstate}: cannot restore this state into the solver of {options.solver}")
        )
        solver.restore(str(options.solverstate))
        report(("stage", None))
    if options.prepare is not None:
        options.prepare(report, solver, resolved)
    net = solver.net
    watch = _Watch(net)
    solver.add_callback(watch.on_start, watch.on_gradients_ready)
    schedule = _schedule(resolved.solver)
    limit = options.max_iter or resolved.solver.max_iter or DEFAULT_MAX_ITER
    loss_history: list[float] = []
    observed = Observed()
    lr = None
    start = solver.iter
    while solver.iter < start + limit:
        iteration = watch.iteration = solver.iter
        try:
            lr = schedule.rate(iteration)
        except ZeroDivisionError:
            lr = math.nan
            observed = Observed(lr=lr, lr_division_by_zero=True)
            break
        except ValueError:
            lr = None  # a policy we do not compute: Caffe will say what is wrong with it
        try:
            solver.step(1)
        except NonFiniteError as error:  # the user's own CheckFiniteLayer fired
            observed = Observed(lr=lr, check_error=error)
            break
        except UserError:
            raise
        except Exception as exc:
            blamed = python_layers.blame(exc)
            if blamed is None:
                raise  # our bug: a traceback
            raise UserError(f"training stopped at iteration {iteration}: {blamed}") from None
        if iteration % 100 == 0:
            report(f"iteration {iteration}: loss {sum(watch.losses.values()):.6g}")
        observed = Observed(
            lr=lr,
            bad_losses={n: v for n, v in watch.losses.items() if not math.isfinite(v)},
            bad_gradients=list(watch.bad_gradients),
            bad_params=_bad_params(watch),
        )
        if observed:
            break
        loss_history.append(sum(watch.losses.values()))
    else:
        return _clean(options, resolved, solver.iter - start, loss_history)
    if observed.check_error is not None:  # raised inside forward/backward: the weights were not updated
        for (_, _, blob), good in zip(watch.params, watch.last_good):
            np.copyto(good, blob.data)
    return _diagnose(caffe, options, resolved, watch, out_dir, iteration, observed, loss_history)


def _clean(options, resolved, steps: int, losses: list[float]) -> Diagnosis:
    last = f", last loss {losses[-1]:.6g}" if losses else ""
    return Diagnosis(
        "locate",
        options.solver,
        False,
        f"no NaN/Inf in {steps} iterations{last}",
        details={"iterations_run": steps, "loss_growth": trend.growth(losses)},
    )


def _save_weights(net, watch: _Watch, path: Path) -> Path:
    for (_, _, blob), good in zip(watch.params, watch.last_good):
        blob.data[...] = good
    with atomic_path(path, suffix=".caffemodel") as tmp:
        net.save(tmp)
    return path


@dataclasses.dataclass
class Facts:
    """Everything the cause is decided on, and the report worded from."""

    iteration: int
    observed: Observed
    producer: Producer | None
    replay_stayed_finite: bool
    grad_norms: list[float]
    grad_growth: float | None
    losses: list[float]
    loss_growth: float | None
    exploded: list[tuple[str, float]]  # (param, growth of its gradient norm), largest first
    last_norms: dict[str, float]
    loss_spike: dict | None
    loss_layers: set[str]
    momentum: float

    def cause_id(self) -> str:
        return choose_cause(
            self.observed.lr,
            self.grad_growth,
            self.loss_growth,
            self.producer,
            self.iteration,
            loss_spike=self.loss_spike,
            loss_layers=self.loss_layers,
            update_overflow=self.observed.only_in_update,
        )


def _diagnose(caffe, options, resolved, watch, out_dir, iteration, observed: Observed, losses) -> Diagnosis:
    weights_path = _save_weights(watch.net, watch, out_dir / f"last_good_iter{iteration}.caffemodel")
    saved = {"weights": str(weights_path)}
    producer = None
    if observed.in_forward_or_backward:
        producer = _replay(caffe, resolved, watch.net, out_dir, weights_path, saved)
    facts = _facts(resolved, watch, iteration, observed, losses, producer)
    saved["report"] = str(out_dir / "report.json")
    diagnosis = Diagnosis(
        "locate",
        options.solver,
        True,
        _summary(facts),
        iteration=iteration,
        cause=cause(facts.cause_id()),
        evidence=_evidence(facts, saved),
    )
    diagnosis.details = _details(facts, saved)
    write_atomic(saved["report"], diagnosis.to_json() + "\n")
    return diagnosis


def _replay(caffe, resolved, net, out_dir: Path, weights_path: Path, saved: dict) -> Producer | None:
    """Replay the iteration with the last good weights and its batch; name the producing layer."""
    instrumented = instrument_net(resolved.net, mode="dump", dump_dir=str(out_dir / "dumps"))
    replay_path = out_dir / "replay_net.prototxt"
    outcome = replay(caffe, instrumented, resolved.net, _batch(net), str(weights_path), str(replay_path))
    saved["replay_net"] = str(replay_path)
    if outcome.producer is not None and outcome.producer.dump_path:
        saved["dump"] = outcome.producer.dump_path
    return outcome.producer


def _facts(resolved, watch: _Watch, iteration: int, observed: Observed, losses, producer) -> Facts:
    exploded = [
        (label, watch.last_norms[label] / first)
        for label, first in watch.first_norms.items()
        if first > 0 and trend.is_explosion(watch.last_norms.get(label, 0) / first)
    ]
    exploded.sort(key=lambda e: -e[1])
    return Facts(
        iteration=iteration,
        observed=observed,
        producer=producer,
        replay_stayed_finite=observed.in_forward_or_backward and producer is None,
        grad_norms=list(watch.grad_norms),
        # The norm of the iteration that went bad is inf: the growth is read over the ones before.
        grad_growth=trend.growth(watch.grad_norms[:-1] if observed else watch.grad_norms),
        losses=losses,
        loss_growth=trend.growth(losses),
        exploded=exploded,
        last_norms=dict(watch.last_norms),
        loss_spike=watch.loss_spike,
        loss_layers=set(watch.loss_layers),
        momentum=resolved.solver.momentum,
    )


def _summary(facts: Facts) -> str:
    lr = facts.observed.lr
    lr_text = "unknown" if lr is None else f"{lr:g}"
    summary = f"first NaN/Inf at iteration {facts.iteration} (lr {lr_text})"
    if facts.producer is not None:
        producer = facts.producer
        summary += f": produced by layer {producer.layer} ({producer.layer_type}), {producer.direction}"
    return summary


def _evidence(facts: Facts, saved: dict) -> list[str]:
    iteration, lr = facts.iteration, facts.observed.lr
    evidence = [f"observed at iteration {iteration}: {o}" for o in facts.observed.lines()]
    if facts.producer is not None:
        evidence.append(
            f"replay of iteration {iteration} (last good weights, same batch): "
            "first non-finite value made by " + facts.producer.describe()
        )
    if facts.replay_stayed_finite:
        evidence.append(
            "the replay with the last good weights and the same batch stayed finite: the NaN depends on "
            "more than those (Dropout's random mask, a stateful Python layer, iter_size > 1)"
        )
    if facts.observed.only_in_update and facts.last_norms and lr is not None and math.isfinite(lr):
        label, norm = max(facts.last_norms.items(), key=lambda item: item[1])
        evidence.append(
            f"loss and gradients finite at iteration {iteration}, weights not after the update: "
            f"lr {lr:g} × the gradient of {label} (L2 norm {norm:.4g}) = {lr * norm:.3g}"
            + (f", with momentum {facts.momentum:g}" if facts.momentum else "")
            + "; float32 ends at 3.4e38"
        )
    spike = facts.loss_spike
    if spike is not None:
        evidence.append(
            f"at iteration {spike['iteration']} loss layer {spike['layer']} "
            f"({spike['type']}) sent back a gradient of {spike['gradient']:.3g} to {spike['bottom']} while "
            f"its loss was {spike['loss']:.4g}: it divides by an input clamped near 0"
        )
    if facts.grad_growth is not None and len(facts.grad_norms) > 1:
        evidence.append(
            f"gradient L2 norm over the {len(facts.grad_norms) - 1} iterations before: "
            f"grew {facts.grad_growth:.3g}x "
            f"(from {facts.grad_norms[0]:.4g} to {trend.last_finite(facts.grad_norms):.4g})"
        )
    if facts.loss_growth is not None:
        losses = facts.losses
        evidence.append(
            f"loss before: grew {facts.loss_growth:.3g}x (from {losses[0]:.4g} to {losses[-1]:.4g})"
        )
    for label, factor in facts.exploded[:3]:
        evidence.append(f"gradient norm of {label} grew {factor:.3g}x")
    written = [f"the last good weights {saved['weights']}"]
    if "replay_net" in saved:
        written.append(f"the replay net {saved['replay_net']}")
    if "dump" in saved:
        written.append(f"the offending blob {saved['dump']}")
    evidence.append(f"saved {', '.join(written)}; this report as JSON in {saved['report']}")
    return evidence


def _details(facts: Facts, saved: dict) -> dict:
    lr = facts.observed.lr
    return {
        "lr": lr if lr is not None and math.isfinite(lr) else (None if lr is None else str(lr)),
        "observed": facts.observed.lines(),
        "producer": facts.producer.as_dict() if facts.producer else None,
        "norms": {
            "gradient_l2": [n if math.isfinite(n) else str(n) for n in facts.grad_norms[-20:]],
            "gradient_growth": facts.grad_growth,
            "loss_growth": facts.loss_growth,
            "exploded_params": [{"param": p, "growth": g} for p, g in facts.exploded[:10]],
        },
        "saved": saved,
        "loss_gradient_spike": facts.loss_spike,
    }


def choose_cause(
    lr,
    grad_growth,
    loss_growth,
    producer: Producer | None,
    iteration: int,
    *,
    loss_spike: dict | None = None,
    loss_layers: set[str] = frozenset(),
    update_overflow: bool = False,
) -> str:
    """The catalogue id for what locate observed (see the module docstring for the order).

    ``loss_spike``: a loss layer sent back a gradient far larger than its loss before the NaN
    (the weights it blew up are only where the NaN showed). ``loss_layers``: the names of the
    layers that make a loss; a Python one that produced an infinity took log(0) or divided by 0.
    ``update_overflow``: only the weights went non-finite, in the update (lr, loss and gradients
    finite): lr × gradient overflowed, whatever the iteration.
    """
    if lr is not None and not math.isfinite(lr):
        return "lr_policy"
    if loss_spike is not None:
        return "loss_layer"
    if trend.is_explosion(grad_growth) or trend.is_explosion(loss_growth):
        return "gradient_explosion"
    if update_overflow:
        return "update_overflow"
    if producer is not None:
        stats = producer.stats
        infinite = stats is not None and stats.posinf + stats.neginf > 0
        if producer.layer_type == "Python" and producer.layer in loss_layers and infinite:
            return "log0"
        by_type = cause_for_layer_type(producer.layer_type, producer.has_bottoms)
        if by_type:
            return by_type
        if producer.layer_type == "input":
            return "bad_input"
        # After an update, an ordinary layer that turns finite inputs into Inf does so with the
        # weights the updates made: they grew too large in one or a few steps (lr far too high).
        return "fillers" if iteration == 0 else "gradient_explosion"
    return "initialization" if iteration == 0 else "bad_input"
