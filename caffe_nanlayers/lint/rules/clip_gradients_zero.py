"""``clip_gradients: 0``: every gradient is scaled to zero, nothing learns.

Caffe clips when ``clip_gradients >= 0`` by scaling all gradients by
``clip_gradients / L2-norm``. With 0 that factor is 0: every update is zero
and the net never changes. (A negative value, the default -1, disables
clipping.)

Fix: remove the field to disable clipping, or set a positive norm (e.g. 10).

PASS::

    base_lr: 0.01
    lr_policy: "fixed"
    max_iter: 100
    clip_gradients: 10

FAIL::

    base_lr: 0.01
    lr_policy: "fixed"
    max_iter: 100
    clip_gradients: 0
"""

from caffe_nanlayers.lint.context import Problem

CODE = "NAN206"
NAME = "clip-gradients-zero"
SEVERITY = "error"
SCOPE = "solver"
SUMMARY = "clip_gradients set to 0: every gradient is scaled to zero."


def check(ctx):
    node = ctx.root.get("clip_gradients")
    if node is not None and node.value == 0 and node.kind == "number":
        yield Problem(
            node,
            "clip_gradients: 0 scales every gradient by 0 / norm = 0: no weight ever changes "
            "(a negative value disables clipping)",
            at_value=True,
        )
