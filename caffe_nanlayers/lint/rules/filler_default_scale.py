"""A ``gaussian`` filler without ``std``: Caffe's default standard deviation is 1.

With std 1 a layer's outputs have a variance of about fan-in times its
input's variance (a 3x3x256 convolution: 2304x). A few such layers overflow
float activations to inf, and the softmax of inf is NaN at the first forward
pass. The same holds for a ``uniform`` filler without ``min``/``max``
(default [0, 1]: every weight positive). Checked in nets with a loss.

Fix: set ``std`` (0.01 as in AlexNet, or sqrt(2 / fan_in)), or use
``type: "xavier"`` / ``"msra"``, which scale with fan-in.

PASS::

    layer { name: "fc" type: "InnerProduct" bottom: "x" top: "fc"
            inner_product_param { num_output: 10 weight_filler { type: "gaussian" std: 0.01 } } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }

FAIL::

    layer { name: "fc" type: "InnerProduct" bottom: "x" top: "fc"
            inner_product_param { num_output: 10 weight_filler { type: "gaussian" } } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
"""

from caffe_nanlayers.lint.context import Problem
from caffe_nanlayers.lint.rules._layers import weighted_layers

CODE = "NAN104"
NAME = "filler-default-scale"
SEVERITY = "warning"
SCOPE = "net"
SUMMARY = "gaussian filler without std (default 1) or uniform without min/max: activations overflow."


def check(ctx):
    if not ctx.usage.trains or not ctx.net.is_training_net:
        return
    for layer, param in weighted_layers(ctx.net):
        filler = param.get("weight_filler") if param is not None else None
        if filler is None or not filler.is_message:
            continue
        kind = filler.scalar("type", "constant")
        if kind == "gaussian" and filler.get("std") is None:
            yield Problem(
                filler,
                f"{layer.type} '{layer.name}': gaussian weight_filler without std uses std 1, "
                "large enough to overflow activations to inf",
            )
        elif kind == "uniform" and filler.get("min") is None and filler.get("max") is None:
            yield Problem(
                filler,
                f"{layer.type} '{layer.name}': uniform weight_filler without min/max draws from [0, 1]: "
                "every weight is positive and activations grow layer after layer",
            )
