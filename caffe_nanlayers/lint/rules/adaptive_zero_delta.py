"""An adaptive solver (AdaGrad, RMSProp, AdaDelta, Adam) with ``delta`` <= 0.

These solvers divide each update by the square root of a running average of
squared gradients plus ``delta``. A weight whose gradient has always been 0
(a dead ReLU, an unused class, a padded input) has an average of exactly 0,
so with ``delta: 0`` its update is 0/0 = NaN, and one NaN weight spreads to
the whole net at the next forward pass. Caffe's default is 1e-8.

Fix: remove ``delta`` (1e-8) or set a small positive value (AdaDelta: 1e-6).

PASS::

    type: "Adam"
    base_lr: 0.001
    lr_policy: "fixed"
    max_iter: 100
    delta: 1e-8

FAIL::

    type: "Adam"
    base_lr: 0.001
    lr_policy: "fixed"
    max_iter: 100
    delta: 0
"""

from caffe_nanlayers.lint.context import Problem
from caffe_nanlayers.lint.rules._solver import solver_type

CODE = "NAN209"
NAME = "adaptive-zero-delta"
SEVERITY = "error"
SCOPE = "solver"
SUMMARY = "AdaGrad/RMSProp/AdaDelta/Adam with delta <= 0: 0/0 = NaN for weights with no gradient."


def check(ctx):
    kind = solver_type(ctx.root)
    if kind not in ("AdaGrad", "RMSProp", "AdaDelta", "Adam"):
        return
    node = ctx.root.get("delta")
    if node is not None and node.kind == "number" and not node.value > 0:
        yield Problem(
            node,
            f"{kind} with delta {node.raw}: a weight whose gradient is always 0 gets 0/0 = NaN",
            at_value=True,
        )
