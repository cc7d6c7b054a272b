"""A bottom blob that no earlier layer produces (and no ``input:`` declares).

Caffe stops at start-up with "Unknown bottom blob": a typo in a blob name, or
a layer moved above its producer. Layers that only exist in some phases are
taken into account: a bottom is reported only when it is missing in every
phase (and stage) in which its layer exists.

Fix: correct the name, or move the layer after the one that produces it.

PASS::

    layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 4 } } }
    layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
            inner_product_param { num_output: 2 } }

FAIL::

    layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 4 } } }
    layer { name: "fc" type: "InnerProduct" bottom: "dta" top: "fc"
            inner_product_param { num_output: 2 } }
"""

from caffe_nanlayers.lint.context import Problem
from caffe_nanlayers.lint.schema import suggest

CODE = "NAN110"
NAME = "undefined-bottom"
SEVERITY = "error"
SCOPE = "net"
SUMMARY = "Bottom blob that no earlier layer produces: Caffe aborts with 'Unknown bottom blob'."


def check(ctx):
    net = ctx.net
    declared = {i.name for i in net.inputs}
    missing: dict[tuple[int, int], set] = {}  # (layer index, bottom position) -> states where missing
    present_somewhere: set[tuple[int, int]] = set()
    known_anywhere = set(declared)
    for layer in net.layers:
        known_anywhere.update(t.value for t in layer.tops)
    for state in net.states():
        available = set(declared)
        for layer in net.layers_in(state):
            for i, bottom in enumerate(layer.bottoms):
                key = (layer.index, i)
                if bottom.value in available:
                    present_somewhere.add(key)
                else:
                    missing.setdefault(key, set()).add(state)
            available.update(t.value for t in layer.tops)
    for (index, i), _states in sorted(missing.items()):
        if (index, i) in present_somewhere:
            continue
        layer = net.layers[index]
        bottom = layer.bottoms[i]
        if bottom.value in known_anywhere:
            detail = "it is produced only later, or only in other phases"
        else:
            detail = "no layer produces it" + suggest(bottom.value, known_anywhere)
        yield Problem(
            bottom,
            f"layer '{layer.name}' reads bottom '{bottom.value}', but {detail}: Caffe aborts with "
            "'Unknown bottom blob'",
            at_value=True,
        )
