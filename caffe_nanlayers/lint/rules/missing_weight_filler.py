"""A trained Convolution, Deconvolution or InnerProduct layer without ``weight_filler``.

Caffe's default filler is ``constant`` with value 0: every weight starts at
zero. All units of the layer then compute the same thing and get the same
gradient, so they never differentiate; through a ReLU the gradient is exactly
zero and nothing learns (the loss stays flat, e.g. at ln(#classes)).

Checked in nets a solver trains (a solver in the same run names them, or holds
them inline), and in nets with a loss where other layers do have fillers (one
was forgotten). A net with no filler at all and no solver is taken to load
its weights from a ``.caffemodel`` (deploy, feature extraction). Layers whose
weights are frozen (``lr_mult: 0``) are skipped.

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
from caffe_nanlayers.lint.rules._layers import frozen, weighted_layers

CODE = "NAN102"
NAME = "missing-weight-filler"
SEVERITY = "warning"
SCOPE = "net"
SUMMARY = "Conv/Deconv/InnerProduct in a trained net without weight_filler: every weight starts at 0."


def check(ctx):
    layers = list(weighted_layers(ctx.net))
    with_filler = [p for _, p in layers if p is not None and p.get("weight_filler") is not None]
    if not ctx.trained_by_solver and not (ctx.net.is_training_net and with_filler):
        return  # no solver and no filler anywhere: weights come from a .caffemodel
    for layer, param in layers:
        if param is not None and param.get("weight_filler") is not None:
            continue
        if frozen(layer, 0):
            continue
        yield Problem(
            param or layer.node,
            f"{layer.type} '{layer.name}' has no weight_filler: Caffe's default is constant 0, "
            "so every weight starts at zero and the units never differentiate",
        )
