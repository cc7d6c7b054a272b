"""A field caffe.proto does not define: usually a typo, which Caffe refuses.

Caffe's parser stops at the first unknown field ("Message type
caffe.ConvolutionParameter has no field named kernal_size"), so a typo costs a
failed start at best. At worst the typo is in a file only read later (a test
net, a solver's ``test_net``). Forks add their own fields, which is why this
is a warning and the suggestion comes from the installed pycaffe's schema.
Checked only when pycaffe is importable.

Fix: correct the name (the message suggests the nearest known field), or
silence the line if your Caffe fork defines the field.

PASS::

    layer { name: "c" type: "Convolution" bottom: "x" top: "c"
            convolution_param { num_output: 8 kernel_size: 3 } }

FAIL::

    layer { name: "c" type: "Convolution" bottom: "x" top: "c"
            convolution_param { num_output: 8 kernal_size: 3 } }
"""

from caffe_nanlayers.lint.context import Problem
from caffe_nanlayers.lint.schema import UNKNOWN_FIELD

CODE = UNKNOWN_FIELD
NAME = "unknown-field"
SEVERITY = "warning"
SCOPE = "file"
SUMMARY = "Field not in caffe.proto (a typo Caffe refuses, or a fork's field); suggests the near miss."


def check(ctx):
    for p in ctx.schema_problems:
        if p.code == CODE:
            yield Problem(p.node, p.message, at_value=p.at_value)
