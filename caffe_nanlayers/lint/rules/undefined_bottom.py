"""A bottom blob that no earlier layer produces (and no ``input:`` declares).

Caffe stops at start-up with "Unknown bottom blob": a typo in a blob name, a
layer moved above its producer, or a producer that exists in one phase only
(a data layer with ``include { phase: TRAIN }`` and no TEST counterpart:
training starts, and the first test aborts). Each phase the file is built in
is checked on its own, with the layers Caffe keeps in it (include/exclude
rules). The phases are those of the solvers that name the file (``train_net``:
TRAIN, ``test_net``: TEST, ``net``: both when the solver tests); without a
solver, the phases its data layers exist in. Stages are alternatives a solver
chooses from (``test_state { stage: ... }``): a bottom counts as missing in a
phase only when it is missing in every stage set of that phase in which its
layer exists.

A layer-level ``phase: TRAIN`` (not inside ``include { }``) restricts nothing:
Caffe builds the layer in TEST too, and it aborts there if its bottom exists
only in TRAIN.

Fix: correct the name, or move the layer after the one that produces it.

PASS::

    layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 4 } } }
    layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
            inner_product_param { num_output: 2 } }

PASS::

    layer { name: "data" type: "Data" top: "data" include { phase: TRAIN } }
    layer { name: "data" type: "Data" top: "data" include { phase: TEST } }
    layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
            inner_product_param { num_output: 2 } }

FAIL::

    layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 4 } } }
    layer { name: "fc" type: "InnerProduct" bottom: "dta" top: "fc"
            inner_product_param { num_output: 2 } }

FAIL::

    layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TRAIN } }
    layer { name: "data" type: "Input" top: "data" include { phase: TEST }
            input_param { shape { dim: 1 dim: 4 } } }
    layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
            inner_product_param { num_output: 2 } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }

FAIL::

    layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TRAIN } }
    layer { name: "data" type: "Data" top: "data" include { phase: TEST } }
    layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
            inner_product_param { num_output: 2 } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" phase: TRAIN }
"""

from caffe_nanlayers.lint.context import Problem
from caffe_nanlayers.lint.net import PHASES
from caffe_nanlayers.lint.schema import suggest

CODE = "NAN110"
NAME = "undefined-bottom"
SEVERITY = "error"
SCOPE = "net"
SUMMARY = "Bottom blob that no earlier layer produces: Caffe aborts with 'Unknown bottom blob'."


def check(ctx):
    net = ctx.net
    declared = {i.name for i in net.inputs}
    # (layer index, bottom position) -> phase -> whether the bottom is there in some state of that phase
    found: dict[tuple[int, int], dict[str, bool]] = {}
    known_anywhere = set(declared)
    for layer in net.layers:
        known_anywhere.update(t.value for t in layer.tops)
    for state in ctx.states:
        available = set(declared)
        for layer in net.layers_in(state):
            for i, bottom in enumerate(layer.bottoms):
                by_phase = found.setdefault((layer.index, i), {})
                by_phase[state.phase] = by_phase.get(state.phase, False) or bottom.value in available
            available.update(t.value for t in layer.tops)
    for (index, i), by_phase in sorted(found.items()):
        missing = [phase for phase in PHASES if by_phase.get(phase) is False]
        if not missing:
            continue
        layer = net.layers[index]
        bottom = layer.bottoms[i]
        if len(missing) < len(by_phase):
            (phase,) = missing
            field = layer.node.get("phase")
            hint = ""
            if field is not None and field.value != phase:
                hint = (
                    f" (its 'phase: {field.raw}' field restricts nothing; "
                    f"'include {{ phase: {field.raw} }}' does)"
                )
            yield Problem(
                bottom,
                f"layer '{layer.name}' reads bottom '{bottom.value}', but in the {phase} phase no earlier "
                f"layer produces it: Caffe aborts with 'Unknown bottom blob' when it builds the {phase} net"
                f" (the file is {ctx.usage.describe()}){hint}",
                at_value=True,
            )
            continue
        if bottom.value in known_anywhere:
            detail = "it is produced only later, or only in other phases"
        else:
            detail = "no layer produces it" + suggest(bottom.value, known_anywhere)
        built = f" (the file is {ctx.usage.describe()})" if len(ctx.usage.phases) == 1 else ""
        yield Problem(
            bottom,
            f"layer '{layer.name}' reads bottom '{bottom.value}', but {detail}: Caffe aborts with "
            f"'Unknown bottom blob'{built}",
            at_value=True,
        )
