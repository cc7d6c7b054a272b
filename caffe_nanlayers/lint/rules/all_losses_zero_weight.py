"""Every loss layer has ``loss_weight: 0``: nothing is back-propagated, nothing learns.

Caffe back-propagates from the layers with a non-zero loss weight. When all of
them are weighted 0 the solver runs, prints a loss, and never changes a
weight. (A loss with weight 0 next to a weighted one, for monitoring, is fine.)

Fix: give the training loss ``loss_weight: 1`` (or remove the field).

PASS::

    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }

FAIL::

    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss"
            loss_weight: 0 }
"""

from caffe_nanlayers.lint.context import Problem

CODE = "NAN111"
NAME = "all-losses-zero-weight"
SEVERITY = "warning"
SCOPE = "net"
SUMMARY = "All loss layers have loss_weight 0: no gradient, no training."


def check(ctx):
    losses = [x for x in ctx.net.layers if x.type.endswith("Loss") or x.node.all("loss_weight")]
    if not losses:
        return
    weighted = [layer for layer in losses if not layer.node.all("loss_weight") or any(layer.loss_weights)]
    if weighted:
        return
    for layer in losses:
        yield Problem(
            layer.node.all("loss_weight")[0],
            f"layer '{layer.name}' has loss_weight 0, like every loss in this net: "
            "no gradient reaches the weights",
        )
