"""Softmax feeding MultinomialLogisticLoss or a Log layer: log(0) = -inf.

A float softmax underflows to exactly 0 for any class whose score is about
88 below the largest. A Log layer then outputs -inf (and its gradient 1/x is
inf); MultinomialLogisticLoss clamps p at 1e-20, so its loss stays finite but
its gradient -1/p reaches 1e20 and the next update blows the weights up.
SoftmaxWithLoss computes the same loss from the scores with the log-sum-exp
trick and never takes log(0).

Fix: remove the Softmax layer and feed its input (the scores) to
``SoftmaxWithLoss`` (keep a separate Softmax for deployment).

PASS::

    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }

FAIL::

    layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
    layer { name: "loss" type: "MultinomialLogisticLoss" bottom: "prob" bottom: "label" top: "loss" }

FAIL::

    layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
    layer { name: "logp" type: "Log" bottom: "prob" top: "logp" }
"""

from caffe_nanlayers.lint.context import Problem
from caffe_nanlayers.lint.rules._layers import producers

CODE = "NAN105"
NAME = "softmax-then-log"
SEVERITY = "warning"
SCOPE = "net"
SUMMARY = "Softmax feeding MultinomialLogisticLoss or Log: log(0) = -inf; use SoftmaxWithLoss."


def check(ctx):
    for layer in ctx.net.layers:
        if layer.type not in ("MultinomialLogisticLoss", "Log") or not layer.bottoms:
            continue
        source = producers(ctx.net, layer)[0]
        if source is None or source.type != "Softmax":
            continue
        effect = (
            "log(0) = -inf and the gradient 1/x = inf"
            if layer.type == "Log"
            else "the loss clamps p at 1e-20 but its gradient -1/p reaches 1e20"
        )
        yield Problem(
            layer.bottoms[0],
            f"{layer.type} '{layer.name}' takes the output of Softmax '{source.name}', which underflows "
            f"to 0: {effect}; feed the scores to SoftmaxWithLoss instead",
        )
