"""How one of the package's layers learns its prototxt name and its blobs' names.

Caffe tells a Python layer neither its own name nor its blobs' names, yet a
message that says "layer check_fc2, bottom 'fc2'" is the whole point of a
check. Names come from ``bind_names(net)`` when the user calls it, otherwise
they are looked up only when there is something to report: live pycaffe
nets and solvers (found through ``gc``), then the prototxt named on the
command line of ``caffe train``. The clean path never pays for any of it.
"""

from __future__ import annotations

import collections
import gc
import importlib
import sys
from pathlib import Path

import caffe

from caffe_nanlayers import proto_io
from caffe_nanlayers.errors import UserError


def bind_names(net_or_solver) -> int:
    """Give each of our layers in a ``caffe.Net`` (or every net of a solver) its names.

    Sets ``name``, ``bottom_names`` and ``top_names`` from the net; returns how
    many layers were bound. Optional: without it names are found on the error
    path, but binding is free and works in every setting.
    """
    from caffe_nanlayers.layers.base import NanLayer  # here: base asks this module for names

    if isinstance(net_or_solver, caffe._caffe.Solver):
        return sum(bind_names(net) for net in [net_or_solver.net, *net_or_solver.test_nets])
    bound = 0
    for layer, names in _layers_with_names(net_or_solver):
        if isinstance(layer, NanLayer):
            layer.name, layer.bottom_names, layer.top_names = names
            bound += 1
    return bound


def _layers_with_names(net):
    """(layer, (name, bottom names, top names)) for each layer of a pycaffe net.

    A blob read by several layers reaches each through a Split layer Caffe
    inserts, under a name like ``fc2_fc2_0_split_1``; bottoms are named by
    the blob the user wrote instead.
    """
    blob_names = list(net._blob_names)
    layer_names = list(net._layer_names)
    layers = list(net.layers)
    split_source = {}
    for i, layer in enumerate(layers):
        if layer.type == "Split":
            source = blob_names[net._bottom_ids(i)[0]]
            split_source.update((j, source) for j in net._top_ids(i))
    for i, layer in enumerate(layers):
        bottoms = [split_source.get(j, blob_names[j]) for j in net._bottom_ids(i)]
        yield layer, (layer_names[i], bottoms, [blob_names[j] for j in net._top_ids(i)])


def find_in_live_nets(layer):
    """Names of ``layer`` in a pycaffe Net or Solver alive in this process."""
    for obj in gc.get_objects():
        if not isinstance(obj, (caffe.Net, caffe._caffe.Solver)):
            continue
        try:
            nets = [obj.net, *obj.test_nets] if isinstance(obj, caffe._caffe.Solver) else [obj]
            for net in nets:
                for candidate, names in _layers_with_names(net):
                    if candidate is layer:
                        return names
        except Exception:
            # A Net whose C++ constructor is still running (this very layer's
            # setup) is already a Python object, and any use of it raises.
            continue
    return None


# How many layers of each (class, param_str, phase) this process has set up.
_set_up = collections.Counter()


def count_set_up(layer) -> int:
    """This layer's rank among the layers of its class, param_str and phase set up so far."""
    key = (type(layer), layer.param_str, getattr(layer, "phase", None))
    index = _set_up[key]
    _set_up[key] += 1
    return index


def find_in_command_line_prototxt(layer, argv=None):
    """Names of ``layer`` from the prototxt given to ``caffe train -solver`` / ``-model``.

    Under the ``caffe`` binary there is no pycaffe object to search. The
    layer is a Python layer of its phase whose module, class and param_str
    are ours. When several are (a snippet pasted twice), the binary tells
    them apart: it builds its nets one after the other and sets each one's
    layers up in prototxt order, so the k-th of them set up in this process
    is the k-th in that order. Anything uncertain gives None rather than a
    wrong name.
    """
    # Not proto_io.read_*: they go through import_caffe(), which would switch
    # a GPU training run to CPU mode.
    from caffe.proto import caffe_pb2

    if argv is None:
        try:
            argv = Path("/proc/self/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            argv = list(getattr(sys, "argv", []))
    try:
        names = {
            (p.name, tuple(p.bottom), tuple(p.top))
            for net in _named_nets(argv, caffe_pb2)
            for p in net.layer
            if _is_this_layer(layer, p)
        }
        if len(names) > 1:
            names = _nth_set_up(layer, _caffe_builds(argv, caffe_pb2))
    except (OSError, ValueError, KeyError, UserError):
        return None
    if len(names) != 1:
        return None
    name, bottoms, tops = names.pop()
    return name, list(bottoms), list(tops)


def _named_nets(argv, caffe_pb2) -> list:
    """Every net (NetParameter) that the ``-solver`` and ``-model`` flags in argv lead to."""
    nets = []
    for flag, path in _flag_values(argv, ("solver", "model")):
        text = Path(path).read_text()
        if flag == "model" or not proto_io.looks_like_solver(text):
            nets.append(proto_io.parse_text(text, caffe_pb2.NetParameter(), path))
            continue
        solver = proto_io.parse_text(text, caffe_pb2.SolverParameter(), path)
        nets += [solver.net_param, solver.train_net_param, *solver.test_net_param]
        nets += [
            _read_solver_net(name, Path(path), caffe_pb2)
            for name in [solver.net, solver.train_net, *solver.test_net]
            if name
        ]
    return nets


def _read_solver_net(name, solver_path, caffe_pb2):
    net_path, _ = proto_io.resolve_net_file(name, solver_path)
    return proto_io.parse_text(net_path.read_text(), caffe_pb2.NetParameter(), net_path)


def _nth_set_up(layer, builds) -> set:
    """{(name, bottoms, tops)} of the entry of ``builds`` that ``layer`` is, by its rank in set-up order."""
    phase, index = getattr(layer, "phase", None), getattr(layer, "_set_up_index", None)
    in_order = [
        p
        for build_phase, level, stages, net in builds
        if build_phase == phase
        for p in net.layer
        if proto_io.layer_in_state(p, build_phase, level, stages) and _is_this_layer(layer, p)
    ]
    if index is None or index >= len(in_order):
        return set()
    p = in_order[index]
    return {(p.name, tuple(p.bottom), tuple(p.top))}


def _caffe_builds(argv, caffe_pb2) -> list:
    """(phase, level, stages, NetParameter) of each net the ``caffe`` binary builds, in order.

    What tools/caffe.cpp and Solver::InitTrainNet / InitTestNets do: ``train``
    builds the train net, then every test net; ``test`` and ``time`` build
    the ``-model`` net. Empty for any other command line.
    """
    if len(argv) < 2 or Path(argv[0]).name not in ("caffe", "caffe.bin"):
        return []
    flags = collections.defaultdict(list)
    for flag, value in _flag_values(argv, ("solver", "model", "level", "stage", "phase")):
        flags[flag].append(value)
    if any(len(values) > 1 for values in flags.values()):
        return []
    level = int(flags["level"][0]) if flags["level"] else 0
    stages = (flags["stage"] or [""])[0].split(",")  # as caffe.cpp splits it, "" included
    command = argv[1]
    if command in ("test", "time") and flags["model"] and not flags["solver"]:
        net = proto_io.parse_text(
            Path(flags["model"][0]).read_text(), caffe_pb2.NetParameter(), flags["model"][0]
        )
        # caffe time takes -phase (TRAIN by default); Net(file, phase, level,
        # stages) sets the phase and level and adds the stages.
        phase_flag = "TEST" if command == "test" else (flags["phase"] or ["TRAIN"])[0]
        phase = {"TRAIN": caffe_pb2.TRAIN, "TEST": caffe_pb2.TEST}[phase_flag]
        return [(phase, level, [*net.state.stage, *stages], net)]
    if command != "train" or not flags["solver"] or flags["model"]:
        return []
    solver_path = Path(flags["solver"][0])
    text = solver_path.read_text()
    if not proto_io.looks_like_solver(text):
        return []
    solver = proto_io.parse_text(text, caffe_pb2.SolverParameter(), solver_path)

    def read(name):
        return _read_solver_net(name, solver_path, caffe_pb2)

    generic = solver.net_param if solver.HasField("net_param") else read(solver.net) if solver.net else None
    if solver.HasField("train_net_param"):
        train_net = solver.train_net_param
    else:
        train_net = read(solver.train_net) if solver.train_net else generic
    test_nets = [*solver.test_net_param, *(read(name) for name in solver.test_net)]
    if generic is not None:
        test_nets += [generic] * (len(solver.test_iter) - len(test_nets))
    test_states = list(solver.test_state) or [caffe_pb2.NetState()] * len(test_nets)
    if train_net is None or len(test_states) != len(test_nets):
        return []
    # caffe train sets the train state's level from -level and adds the -stage stages.
    train_state = caffe_pb2.NetState()
    train_state.CopyFrom(solver.train_state)
    train_state.level = level
    train_state.stage.extend(stages)
    return [_merged_state(train_net, caffe_pb2.TRAIN, train_state)] + [
        _merged_state(net, caffe_pb2.TEST, test_state) for net, test_state in zip(test_nets, test_states)
    ]


def _merged_state(net, phase, solver_state) -> tuple:
    """(phase, level, stages, net): a NetState of ``phase``, MergeFrom the net's state, then the solver's."""
    level, stages = 0, []
    for state in (net.state, solver_state):
        phase = state.phase if state.HasField("phase") else phase
        level = state.level if state.HasField("level") else level
        stages += state.stage
    return phase, level, stages, net


def _flag_values(argv, flags):
    """(flag, value) for gflags-style ``-flag value``, ``--flag=value`` in argv."""
    for i, arg in enumerate(argv):
        word = arg.lstrip("-")
        if not arg.startswith("-"):
            continue
        for flag in flags:
            if word.startswith(flag + "="):
                yield flag, word[len(flag) + 1 :]
            elif word == flag and i + 1 < len(argv):
                yield flag, argv[i + 1]


def _is_this_layer(layer, param) -> bool:
    python = param.python_param
    if param.type != "Python" or python.param_str != layer.param_str:
        return False
    phase = getattr(layer, "phase", None)
    if phase is not None and not proto_io.layer_may_be_in_phase(param, phase):
        return False
    try:
        return getattr(importlib.import_module(python.module), python.layer, None) is type(layer)
    except ImportError:
        return False
