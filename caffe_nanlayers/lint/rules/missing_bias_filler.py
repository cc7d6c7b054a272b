"""A trained layer with a bias and no ``bias_filler``, in a net whose other layers state theirs.

Without ``bias_filler`` Caffe fills the bias with constant 0. On its own that
is a sound default, so a net that states no bias filler anywhere is taken to
rely on it and is not reported. But when the other layers of a trained net
give a ``bias_filler`` and one does not, it was most likely forgotten when
the layer was copied or added: that layer starts differently from what the
author wrote everywhere else (e.g. no small positive bias before a ReLU, as
AlexNet uses to keep units alive). Skipped where ``bias_term: false``, for
frozen biases (``lr_mult: 0``), in nets not trained from their fillers (test
nets, deploy nets, fine-tuned nets: see NAN102), and when every stated bias
filler is a constant 0: then the missing one means the same thing.

Fix: add the same ``bias_filler`` as the other layers, or
``bias_filler { type: "constant" value: 0 }`` to say that 0 is meant.

PASS::

    layer { name: "fc1" type: "InnerProduct" bottom: "x" top: "fc1"
            inner_product_param { num_output: 10 weight_filler { type: "xavier" }
                                  bias_filler { type: "constant" value: 0.1 } } }
    layer { name: "fc2" type: "InnerProduct" bottom: "fc1" top: "fc2"
            inner_product_param { num_output: 10 weight_filler { type: "xavier" }
                                  bias_filler { type: "constant" value: 0 } } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc2" bottom: "label" top: "loss" }

FAIL::

    layer { name: "fc1" type: "InnerProduct" bottom: "x" top: "fc1"
            inner_product_param { num_output: 10 weight_filler { type: "xavier" }
                                  bias_filler { type: "constant" value: 0.1 } } }
    layer { name: "fc2" type: "InnerProduct" bottom: "fc1" top: "fc2"
            inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc2" bottom: "label" top: "loss" }
"""

from caffe_nanlayers.lint.context import Problem
from caffe_nanlayers.lint.model import Node
from caffe_nanlayers.lint.rules._layers import frozen, weighted_layers

CODE = "NAN103"
NAME = "missing-bias-filler"
SEVERITY = "info"
SCOPE = "net"
SUMMARY = "Layer with a bias and no bias_filler where the net's other layers state one (forgotten?)."


def _nonzero(filler: Node) -> bool:
    kind = filler.scalar("type", "constant")
    return kind != "constant" or filler.number("value", 0) != 0


def check(ctx):
    if not ctx.usage.trains or not ctx.net.is_training_net or ctx.usage.weights_loaded:
        return
    layers = list(weighted_layers(ctx.net))
    stated = [
        layer
        for layer, param in layers
        if param is not None and param.get("bias_filler") is not None and _nonzero(param.get("bias_filler"))
    ]
    if not stated:
        return  # the net relies on a zero bias everywhere: Caffe's default says the same
    # The line too: two layers may share a name, and the example must not read as the layer itself.
    example = f" (as '{stated[0].name}' on line {stated[0].line} does)"
    for layer, param in layers:
        if param is not None and (param.flag("bias_term") is False or param.get("bias_filler") is not None):
            continue
        if frozen(layer, 1):
            continue
        yield Problem(
            param or layer.node,
            f"{layer.type} '{layer.name}' has a bias and no bias_filler{example}: it starts at constant 0",
        )
