"""A solver without ``max_iter`` (or with ``max_iter: 0``): ``caffe train`` stops at once.

``max_iter`` has no default in caffe.proto: absent, it is 0, and the solver
loop runs zero iterations, snapshots the untrained weights and exits as if
it had succeeded. ``poly`` also divides by it.

Not reported for solvers that ``caffe train`` does not run: one a Python
script beside it drives (``solver.step(n)`` ignores ``max_iter``), one with
snapshotting turned off (``snapshot: 0``, the mark of a driver that snapshots
itself, as py-faster-rcnn's ``train_net.py`` does), and ``max_iter: 0`` with
test nets and ``test_initialization`` left on: one evaluation pass, on purpose.

Fix: set ``max_iter`` to the number of iterations to train.

PASS::

    base_lr: 0.01
    lr_policy: "fixed"
    max_iter: 10000

PASS::

    net: "train_val.prototxt"
    test_iter: 100
    base_lr: 0.01
    lr_policy: "fixed"
    max_iter: 0

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


def _not_run_by_caffe_train(ctx) -> bool:
    root = ctx.root
    if ctx.driven_by:
        return True
    snapshot = root.number("snapshot")
    return snapshot == 0 and root.get("max_iter") is None


def _evaluation_pass(root) -> bool:
    """max_iter: 0 with test nets and the test before training left on: Caffe tests once and stops."""
    return bool(root.all("test_iter")) and root.flag("test_initialization", True) is not False


def check(ctx):
    root = ctx.root
    if _not_run_by_caffe_train(ctx):
        return
    node = root.get("max_iter")
    if node is None:
        first = (root.children or [root])[0]
        message = "max_iter is missing: it defaults to 0 and 'caffe train' stops before iteration 1"
        yield Problem(first, message)
    elif isinstance(node.value, (int, float)) and node.value <= 0:
        if node.value == 0 and _evaluation_pass(root):
            return
        yield Problem(node, f"max_iter is {node.raw}: 'caffe train' stops before iteration 1", at_value=True)
