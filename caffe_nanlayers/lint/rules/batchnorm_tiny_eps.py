"""BatchNorm with ``eps`` zero, negative or tiny.

BatchNorm divides by ``sqrt(var + eps)``. A channel whose variance is 0 (a
dead ReLU channel, a constant input, a batch of one) then divides by
``sqrt(eps)``: with ``eps: 0`` that is 0/0 = NaN, and below about 1e-7 (under
float32's resolution once var is rounded) the output and gradient are scaled
by more than 3000. Caffe's default is 1e-5 (cuDNN refuses less than 1e-5).

Fix: remove ``eps`` to get 1e-5, or set it to at least 1e-5.

PASS::

    layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" batch_norm_param { eps: 1e-5 } }

FAIL::

    layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" batch_norm_param { eps: 0 } }
"""

from caffe_nanlayers.lint.context import Problem
from caffe_nanlayers.lint.findings import ERROR

CODE = "NAN107"
NAME = "batchnorm-tiny-eps"
SEVERITY = "warning"
SCOPE = "net"
SUMMARY = "BatchNorm eps <= 0 (0/0 = NaN on a constant channel) or < 1e-7 (huge scaling)."

TINY = 1e-7


def check(ctx):
    for layer in ctx.net.layers:
        if layer.type != "BatchNorm":
            continue
        param = layer.param("batch_norm_param")
        node = param.get("eps") if param is not None else None
        if node is None or not isinstance(node.value, (int, float)) or isinstance(node.value, bool):
            continue
        eps = node.value
        if not eps > 0:  # also catches nan
            yield Problem(
                node,
                f"BatchNorm '{layer.name}': eps {node.raw} makes a zero-variance channel 0/0 = NaN; "
                "use the default 1e-5",
                severity=ERROR,
                at_value=True,
            )
        elif eps < TINY:
            yield Problem(
                node,
                f"BatchNorm '{layer.name}': eps {node.raw} is below float32 resolution; a zero-variance "
                f"channel is scaled by 1/sqrt(eps) = {eps**-0.5:.3g}; use the default 1e-5",
                at_value=True,
            )
