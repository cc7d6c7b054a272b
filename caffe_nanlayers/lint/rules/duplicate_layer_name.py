"""Two layers with the same name in the same phase.

Caffe builds such a net, but names are how it copies weights
(``--weights``, ``copy_from``, fine-tuning): both layers receive the same
pretrained blobs, or the wrong ones, and ``net.layer_dict`` /
``net.params`` keep only one of them. For layers without weights (two
losses named "loss") it is only an info: nothing is copied wrongly, but
pycaffe sees one of the two. The same name in layers that never
coexist (one ``include { phase: TRAIN }``, the other TEST, as BVLC's data
layers do) is fine and not reported.

Fix: rename one of the layers.

PASS::

    layer { name: "data" type: "Data" top: "data" include { phase: TRAIN } }
    layer { name: "data" type: "Data" top: "data" include { phase: TEST } }

FAIL::

    layer { name: "relu" type: "ReLU" bottom: "a" top: "a" }
    layer { name: "relu" type: "ReLU" bottom: "b" top: "b" }
"""

from caffe_nanlayers.lint.context import Problem
from caffe_nanlayers.lint.findings import INFO
from caffe_nanlayers.lint.net import PHASES

LEARNABLE = {
    "Convolution",
    "Deconvolution",
    "InnerProduct",
    "BatchNorm",
    "Scale",
    "Bias",
    "PReLU",
    "Embed",
    "LSTM",
    "RNN",
}


def _learns(layer) -> bool:
    return layer.type in LEARNABLE or bool(layer.node.all("param"))


CODE = "NAN109"
NAME = "duplicate-layer-name"
SEVERITY = "warning"
SCOPE = "net"
SUMMARY = "Two layers share a name in the same phase: weights are copied by name (info if weightless)."


def check(ctx):
    net = ctx.net
    states = net.layer_states(ctx.states)
    first_by_name: dict[str, list] = {}
    for layer in net.layers:
        if layer.node.get("name") is None:
            continue
        for earlier in first_by_name.get(layer.name, ()):
            common = set(states[layer.index]) & set(states[earlier.index])
            if common:
                state = min(common, key=lambda s: (PHASES.index(s.phase), len(s.stages), sorted(s.stages)))
                where = (
                    f"layer name '{layer.name}' is also used on line {earlier.line} "
                    f"(both exist in {state.describe()})"
                )
                if _learns(layer) or _learns(earlier):
                    yield Problem(
                        layer.node.get("name"),
                        f"{where}: weights are copied by name, so one of them gets the other's",
                        at_value=True,
                    )
                else:
                    yield Problem(
                        layer.node.get("name"),
                        f"{where}: pycaffe's net.layer_dict keeps only the last one",
                        severity=INFO,
                        at_value=True,
                    )
                break
        first_by_name.setdefault(layer.name, []).append(layer)
