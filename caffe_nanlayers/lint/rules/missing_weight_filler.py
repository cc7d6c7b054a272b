"""A trained Convolution, Deconvolution or InnerProduct layer without ``weight_filler``.

Caffe's default filler is ``constant`` with value 0: every weight starts at
zero. All units of the layer then compute the same thing and get the same
gradient, so they never differentiate; through a ReLU the gradient is exactly
zero and nothing learns (the loss stays flat, e.g. at ln(#classes)).

Checked only in nets trained from their fillers. A test net (a solver's
``test_net``, or a file whose data layers exist only in TEST) shares the train
net's weights, and a deploy net (no loss) loads them. A fine-tuned net copies
its backbone from a ``.caffemodel`` (``--weights``, ``copy_from``) and states
fillers on its new head only: a net is taken as fine-tuned when no layer
states a weight_filler, when it freezes layers (``lr_mult: 0``), when its
solver names ``weights``, or when the layers without a filler outnumber those
with one. What is left is the filler forgotten on one or two layers of a net
trained from scratch.

Fix: give the layer ``weight_filler { type: "xavier" }`` (or ``msra`` before
ReLUs, or ``gaussian`` with an explicit ``std``).

PASS::

    layer { name: "fc" type: "InnerProduct" bottom: "x" top: "fc"
            inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }

FAIL::

    layer { name: "fc1" type: "InnerProduct" bottom: "x" top: "fc1"
            inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
    layer { name: "fc" type: "InnerProduct" bottom: "fc1" top: "fc"
            inner_product_param { num_output: 10 } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
"""

from caffe_nanlayers.lint.context import Problem
from caffe_nanlayers.lint.rules._layers import frozen, has_weight_filler, weighted_layers

CODE = "NAN102"
NAME = "missing-weight-filler"
SEVERITY = "warning"
SCOPE = "net"
SUMMARY = "Conv/Deconv/InnerProduct in a trained net without weight_filler: every weight starts at 0."


def check(ctx):
    if not ctx.usage.trains or not ctx.net.is_training_net or ctx.usage.weights_loaded:
        return  # its weights come from the train net or from a .caffemodel, not from its fillers
    for layer, param in weighted_layers(ctx.net):
        if has_weight_filler(param) or frozen(layer, 0):
            continue
        yield Problem(
            param or layer.node,
            f"{layer.type} '{layer.name}' has no weight_filler: Caffe's default is constant 0, "
            "so every weight starts at zero and the units never differentiate",
        )
