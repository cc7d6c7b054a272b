"""Helpers shared by the solver rules: the solver's type and its learning-rate schedule."""

from __future__ import annotations

from caffe_nanlayers.lint.model import Node
from caffe_nanlayers.lr_schedule import Schedule

# solver_type enum (deprecated) -> type string
_SOLVER_TYPES = {
    "SGD": "SGD",
    "NESTEROV": "Nesterov",
    "ADAGRAD": "AdaGrad",
    "RMSPROP": "RMSProp",
    "ADADELTA": "AdaDelta",
    "ADAM": "Adam",
}


def solver_type(root: Node) -> str:
    """The solver class Caffe will build: ``type:`` wins over the deprecated ``solver_type:``."""
    value = root.scalar("type")
    if isinstance(value, str) and value:
        return value
    enum = root.scalar("solver_type")
    return _SOLVER_TYPES.get(str(enum), "SGD") if enum is not None else "SGD"


def _int(root: Node, name: str) -> int:
    value = root.number(name, 0)
    try:
        return int(value)
    except (OverflowError, ValueError):
        return 0


def schedule(root: Node) -> Schedule:
    return Schedule(
        policy=str(root.scalar("lr_policy", "")),
        base_lr=float(root.number("base_lr", 0.0)),
        gamma=float(root.number("gamma", 0.0)),
        power=float(root.number("power", 0.0)),
        stepsize=_int(root, "stepsize"),
        stepvalues=root.integers("stepvalue"),
        max_iter=_int(root, "max_iter"),
    )


def policy_node(root: Node) -> Node:
    """Where to point for schedule problems: the lr_policy line (the first line when absent)."""
    return root.get("lr_policy") or root.get("base_lr") or (root.children or [root])[0]
