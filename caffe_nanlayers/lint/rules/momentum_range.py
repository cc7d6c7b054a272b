"""Momentum (or Adam's ``momentum2``, RMSProp's ``rms_decay``) outside [0, 1).

With momentum >= 1 the velocity never decays: each update adds to all the
previous ones and the weights run off to inf. Adam divides by
``1 - momentum^t``: with ``momentum: 1`` that is 0/0; with ``momentum2: 1``
its step correction is 0. RMSProp's running average with ``rms_decay: 1``
never moves from 0, so it divides by ``delta`` alone. Negative values make
updates oscillate in sign.

Fix: momentum 0.9 (SGD, Nesterov, Adam), momentum2 0.999, rms_decay 0.98.

PASS::

    base_lr: 0.01
    lr_policy: "fixed"
    max_iter: 100
    momentum: 0.9

FAIL::

    base_lr: 0.01
    lr_policy: "fixed"
    max_iter: 100
    momentum: 1.0
"""

from caffe_nanlayers.lint.context import Problem

CODE = "NAN208"
NAME = "momentum-range"
SEVERITY = "error"
SCOPE = "solver"
SUMMARY = "momentum, momentum2 or rms_decay outside [0, 1): updates grow without bound."


def check(ctx):
    for name in ("momentum", "momentum2", "rms_decay"):
        node = ctx.root.get(name)
        if node is None or node.kind != "number":
            continue
        if not 0 <= node.value < 1:
            yield Problem(
                node,
                f"{name} {node.raw} is outside [0, 1): the update history never decays "
                "and the weights diverge",
                at_value=True,
            )
