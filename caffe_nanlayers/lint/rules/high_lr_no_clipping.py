"""A high ``base_lr`` with no ``clip_gradients``.

The first updates of a freshly initialized net are the largest; with a
learning rate well above what the solver type is usually run with, a single
large gradient (a bad batch, a loss spike) moves the weights far enough to
overflow the next forward pass, and the loss prints ``nan`` a few hundred
iterations in. ``clip_gradients`` bounds the step. The thresholds depend on
the solver: SGD and Nesterov above 0.1, AdaGrad above 0.1, RMSProp and Adam
above 0.01, AdaDelta above 10 (its base_lr is usually 1).

Only a positive ``clip_gradients`` clips: Caffe skips clipping when it is
negative (``clip_gradients: -1`` is the proto's default, "off"), and a NaN or
infinite norm is never exceeded. ``clip_gradients: 0`` is NAN206's finding.

Not reported for the large-batch recipe of NVCaffe: ``larc: true`` scales
each layer's rate by the ratio of its weight norm to its gradient norm, so a
``base_lr`` of 10 or more is meant. Nor for an adaptive solver whose ``delta``
is 0.1 or more: the denominator sqrt(v) + delta then bounds each step by about
base_lr * |gradient| / delta, as in SGD, and SGD's threshold applies.

A net that clips its own gradient (a Python layer whose class name contains
"Clip", such as caffe-nanlayers' ``GradientClipLayer``) counts as clipped.

Fix: lower ``base_lr`` (and raise it with a warm-up schedule if needed), or
set ``clip_gradients`` (e.g. 10, or the gradient norm seen when training is
healthy).

PASS::

    base_lr: 0.5
    clip_gradients: 10
    lr_policy: "fixed"
    max_iter: 100

PASS::

    base_lr: 0.5
    lr_policy: "fixed"
    max_iter: 100
    net_param {
      layer { name: "clip" type: "Python" bottom: "fc" top: "fc"
              python_param { module: "caffe_nanlayers.layers" layer: "GradientClipLayer" } }
    }

PASS::

    base_lr: 24
    larc: true
    larc_policy: "clip"
    lr_policy: "poly"
    power: 2
    max_iter: 7800

FAIL::

    base_lr: 0.5
    lr_policy: "fixed"
    max_iter: 100

FAIL::

    base_lr: 0.5
    clip_gradients: -1
    lr_policy: "fixed"
    max_iter: 100
"""

import math

from caffe_nanlayers.lint.context import Problem
from caffe_nanlayers.lint.rules._solver import solver_type

CODE = "NAN205"
NAME = "high-lr-no-clipping"
SEVERITY = "warning"
SCOPE = "solver"
SUMMARY = "base_lr high for the solver type (SGD > 0.1, Adam > 0.01, ...) and no clip_gradients."

ADAPTIVE = ("AdaGrad", "RMSProp", "Adam")
THRESHOLDS = {"SGD": 0.1, "Nesterov": 0.1, "AdaGrad": 0.1, "RMSProp": 0.01, "Adam": 0.01, "AdaDelta": 10.0}


def _clips_in_net(net) -> bool:
    for layer in net.layers:
        param = layer.param("python_param")
        if layer.type == "Python" and param is not None and "clip" in str(param.scalar("layer", "")).lower():
            return True
    return False


def check(ctx):
    root = ctx.root
    node = root.get("base_lr")
    clip_node = root.get("clip_gradients")
    clip = root.number("clip_gradients")
    if node is None or (clip_node is not None and clip is None):
        return  # not a number: Caffe refuses the file (NAN002)
    if clip is not None and (clip == 0 or (math.isfinite(clip) and clip > 0)):
        return  # clipped, or nothing learns at all (NAN206)
    if any(_clips_in_net(net) for net in ctx.nets):
        return
    if root.flag("larc") is True:
        return  # per-layer rate control: a large base_lr is the recipe
    lr = root.number("base_lr")
    kind = solver_type(root)
    limit = THRESHOLDS.get(kind)
    delta = root.number("delta")
    if kind in ADAPTIVE and delta is not None and delta >= 0.1:
        limit = THRESHOLDS["SGD"]
    if lr is None or limit is None or not lr > limit:
        return
    if clip_node is None:
        clipping = "clip_gradients is not set"
    else:
        clipping = f"clip_gradients {clip_node.raw} does not clip (only a positive norm does)"
    yield Problem(
        node,
        f"base_lr {node.raw} is high for {kind} (> {limit:g}) and {clipping}: "
        "one large gradient can blow the weights up to inf",
        at_value=True,
    )
