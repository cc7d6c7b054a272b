"""A solver without ``max_iter`` (or with ``max_iter: 0``): ``caffe train`` stops at once.

``max_iter`` has no default in caffe.proto: absent, it is 0, and the solver
loop runs zero iterations, snapshots the untrained weights and exits as if
it had succeeded. ``poly`` also divides by it.

Fix: set ``max_iter`` to the number of iterations to train.

PASS::

    base_lr: 0.01
    lr_policy: "fixed"
    max_iter: 10000

FAIL::

    base_lr: 0.01
    lr_policy: "fixed"
"""

from caffe_nanlayers.lint.context import Problem

CODE = "NAN203"
NAME = "missing-max-iter"
SEVERITY = "error"
SCOPE = "solver"
SUMMARY = "No max_iter (or max_iter <= 0): the solver runs zero iterations."


def check(ctx):
    root = ctx.root
    node = root.get("max_iter")
    if node is None:
        first = (root.children or [root])[0]
        message = "max_iter is missing: it defaults to 0 and 'caffe train' stops before iteration 1"
        yield Problem(first, message)
    elif isinstance(node.value, (int, float)) and node.value <= 0:
        yield Problem(node, f"max_iter is {node.raw}: 'caffe train' stops before iteration 1", at_value=True)
