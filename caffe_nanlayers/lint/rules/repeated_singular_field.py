"""A non-repeated field written twice, or given a list: Caffe refuses the file.

Caffe reads prototxt with protobuf's C++ text parser, which stops at a
non-repeated field that is set a second time ("Non-repeated field
"base_lr" is specified multiple times") and at a list for a field that is
not repeated ("Expected integer, got: ["): the file does not load, and
``caffe train`` ends with "Failed to parse NetParameter file". This holds for
message fields too: two ``pooling_param { }`` blocks in one layer are refused
as well (they are not merged). A fork's ``device_id: [0, 1, 2, 3]`` is
refused by BVLC Caffe. Checked only when pycaffe is importable (the schema
says which fields are repeated).

Fix: keep one of the values (merge the two blocks into one).

PASS::

    base_lr: 0.01
    lr_policy: "fixed"
    max_iter: 100

FAIL::

    base_lr: 0.01
    lr_policy: "fixed"
    max_iter: 100
    base_lr: 1

FAIL::

    layer { name: "p" type: "Pooling" bottom: "x" top: "p"
            pooling_param { kernel_size: 2 } pooling_param { stride: 2 } }

FAIL::

    base_lr: 0.01
    lr_policy: "fixed"
    max_iter: 100
    device_id: [0, 1]
"""

from caffe_nanlayers.lint.context import Problem
from caffe_nanlayers.lint.schema import REPEATED_SINGULAR

CODE = REPEATED_SINGULAR
NAME = "repeated-singular-field"
SEVERITY = "error"
SCOPE = "file"
SUMMARY = "Non-repeated field set twice (or given a list): Caffe refuses the file."


def check(ctx):
    for p in ctx.schema_problems:
        if p.code == CODE:
            yield Problem(p.node, p.message, at_value=p.at_value)
