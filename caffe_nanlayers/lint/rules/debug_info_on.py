"""``debug_info: true`` left on in a solver or net.

Caffe then logs the L1 norm of every blob's data and diff, forward and
backward, at every iteration: great to find the layer where NaN first
appears, a flood of logs and a slowdown for a normal run.

Fix: remove it once the NaN is found (``caffe-nan locate`` finds the layer
without it).

PASS::

    base_lr: 0.01
    lr_policy: "fixed"
    max_iter: 100

FAIL::

    base_lr: 0.01
    lr_policy: "fixed"
    max_iter: 100
    debug_info: true
"""

from caffe_nanlayers.lint.context import Problem

CODE = "NAN207"
NAME = "debug-info-on"
SEVERITY = "info"
SCOPE = "file"
SUMMARY = "debug_info left on: per-blob norms logged every iteration."


def check(ctx):
    node = ctx.document.root.get("debug_info")
    if node is not None and ctx.document.root.flag("debug_info"):
        message = "debug_info is on: Caffe logs every blob's norms at every iteration"
        yield Problem(node, message, at_value=True)
