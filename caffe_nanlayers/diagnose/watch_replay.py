"""After a watched run went NaN: replay it from its last good snapshot with ``locate``'s machinery.

Training again from the start up to iteration 50,000 takes as long as the
run did; the snapshots Caffe wrote on the way make that unnecessary. The
replay restores the newest complete snapshot taken at or before the first
sign (weights, solver history and iteration, from its ``.solverstate``) and
steps with ``locate`` to the NaN. What a snapshot does not hold is the data
layers' read position: a restored Caffe reads its LMDB, LevelDB or HDF5 list
from the first record again, while the run had consumed ``iterations x
batch_size x iter_size`` records. So before the first step each data layer
is advanced, batch by batch, to where the run had it; as the readers wrap
record by record, that is a count modulo the dataset's cycle in batches.

Where the order cannot be reproduced (random skips, shuffling, random
crops and mirrors, a Python data layer, initial weights drawn without a
``random_seed``) the replay runs anyway and says why it is approximate.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from caffe_nanlayers.diagnose.watch_log import Snapshot


@dataclasses.dataclass(frozen=True)
class ReplayStart:
    """Where the replay starts: a snapshot, the run's --weights or resumed state, or fresh fillers."""

    iteration: int
    solverstate: str | None = None
    weights: str | None = None
    kind: str = "snapshot"  # "snapshot", "resumed" (the run's -snapshot), "weights", "initial"

    def describe(self) -> str:
        if self.kind == "snapshot":
            return f"snapshot {self.solverstate} (iteration {self.iteration})"
        if self.kind == "resumed":
            return f"the state the run resumed from, {self.solverstate} (iteration {self.iteration})"
        if self.kind == "weights":
            return f"the run's initial weights {self.weights} (iteration 0)"
        return "freshly initialised weights (iteration 0: no snapshot before the NaN)"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def choose_start(
    snapshots: list[Snapshot],
    nan_iteration: int,
    usable=lambda snapshot: True,
    resumed: ReplayStart | None = None,
    weights: str | None = None,
) -> tuple[ReplayStart, list[str]]:
    """The newest complete snapshot at or before the NaN whose files are usable; notes on those passed over.

    A snapshot at iteration s holds the weights iteration s started from, so s == the NaN's
    iteration is still good when the NaN was seen in that iteration's forward or backward pass.
    """
    notes = []
    for snapshot in sorted(snapshots, key=lambda s: -s.iteration):
        if snapshot.iteration > nan_iteration:
            notes.append(
                f"{snapshot.model}: written after the first sign (iteration {nan_iteration}), not used"
            )
            continue
        if not snapshot.complete or snapshot.state is None:
            notes.append(f"{snapshot.model}: Caffe had not finished writing this snapshot, not used")
            continue
        why_not = usable(snapshot)
        if why_not is not True:
            notes.append(f"{snapshot.model}: {why_not}, not used")
            continue
        return ReplayStart(snapshot.iteration, snapshot.state, None, "snapshot"), notes
    if resumed is not None and resumed.iteration <= nan_iteration:
        return resumed, notes
    if weights:
        return ReplayStart(0, None, weights, "weights"), notes
    return ReplayStart(0, None, None, "initial"), notes


def batches_to_skip(iterations: int, iter_size: int, records: int, batch_size: int) -> int:
    """Forward passes of a data layer that bring a fresh reader to where the run had it.

    The run read ``iterations x iter_size`` batches of ``batch_size`` records
    from a reader that wraps record by record at ``records``; the positions
    repeat every ``records / gcd(records, batch_size)`` batches.
    """
    if records <= 0 or batch_size <= 0:
        raise ValueError("records and batch_size must be positive")
    cycle = records // math.gcd(records, batch_size)
    return (iterations * iter_size) % cycle


def weights_finite(path: str) -> bool | str:
    """True, or why the weights in a ``.caffemodel`` are no place to start (non-finite, unreadable)."""
    import numpy as np

    from caffe_nanlayers.proto_io import caffe_pb2

    if path.endswith(".h5"):
        return True  # read by Caffe itself when it restores; a bad one shows as a NaN at once
    net = caffe_pb2().NetParameter()
    try:
        net.ParseFromString(Path(path).read_bytes())
    except OSError as exc:
        return f"cannot read it ({exc.strerror or exc})"
    except Exception:  # protobuf's DecodeError: cut short by the stop
        return "not a complete .caffemodel"
    for layer in list(net.layer) + list(net.layers):
        for blob in layer.blobs:
            values = np.asarray(blob.data, dtype=np.float32)
            if values.size and not np.isfinite(values).all():
                return f"weights of layer {layer.name} are already non-finite"
    return True


def unreproducible(net, solver, start: ReplayStart) -> list[str]:
    """Why the replay cannot feed the very batches of the run (empty: it can)."""
    from caffe_nanlayers.proto_io import caffe_pb2
    from caffe_nanlayers.scan.scan_net import is_python_data_layer, layers_in_phase

    pb2 = caffe_pb2()
    state = solver.train_state if solver.HasField("train_state") else None
    reasons = []
    for layer in layers_in_phase(net, pb2.TRAIN, state):
        if layer.bottom:
            if layer.type == "Dropout":
                reasons.append(f"layer {layer.name!r} (Dropout) draws a new random mask")
            continue
        name = f"layer {layer.name!r} ({layer.type})"
        if is_python_data_layer(layer):
            reasons.append(f"{name}: a Python data layer, its order is its own")
        elif layer.type == "Data" and layer.data_param.rand_skip:
            reasons.append(f"{name}: rand_skip {layer.data_param.rand_skip} skips a random number of records")
        elif layer.type == "HDF5Data" and layer.hdf5_data_param.shuffle:
            reasons.append(f"{name}: shuffle reorders the files and rows at random")
        elif layer.type == "ImageData" and layer.image_data_param.shuffle:
            reasons.append(f"{name}: shuffle reorders the images at random")
        elif layer.type == "DummyData" and any(
            f.type not in ("constant", "") for f in layer.dummy_data_param.data_filler
        ):
            reasons.append(f"{name}: random fillers draw new data")
        elif layer.type not in ("Data", "HDF5Data", "ImageData", "DummyData", "Input", "Parameter"):
            reasons.append(f"{name}: its read position cannot be restored")
        transform = layer.transform_param
        if transform.mirror or transform.crop_size:
            reasons.append(f"{name}: random mirror/crop in training")
    reasons += _shared_readers(net, solver, pb2)
    if start.kind == "initial" and solver.random_seed < 0:
        reasons.append(
            "no snapshot before the NaN and no random_seed in the solver: the initial weights differ"
        )
    return reasons


def _shared_readers(net, solver, pb2) -> list[str]:
    """Caffe 1.0's DataReader serves one stream to every Data layer of the same name and source: a test
    net built from the same layer takes records out of training's stream whenever it tests."""
    if (
        not (solver.test_interval and len(solver.test_iter))
        or len(solver.test_net)
        or len(solver.test_net_param)
    ):
        return []
    from caffe_nanlayers.scan.scan_net import layers_in_phase

    train = {(la.name, la.data_param.source) for la in layers_in_phase(net, pb2.TRAIN) if la.type == "Data"}
    return [
        f"layer {layer.name!r} (Data) is read by the test net too, from the same stream as training"
        for layer in layers_in_phase(net, pb2.TEST)
        if layer.type == "Data" and (layer.name, layer.data_param.source) in train
    ]


@dataclasses.dataclass
class ReplayPlan:
    """What the child replaying the run needs (picklable): the run as the watch saw it."""

    solver: str
    out_dir: str
    nan_iteration: int
    snapshots: list[Snapshot]
    resumed: ReplayStart | None = None  # the run's own -snapshot
    weights: str | None = None  # the run's own -weights

    def consumed_iterations(self, start: ReplayStart) -> int:
        """Iterations the data layers had read when the run stood at ``start`` (they restart on a resume)."""
        if start.kind != "snapshot":
            return 0
        return start.iteration - (self.resumed.iteration if self.resumed is not None else 0)


def advance_data_layers(report, solver, resolved, consumed_iterations: int) -> None:
    """Forward each data layer of the train net until it stands where the run's stood."""
    from caffe_nanlayers.scan import databases, hdf5_lists
    from caffe_nanlayers.scan.sources import BACKENDS

    net = solver.net
    if consumed_iterations <= 0:
        return
    iter_size = max(1, resolved.solver.iter_size)
    layers = {layer.name: layer for layer in resolved.net.layer}
    for index, name in enumerate(net._layer_names):
        layer = layers.get(name)
        if layer is None or layer.bottom:
            continue
        records = batch = None
        if layer.type == "Data":
            backend = BACKENDS.get(layer.data_param.backend, "LEVELDB")
            label = f"source {layer.data_param.source!r} (layer {name!r})"
            records = databases.count_records(Path(layer.data_param.source), backend, label)
            batch = layer.data_param.batch_size
        elif layer.type == "HDF5Data":
            param = layer.hdf5_data_param
            label = f"HDF5Data source {param.source!r} (layer {name!r})"
            records = sum(f.rows for f in hdf5_lists.inspect_files(param.source, list(layer.top), label))
            batch = param.batch_size
        if not records or not batch:
            continue
        skip = batches_to_skip(consumed_iterations, iter_size, records, batch)
        report(("skip", {"layer": name, "records": records, "batch_size": batch, "batches": skip}))
        for _ in range(skip):
            net._forward(index, index)


def replay_run(report, plan: ReplayPlan):
    """Run in the child: choose the start, say how exact the replay is, then step with locate to the NaN.

    Messages sent on the way: ("start", ReplayStart), ("notes", [str]) on the snapshots passed over,
    ("reasons", [str]) why the data order differs, ("skip", {...}) per data layer advanced.
    """
    from caffe_nanlayers.diagnose.locate import LocateOptions, locate
    from caffe_nanlayers.proto_io import read_net_or_solver

    restore_priority()
    single_thread_numpy_blas()
    start, notes = choose_start(
        plan.snapshots,
        plan.nan_iteration,
        usable=lambda snapshot: weights_finite(snapshot.model),
        resumed=plan.resumed,
        weights=plan.weights,
    )
    report(("start", start))
    report(("notes", notes))
    resolved = read_net_or_solver(plan.solver)
    report(("reasons", unreproducible(resolved.net, resolved.solver, start)))
    options = LocateOptions(
        solver=plan.solver,
        out_dir=plan.out_dir,
        weights=start.weights,
        max_iter=plan.nan_iteration - start.iteration + 1,
        solverstate=start.solverstate,
        prepare=_Advance(plan.consumed_iterations(start)),
    )
    return locate(report, options)


# The replay's worker is started while Caffe trains, to have pycaffe imported (seconds) before the NaN:
# meanwhile it yields the CPU to Caffe, and takes its share back when it replays.
_NICE = 10


def lower_priority() -> None:
    """Yield to Caffe while waiting, where the priority can be raised again for the replay (root only)."""
    import os

    if os.geteuid() == 0:
        os.nice(_NICE)


def restore_priority() -> None:
    """Back to the normal priority, for every thread: on Linux a priority is per thread, and the BLAS
    threads pycaffe started while the worker waited inherited the lower one."""
    import os

    threads = [int(t) for t in os.listdir("/proc/self/task")] if os.path.isdir("/proc/self/task") else [0]
    for thread in threads:
        try:
            os.setpriority(os.PRIO_PROCESS, thread, 0)
        except OSError:
            pass  # only root may raise it again: the replay runs at the lower priority


def warm_up() -> None:
    """What the worker does before it is needed: import pycaffe and the replay's modules."""
    from caffe_nanlayers.caffe_net import import_caffe
    from caffe_nanlayers.diagnose import locate  # noqa: F401 (imported now, not at the NaN)

    import_caffe()
    single_thread_numpy_blas()


# The thread-count setters of the OpenBLAS builds numpy wheels bundle (64-bit integer interface).
_NUMPY_BLAS_SETTERS = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_")


def single_thread_numpy_blas() -> bool:
    """Give numpy's own bundled OpenBLAS one thread; Caffe's BLAS keeps its threads.

    A numpy wheel carries an OpenBLAS of its own beside the one Caffe links: two pools of threads that
    spin after each call. locate's callback (a few numpy dots a step) then keeps numpy's threads
    spinning on the cores Caffe's threads need: a LeNet step took 150 ms instead of 50 on 2 cores.
    The numpy calls here are small; one thread loses nothing. False when numpy has no such library
    of its own (it then shares Caffe's pool, and nothing competes).
    """
    import ctypes

    try:
        with open("/proc/self/maps") as maps:
            paths = {
                line.split()[-1]
                for line in maps
                if "openblas" in line and ("numpy" in line or "scipy_openblas" in line)
            }
    except OSError:
        return False
    for path in sorted(paths):
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _NUMPY_BLAS_SETTERS:
            setter = getattr(library, name, None)
            if setter is not None:
                setter(1)
                return True
    return False


@dataclasses.dataclass(frozen=True)
class _Advance:
    """locate's ``prepare`` hook (picklable): put the data layers where the run had them."""

    consumed_iterations: int

    def __call__(self, report, solver, resolved) -> None:
        advance_data_layers(report, solver, resolved, self.consumed_iterations)
