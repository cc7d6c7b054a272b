"""InfogainLoss fed raw scores instead of probabilities.

In BVLC Caffe up to 1.0, InfogainLoss computes ``-sum H[label, j] * log(p_j)``
on its first input as given: it must be normalized probabilities (a Softmax
output). Fed the scores of an InnerProduct or Convolution, every negative
score is clamped to 1e-20, the loss is meaningless, and the gradient
``-H / p`` reaches 1e20 and blows the weights up. (Caffe versions after 1.0
apply the softmax inside InfogainLoss; there, feed it the scores and ignore
this finding.)

Fix: put a Softmax layer between the scores and InfogainLoss, or on newer
Caffe silence this code.

PASS::

    layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
    layer { name: "loss" type: "InfogainLoss" bottom: "prob" bottom: "label" top: "loss"
            infogain_loss_param { source: "H.binaryproto" } }

FAIL::

    layer { name: "fc" type: "InnerProduct" bottom: "x" top: "fc"
            inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
    layer { name: "loss" type: "InfogainLoss" bottom: "fc" bottom: "label" top: "loss"
            infogain_loss_param { source: "H.binaryproto" } }
"""

from caffe_nanlayers.lint.context import Problem
from caffe_nanlayers.lint.rules._layers import producers

CODE = "NAN106"
NAME = "infogain-unnormalized-input"
SEVERITY = "warning"
SCOPE = "net"
SUMMARY = "InfogainLoss fed scores, not Softmax probabilities: log of clamped values, 1e20 gradients."

_SCORE_LAYERS = {"InnerProduct", "Convolution", "Deconvolution", "Scale", "Bias", "Eltwise"}


def check(ctx):
    for layer in ctx.net.layers:
        if layer.type != "InfogainLoss" or not layer.bottoms:
            continue
        source = producers(ctx.net, layer)[0]
        if source is not None and source.type in _SCORE_LAYERS:
            yield Problem(
                layer.bottoms[0],
                f"InfogainLoss '{layer.name}' takes the scores of {source.type} '{source.name}', "
                "not probabilities: negative scores are clamped to 1e-20 and the gradient reaches 1e20; "
                "add a Softmax before it",
            )
