"""An ``lr_policy`` Caffe does not know (or none at all).

SGDSolver dies with "Unknown learning rate policy" at the first iteration,
after the nets are built and the data loaded. ``lr_policy`` has no default:
a solver without it dies the same way. The policies are fixed, step, exp,
inv, multistep, poly and sigmoid (case matters).

Fix: pick one of those names.

PASS::

    base_lr: 0.01
    lr_policy: "multistep"
    stepvalue: 100
    gamma: 0.1
    max_iter: 1000

FAIL::

    base_lr: 0.01
    lr_policy: "cosine"
    max_iter: 1000
"""

from caffe_nanlayers.lint.context import Problem
from caffe_nanlayers.lint.schema import suggest
from caffe_nanlayers.lr_schedule import POLICIES

CODE = "NAN204"
NAME = "unknown-lr-policy"
SEVERITY = "error"
SCOPE = "solver"
SUMMARY = "lr_policy missing or not one of fixed, step, exp, inv, multistep, poly, sigmoid."


def check(ctx):
    root = ctx.root
    node = root.get("lr_policy")
    if node is None:
        first = (root.children or [root])[0]
        yield Problem(first, "lr_policy is missing: Caffe dies with 'Unknown learning rate policy'")
        return
    if node.value not in POLICIES:
        hint = suggest(str(node.value).lower(), POLICIES) or suggest(str(node.value), POLICIES)
        yield Problem(
            node,
            f"unknown lr_policy {node.raw}: Caffe dies with 'Unknown learning rate policy'{hint}",
            at_value=True,
        )
