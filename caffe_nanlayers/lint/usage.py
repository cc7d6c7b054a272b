"""How a net file is used: the phases Caffe builds it in, and where its weights come from.

A rule that says "Caffe aborts when it builds the TEST net" or "every weight
starts at zero" is only right about a net that Caffe builds in TEST, or that
starts from its fillers. Real nets are mostly neither: a solver's
``train_net`` is built in TRAIN only, its ``test_net`` in TEST only (sharing
the train net's weights), and most trained nets are fine-tuned from a
``.caffemodel`` (``--weights``, ``copy_from``), with fillers only on the new
head. So the phases and the origin of the weights are decided here, once,
from the solvers that name the file when there are any and from the file's
own content otherwise; the rules read the result.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from caffe_nanlayers.lint.model import Node
from caffe_nanlayers.lint.net import PHASES, Net, NetState, frozen, has_weight_filler, weighted_layers

# A solver's field naming a net file -> the phases Caffe builds that file in.
TRAIN_ONLY, TEST_ONLY, BOTH = frozenset({"TRAIN"}), frozenset({"TEST"}), frozenset(PHASES)


@dataclass(frozen=True)
class SolverUse:
    """One solver's reference to a net file: which field, and whether that solver tests."""

    solver: str
    field: str  # net, train_net or test_net
    tests: bool  # the solver has test_iter (Caffe builds test nets from ``net:`` only then)
    loads_weights: bool  # the solver names weights (``weights:``) to start from

    @property
    def phases(self) -> frozenset[str]:
        if self.field == "train_net":
            return TRAIN_ONLY
        if self.field == "test_net":
            return TEST_ONLY
        return BOTH if self.tests else TRAIN_ONLY


def solver_uses(root: Node, path: str, field: str, scripts_load: bool = False) -> SolverUse:
    """``scripts_load``: a script beside the solver loads weights (``copy_from``, ``--weights``)."""
    loads = root.get("weights") is not None or scripts_load
    return SolverUse(path, field, tests=root.get("test_iter") is not None, loads_weights=loads)


@dataclass(frozen=True)
class Usage:
    """The phases a net is built in (and why), and why its weights come from elsewhere (or None)."""

    phases: frozenset[str]
    why: str
    weights_loaded: str | None = None

    @property
    def trains(self) -> bool:
        return "TRAIN" in self.phases

    def describe(self) -> str:
        """E.g. "built in TEST only: it is the test_net of solver.prototxt"."""
        which = " and ".join(p for p in PHASES if p in self.phases)
        return f"built in {which}{'' if len(self.phases) > 1 else ' only'}: {self.why}"

    def states(self, net: Net) -> list[NetState]:
        return [s for s in net.states() if s.phase in self.phases]


def _content_phases(net: Net) -> frozenset[str] | None:
    """The phases the file is written for: where it has a source of data (an input, or a layer with
    no bottoms), and any phase a layer's ``include`` names. None when that says nothing."""
    if net.inputs:
        return None
    sources = [layer for layer in net.layers if layer.tops and not layer.bottoms]
    if not sources:
        return None
    phases = set()
    for state in net.states():
        if any(layer.included_in(state) for layer in sources):
            phases.add(state.phase)
    for layer in net.layers:
        phases.update(p for rule in layer.node.all("include") if (p := rule.scalar("phase")) in PHASES)
    return frozenset(phases) or None


def phases_of(net: Net, uses: list[SolverUse]) -> tuple[frozenset[str], str]:
    """(phases, why): the solvers that name the file decide; without one, where its data comes from."""
    if uses:
        phases = frozenset().union(*(u.phases for u in uses))
        named = ", ".join(sorted({f"{u.field} of {u.solver}" for u in uses}))
        return phases, f"it is the {named}"
    by_content = _content_phases(net)
    if by_content is not None and by_content != BOTH:
        (phase,) = by_content
        return by_content, f"no solver in this run names it, and its layers are written for {phase} alone"
    return BOTH, "no solver in this run names it"


def weights_origin(net: Net, uses: list[SolverUse]) -> str | None:
    """Why the net's weights come from a .caffemodel rather than from its fillers, or None.

    A net trained from scratch states a filler on (nearly) every learnable layer; a fine-tuned one
    states them on its new head only, the backbone being copied by name from ``--weights`` or
    ``copy_from``. Frozen layers (``lr_mult: 0``) are set from outside too. A net with no filler at
    all is a deploy or pretrained net, unless a solver trains it with no sign of loading weights:
    then every weight really starts at zero.
    """
    if any(u.loads_weights for u in uses):
        return "its solver loads weights"
    layers = list(weighted_layers(net))
    if not layers:
        return None
    filled = [layer for layer, param in layers if has_weight_filler(param)]
    if not filled and not uses:
        return "no layer states a weight_filler and no solver trains it: the weights come from a .caffemodel"
    if any(frozen(layer, 0) for layer, _ in layers):
        return "it freezes layers (lr_mult: 0): they hold weights copied from a .caffemodel"
    if filled and len(layers) - len(filled) > len(filled):  # a new head with fillers on a backbone
        return (
            f"{len(layers) - len(filled)} of its {len(layers)} learnable layers state no weight_filler: "
            "a backbone copied from a .caffemodel (fine-tuning)"
        )
    return None


def usage_of(net: Net, uses: list[SolverUse]) -> Usage:
    phases, why = phases_of(net, uses)
    return Usage(phases, why, weights_origin(net, uses))


_DRIVES = re.compile(r"\.(step|solve)\(")
_LOADS = re.compile(r"copy_from\(|-weights[ =]|\.caffemodel")
_SCRIPT_BYTES = 1 << 20  # a driver script is small; a big file is data


@dataclass(frozen=True)
class Script:
    path: str
    text: str
    drives: bool  # steps a solver from Python
    loads: bool  # loads weights into a net (copy_from, --weights, a .caffemodel)


def _scripts(directory: str) -> tuple[Script, ...]:
    """The Python and shell scripts in ``directory`` that step a solver or load weights."""
    found = []
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return ()
    for name in names:
        path = os.path.join(directory, name)
        if not name.endswith((".py", ".sh")) or not os.path.isfile(path):
            continue
        try:
            if os.path.getsize(path) > _SCRIPT_BYTES:
                continue
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        drives = name.endswith(".py") and bool(_DRIVES.search(text))
        loads = bool(_LOADS.search(text))
        if drives or loads:
            found.append(Script(path, text, drives, loads))
    return tuple(found)


def _nearby(solver_path: str, cache: dict) -> list[Script]:
    """The scripts in the solver's directory and its parent (``cache``: directory -> scripts, one run)."""
    directory = os.path.dirname(os.path.abspath(solver_path))
    found = []
    for where in (directory, os.path.dirname(directory)):
        if where not in cache:
            cache[where] = _scripts(where)
        found.extend(cache[where])
    return found


def python_driver(solver_path: str, cache: dict) -> str | None:
    """A script in the solver's directory (or its parent) that names it and steps it from Python."""
    name = os.path.basename(solver_path)
    return next((s.path for s in _nearby(solver_path, cache) if s.drives and name in s.text), None)


def scripts_load_weights(solver_path: str, cache: dict) -> bool:
    """Whether a script beside the solver loads weights (``copy_from``, ``--weights``, a .caffemodel)."""
    return any(s.loads for s in _nearby(solver_path, cache))
