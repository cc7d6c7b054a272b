"""Dropout with ``dropout_ratio`` >= 1 or < 0.

Dropout scales the kept units by ``1 / (1 - ratio)``. Caffe checks the ratio
only in debug builds (DCHECK), so a release build with ratio 1 drops
everything and multiplies by 1/0 = inf: 0 * inf = NaN in every output.

Fix: use a ratio in [0, 1), typically 0.5.

PASS::

    layer { name: "drop" type: "Dropout" bottom: "fc" top: "fc" dropout_param { dropout_ratio: 0.5 } }

FAIL::

    layer { name: "drop" type: "Dropout" bottom: "fc" top: "fc" dropout_param { dropout_ratio: 1 } }
"""

from caffe_nanlayers.lint.context import Problem

CODE = "NAN112"
NAME = "dropout-ratio-range"
SEVERITY = "error"
SCOPE = "net"
SUMMARY = "Dropout ratio outside [0, 1): the 1/(1 - ratio) scale is inf or negative."


def check(ctx):
    for layer in ctx.net.layers:
        if layer.type != "Dropout":
            continue
        param = layer.param("dropout_param")
        node = param.get("dropout_ratio") if param is not None else None
        if node is None or not isinstance(node.value, (int, float)) or isinstance(node.value, bool):
            continue
        if not 0 <= node.value < 1:
            yield Problem(
                node,
                f"Dropout '{layer.name}': dropout_ratio {node.raw} is outside [0, 1): "
                "the scale 1/(1 - ratio) is inf or negative (Caffe checks it only in debug builds)",
                at_value=True,
            )
