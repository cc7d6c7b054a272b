"""A non-repeated field written twice: Caffe silently keeps the last value.

Caffe's C++ text parser allows overwriting a singular field, so
``base_lr: 0.01`` followed later by ``base_lr: 1`` trains with 1, with no
message. It is almost always a copy-and-paste leftover. Checked only when
pycaffe is importable (the schema says which fields are repeated).

Fix: delete the value you did not mean.

PASS::

    base_lr: 0.01
    lr_policy: "fixed"
    max_iter: 100

FAIL::

    base_lr: 0.01
    lr_policy: "fixed"
    max_iter: 100
    base_lr: 1
"""

from caffe_nanlayers.lint.context import Problem
from caffe_nanlayers.lint.schema import REPEATED_SINGULAR

CODE = REPEATED_SINGULAR
NAME = "repeated-singular-field"
SEVERITY = "warning"
SCOPE = "file"
SUMMARY = "Non-repeated field set twice; Caffe silently keeps the last value."


def check(ctx):
    for p in ctx.schema_problems:
        if p.code == CODE:
            yield Problem(p.node, p.message, at_value=p.at_value)
