"""A layer with a bias term and no ``bias_filler`` (opt-in: Caffe's zero default is usually right).

Without ``bias_filler`` Caffe fills the bias with constant 0. That is the
usual choice and is harmless on its own, so this rule is off by default. It
is worth enabling when a team's convention is to state every filler, or for
nets whose ReLUs die at start (a small positive bias, e.g. 0.1, keeps them
alive, as AlexNet does). It is skipped where ``bias_term: false``.

Fix: add ``bias_filler { type: "constant" value: 0 }`` (to say so) or a small
positive value before ReLUs.

PASS::

    layer { name: "fc" type: "InnerProduct" bottom: "x" top: "fc"
            inner_product_param { num_output: 10 weight_filler { type: "xavier" }
                                  bias_filler { type: "constant" value: 0 } } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }

FAIL::

    layer { name: "fc" type: "InnerProduct" bottom: "x" top: "fc"
            inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
"""

from caffe_nanlayers.lint.context import Problem
from caffe_nanlayers.lint.rules._layers import frozen, weighted_layers

CODE = "NAN103"
NAME = "missing-bias-filler"
SEVERITY = "info"
SCOPE = "net"
DEFAULT = False
SUMMARY = "Layer with a bias and no bias_filler (bias starts at 0); off by default."


def check(ctx):
    if not ctx.net.is_training_net:
        return
    for layer, param in weighted_layers(ctx.net):
        if param is not None and (param.scalar("bias_term") is False or param.get("bias_filler") is not None):
            continue
        if frozen(layer, 1):
            continue
        yield Problem(
            param or layer.node,
            f"{layer.type} '{layer.name}' has a bias and no bias_filler: the bias starts at constant 0",
        )
