"""Python layers that make NaN/Inf on purpose, for tests (ours and the diagnose tools').

Caffe imports them by module name: ``python_param { module: "nan_test_layers"
layer: "BackwardNaNLayer" }``; pytest puts tests/ on ``sys.path`` (rootdir
insertion), so any test can use them. Their ``param_str`` goes through the
package's own parser.
"""

from __future__ import annotations

import json

import caffe
import numpy as np

from caffe_nanlayers.params import Key, non_negative, parse_param_str

_SCHEMA = {
    "value": Key(str, default="nan", choices=("nan", "inf", "-inf"), doc="what to inject"),
    "after": Key(int, default=0, check=non_negative, doc="clean passes before the first injection"),
    "count": Key(int, default=1, check=non_negative, doc="elements injected per pass (0: all)"),
}


def python_layer(name, layer, bottom=(), top=(), param_str="", module="caffe_nanlayers.layers") -> str:
    """Prototxt text of one Python layer (``param_str`` quoted and escaped for prototxt)."""
    blobs = "".join(f' bottom: "{b}"' for b in bottom) + "".join(f' top: "{t}"' for t in top)
    return (
        f'layer {{ name: "{name}" type: "Python"{blobs}\n'
        f'  python_param {{ module: "{module}" layer: "{layer}" param_str: {json.dumps(param_str)} }} }}\n'
    )


def zero_size_net(name, layer, in_place, param_str="") -> tuple[str, list[str]]:
    """A net whose Input ``x`` has a 0 dim, beside a 2-element ``y``, both through ``layer``.

    Caffe never allocates a blob of count 0: touching its data or diff aborts
    the process, so a layer must skip it. Returns the text and the layer's tops.
    """
    tops = ["x", "y"] if in_place else ["x2", "y2"]
    text = (
        'name: "empty" force_backward: true\n'
        'layer { name: "in" type: "Input" top: "x" top: "y"\n'
        "  input_param { shape { dim: 0 dim: 3 } shape { dim: 2 } } }\n"
        + python_layer(name, layer, ["x", "y"], tops, param_str)
        + python_layer("probe", "CheckFiniteLayer", [tops[0]], [])  # so that the empty blob is no net output
    )
    return text, tops


# Two bottoms, only one of which needs a gradient: x is an input (no
# force_backward), h the output of a layer with weights. Caffe then calls the
# backward of the layer put in at %s (bottoms x and h, tops x2 and h2) with
# propagate_down [False, True]. The losses make the gradient arriving at x2
# and h2 whatever the test puts in tx and th.
HALF_BACKWARD = """
name: "half_backward"
layer { name: "in" type: "Input" top: "x" top: "u" top: "tx" top: "th"
        input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 3 }
                      shape { dim: 2 dim: 3 } shape { dim: 2 dim: 3 } } }
layer { name: "h" type: "InnerProduct" bottom: "u" top: "h"
        inner_product_param { num_output: 3 bias_term: false weight_filler { type: "gaussian" std: 1 } } }
%s
layer { name: "loss_x" type: "EuclideanLoss" bottom: "x2" bottom: "tx" top: "loss_x" }
layer { name: "loss_h" type: "EuclideanLoss" bottom: "h2" bottom: "th" top: "loss_h" }
"""


class _InjectingLayer(caffe.Layer):
    """Identity (one top per bottom, in place or not) that injects in one direction."""

    def setup(self, bottom, top):
        params = parse_param_str(self.param_str, _SCHEMA, layer_class=type(self).__name__, label_key="value")
        self.value = np.float32(params["value"])
        self.after, self.count = params["after"], params["count"]
        self.passes = 0

    def reshape(self, bottom, top):
        for i in range(len(top)):
            top[i].reshape(*bottom[i].data.shape)

    def inject(self, array):
        """Inject into ``array`` if this pass is due; True when it did."""
        self.passes += 1
        if self.passes <= self.after:
            return False
        flat = array.reshape(-1)
        flat[: self.count or flat.size] = self.value
        return True

    def forward(self, bottom, top):
        for i in range(len(top)):
            top[i].data[...] = bottom[i].data

    def backward(self, top, propagate_down, bottom):
        for i in range(len(top)):
            if propagate_down[i]:
                bottom[i].diff[...] = top[i].diff


class ForwardNaNLayer(_InjectingLayer):
    """Forward: copies its bottoms and injects NaN/Inf into top 0's data. Backward: identity."""

    def forward(self, bottom, top):
        super().forward(bottom, top)
        self.inject(top[0].data)


class BackwardNaNLayer(_InjectingLayer):
    """Forward: identity, always finite. Backward: injects NaN/Inf into bottom 0's diff.

    The case a forward check cannot see: e.g. sqrt (Power 0.5) at 0, whose
    derivative is infinite.
    """

    def backward(self, top, propagate_down, bottom):
        super().backward(top, propagate_down, bottom)
        self.inject(bottom[0].diff)


class NaiveCrossEntropyLayer(caffe.Layer):
    """A hand-written cross-entropy loss, as people write them, with the classic bug: no clamp.

    Bottoms: probabilities (N, C) (a Softmax output) and labels (N,). Top:
    ``-mean(log(p[label]))``. A probability that underflowed to exactly 0
    makes ``log(0) = -inf``: the loss is +inf, and the gradient ``-1/p`` is
    -inf.
    """

    def setup(self, bottom, top):
        if len(bottom) != 2:
            raise ValueError("NaiveCrossEntropyLayer needs two bottoms: probabilities and labels")

    def reshape(self, bottom, top):
        top[0].reshape(1)

    def _picked(self, bottom):
        prob = bottom[0].data.reshape(bottom[0].num, -1)
        labels = bottom[1].data.reshape(-1).astype(int)
        return prob, labels

    def forward(self, bottom, top):
        prob, labels = self._picked(bottom)
        with np.errstate(divide="ignore"):
            top[0].data[0] = -np.mean(np.log(prob[np.arange(len(labels)), labels]))

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        prob, labels = self._picked(bottom)
        rows = np.arange(len(labels))
        grad = np.zeros_like(prob)
        with np.errstate(divide="ignore"):
            grad[rows, labels] = -top[0].diff[0] / (len(labels) * prob[rows, labels])
        bottom[0].diff[...] = grad.reshape(bottom[0].diff.shape)


class Float16StorageLayer(caffe.Layer):
    """Identity that rounds its bottom through float16, as a half-precision fork stores blobs.

    BVLC Caffe has no float16 blobs; this emulates their storage so a test can
    show which float32 values a float16 net would have turned into inf
    (anything beyond 65504).
    """

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        with np.errstate(over="ignore"):
            top[0].data[...] = bottom[0].data.astype(np.float16)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = top[0].diff
