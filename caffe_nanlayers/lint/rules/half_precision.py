"""float16 arithmetic, where a fork allows it (NVCaffe's ``forward_type: FLOAT16`` and the like).

float16 holds at most 65504 and nothing below 6e-8 (6e-5 at full precision).
Losses summed over a batch, softmax denominators, unnormalized gradients and
the squares in a BatchNorm variance pass 65504 easily and become inf; small
gradients flush to 0. BVLC Caffe has no float16; forks that do expect loss
scaling (``global_grad_scale``) and float32 math for the solver.

Fix: keep ``*_math`` and the solver's types at FLOAT, and set
``global_grad_scale`` (or ``global_grad_scale_adaptive``) when training in
float16.

PASS::

    default_forward_type: FLOAT
    layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 } } }

FAIL::

    default_forward_type: FLOAT16
    layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 } } }
"""

from caffe_nanlayers.lint.context import Problem

CODE = "NAN108"
NAME = "half-precision"
SEVERITY = "warning"
SCOPE = "file"
SUMMARY = "float16 data type (a fork's FLOAT16/HALF): overflows past 65504 to inf."

HALF = {"FLOAT16", "HALF", "FP16", "float16", "half"}


def check(ctx):
    text = ctx.document.text
    if text and not any(word in text for word in HALF):
        return  # none of the words anywhere: no need to walk the tree
    for node in ctx.document.root.walk():
        if node.value in HALF and node.children is None and node.name.endswith(("type", "math")):
            yield Problem(
                node,
                f"'{node.name}: {node.raw}' computes in float16: values beyond 65504 become inf; "
                "use loss scaling and float32 math",
                at_value=True,
            )
