"""A value of the wrong type for its field, an unknown enum value, or a number out of range.

Caffe refuses these when it parses the file ("Expected integer, got: 0.5",
"Unknown enumeration value of "AVG" for field "pool"", "Integer out of
range"), except one it accepts silently: a float field given a number beyond
±3.4e38 becomes ±inf, and an inf hyper-parameter makes NaN. Checked only
when pycaffe is importable.

Fix: write the value the field's type expects: quotes for strings, a bare
enum name (``pool: AVE``), an integer for int fields.

PASS::

    layer { name: "p" type: "Pooling" bottom: "x" top: "p"
            pooling_param { pool: AVE kernel_size: 2 stride: 2 } }

FAIL::

    layer { name: "p" type: "Pooling" bottom: "x" top: "p"
            pooling_param { pool: AVG kernel_size: 2 stride: 2 } }

FAIL::

    layer { name: "p" type: "Pooling" bottom: "x" top: "p"
            pooling_param { pool: AVE kernel_size: 2.5 } }
"""

from caffe_nanlayers.lint.context import Problem
from caffe_nanlayers.lint.schema import BAD_VALUE

CODE = BAD_VALUE
NAME = "bad-value"
SEVERITY = "error"
SCOPE = "file"
SUMMARY = "Value of the wrong type, unknown enum value, or out of range for its field."


def check(ctx):
    for p in ctx.schema_problems:
        if p.code == CODE:
            yield Problem(p.node, p.message, at_value=p.at_value)
