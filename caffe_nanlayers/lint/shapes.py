"""Blob shapes through a net, with Caffe's own output-size formulas.

Only as much as the rules need: the spatial size reaching each layer, so that
the pooling rule can say which output row is empty instead of "may be empty".
Shapes start at what the prototxt states (an Input layer, ``input_shape`` or
V1 ``input_dim``, a data layer's ``crop_size``/``new_height``, DummyData, or
``--input-shape``) and go through the layers whose output size is a formula
of their parameters. Anything else makes its tops unknown (``None``); the
rules then fall back to what holds for every shape.
"""

from __future__ import annotations

from dataclasses import dataclass

from caffe_nanlayers.lint.model import Node
from caffe_nanlayers.lint.net import Layer, Net, NetState

Shape = tuple  # of int or None per axis

DATA_LAYERS = {"Data", "ImageData", "WindowData", "MemoryData", "HDF5Data", "AnnotatedData", "VideoData"}
SAME_SHAPE_LAYERS = {
    "AbsVal",
    "BatchNorm",
    "Bias",
    "BNLL",
    "Clip",
    "Dropout",
    "ELU",
    "Exp",
    "Log",
    "LRN",
    "MVN",
    "Power",
    "PReLU",
    "ReLU",
    "ReLU6",
    "Scale",
    "Sigmoid",
    "Softmax",
    "Split",
    "Swish",
    "TanH",
    "Threshold",
    "Eltwise",
}


def _int(node: Node | None, name: str, default: int | None = None) -> int | None:
    values = node.integers(name) if node is not None else []
    return values[-1] if values else default


def _hw(param: Node | None, single: str, h: str, w: str, default: int | None) -> tuple:
    """Caffe's ``kernel_size`` / ``kernel_h`` + ``kernel_w`` convention (also stride, pad)."""
    if param is None:
        return default, default
    if param.get(h) is not None or param.get(w) is not None:
        return _int(param, h, default), _int(param, w, default)
    values = param.integers(single)
    if not values:
        return default, default
    return values[0], values[-1] if len(values) > 1 else values[0]


@dataclass
class PoolingGeometry:
    """A pooling layer's parameters, as PoolingLayer::LayerSetUp reads them."""

    method: str
    kernel: tuple[int | None, int | None]
    stride: tuple[int, int]
    pad: tuple[int, int]
    global_pooling: bool
    ceil: bool

    @classmethod
    def of(cls, layer: Layer) -> PoolingGeometry:
        p = layer.param("pooling_param")
        method = str(p.scalar("pool", "MAX")) if p is not None else "MAX"
        stride = _hw(p, "stride", "stride_h", "stride_w", 1)
        pad = _hw(p, "pad", "pad_h", "pad_w", 0)
        ceil = True
        if p is not None:
            # ceil_mode (a bool) in some Caffes, round_mode (CEIL = 0, FLOOR = 1) in newer BVLC ones.
            ceil = p.flag("ceil_mode", True) and p.scalar("round_mode", "CEIL") not in ("FLOOR", 1)
        return cls(
            method=method,
            kernel=_hw(p, "kernel_size", "kernel_h", "kernel_w", None),
            stride=(stride[0] or 1, stride[1] or 1),
            pad=(pad[0] or 0, pad[1] or 0),
            global_pooling=bool(p is not None and p.flag("global_pooling")),
            ceil=ceil,
        )

    def output_size(self, axis: int, size: int) -> int:
        """PoolingLayer::Reshape for one spatial axis (0: height, 1: width)."""
        k, s, p = self.kernel[axis], self.stride[axis], self.pad[axis]
        if self.global_pooling:
            return 1
        span = size + 2 * p - k
        # Integer division, exact for any size: Caffe's float division agrees on every real size,
        # and a fuzzed 400-digit dimension cannot overflow a float.
        out = (-(-span // s) if self.ceil else span // s) + 1
        if any(self.pad) and (out - 1) * s >= size + p:
            # Caffe: the last window must start inside the image, not in the padding. It checks both
            # axes as soon as either is padded, so pad_h alone can drop the last column too.
            out -= 1
        return out

    def window(self, axis: int, index: int, size: int) -> tuple[int, int, int]:
        """Window ``index`` along ``axis`` as Forward_cpu computes it: (start, end, AVE's divisor extent)."""
        k, s, p = self.kernel[axis], self.stride[axis], self.pad[axis]
        start = index * s - p
        padded_end = min(start + k, size + p)
        extent = padded_end - start  # AVE divides by the product of these, padding included
        return max(start, 0), min(padded_end, size), extent


def _conv_out(size, k, s, p, d):
    return (size + 2 * p - (d * (k - 1) + 1)) // s + 1


def _deconv_out(size, k, s, p, d):
    return s * (size - 1) + d * (k - 1) + 1 - 2 * p


def _spatial(shape: Shape | None) -> bool:
    return shape is not None and len(shape) == 4 and shape[2] is not None and shape[3] is not None


def _data_shape(layer: Layer) -> Shape | None:
    """The first top of a data layer, when its parameters state its size."""
    t = layer.param("transform_param")
    crop = _int(t, "crop_size", 0)
    batch = None
    for name in ("data_param", "image_data_param", "window_data_param", "memory_data_param"):
        batch = _int(layer.param(name), "batch_size", batch)
    if layer.type == "MemoryData":
        m = layer.param("memory_data_param")
        h, w = _int(m, "height"), _int(m, "width")
        if crop:
            h = w = crop
        return (batch, _int(m, "channels"), h, w) if h and w else None
    if crop:
        return (batch, None, crop, crop)
    if layer.type == "ImageData":
        i = layer.param("image_data_param")
        h, w = _int(i, "new_height", 0), _int(i, "new_width", 0)
        if h and w:
            return (batch, 3 if i.scalar("is_color", True) is not False else 1, h, w)
    return None


def _blob_shape(node: Node) -> Shape:
    return tuple(node.integers("dim"))


def _source_shapes(layer: Layer, overrides: dict[str, Shape]) -> list[Shape | None]:
    """Shapes of the tops of a layer that takes no bottoms."""
    tops = [t.value for t in layer.tops]
    shapes: list[Shape | None] = [overrides.get(t) for t in tops]
    if layer.type == "Input":
        p = layer.param("input_param")
        given = [_blob_shape(s) for s in p.all("shape")] if p is not None else []
        for i in range(len(tops)):
            if shapes[i] is None and given:
                shapes[i] = given[i] if len(given) > 1 and i < len(given) else given[0]
    elif layer.type == "DummyData":
        p = layer.param("dummy_data_param")
        given = [_blob_shape(s) for s in p.all("shape")] if p is not None else []
        for i in range(len(tops)):
            if shapes[i] is None and given:
                shapes[i] = given[i] if i < len(given) else given[0]
    elif layer.type in DATA_LAYERS and tops and shapes[0] is None:
        shapes[0] = _data_shape(layer)
    if tops and shapes[0] is None:
        shapes[0] = overrides.get("*")  # --input-shape without a name: the first top of every source
    return shapes


def _layer_tops(layer: Layer, bottoms: list[Shape | None]) -> list[Shape | None]:
    """Top shapes of a layer with bottoms, for the layers whose size is a formula; None elsewhere."""
    n_tops = len(layer.tops)
    first = bottoms[0] if bottoms else None
    if first is None:
        return [None] * n_tops
    t = layer.type
    if t in SAME_SHAPE_LAYERS:
        return [first] * n_tops
    if t in ("Convolution", "Deconvolution") and _spatial(first):
        p = layer.param("convolution_param")
        kh, kw = _hw(p, "kernel_size", "kernel_h", "kernel_w", None)
        sh, sw = _hw(p, "stride", "stride_h", "stride_w", 1)
        ph, pw = _hw(p, "pad", "pad_h", "pad_w", 0)
        dh, dw = _hw(p, "dilation", "dilation", "dilation", 1)
        if not kh or not kw or not sh or not sw:
            return [None] * n_tops
        out = _conv_out if t == "Convolution" else _deconv_out
        h, w = out(first[2], kh, sh, ph, dh or 1), out(first[3], kw, sw, pw, dw or 1)
        return [(first[0], _int(p, "num_output"), h, w)] * n_tops
    if t == "Pooling" and _spatial(first):
        g = PoolingGeometry.of(layer)
        if g.global_pooling:
            return [(first[0], first[1], 1, 1)] * n_tops
        if not g.kernel[0] or not g.kernel[1]:
            return [None] * n_tops
        return [(first[0], first[1], g.output_size(0, first[2]), g.output_size(1, first[3]))] * n_tops
    if t == "InnerProduct":
        return [(first[0], _int(layer.param("inner_product_param"), "num_output"))] * n_tops
    if t == "Concat" and all(_spatial(b) for b in bottoms):
        axis = _int(layer.param("concat_param"), "axis", 1)
        if axis == 1:
            channels = [b[1] for b in bottoms]
            total = sum(channels) if all(c is not None for c in channels) else None
            return [(first[0], total, first[2], first[3])] * n_tops
    if t == "Crop" and len(bottoms) > 1 and _spatial(first) and _spatial(bottoms[1]):
        axis = _int(layer.param("crop_param"), "axis", 2)
        if axis is not None and 0 <= axis <= 4:
            return [tuple(first[:axis]) + tuple(bottoms[1][axis:])] * n_tops
    return [None] * n_tops


@dataclass
class ShapeTrace:
    """What reached each layer in one state: the shapes of its bottoms (None where unknown)."""

    state: NetState
    bottoms: dict[int, list[Shape | None]]


def trace_shapes(net: Net, state: NetState, overrides: dict[str, Shape] | None = None) -> ShapeTrace:
    """Run the net's shapes forward in ``state``; ``overrides`` maps blob names (or ``*``) to shapes."""
    overrides = overrides or {}
    blobs: dict[str, Shape | None] = {}
    for inp in net.inputs:
        blobs[inp.name] = overrides.get(inp.name) or inp.shape or overrides.get("*")
    seen: dict[int, list[Shape | None]] = {}
    for layer in net.layers_in(state):
        names = [b.value for b in layer.bottoms]
        bottoms = [blobs.get(name) for name in names]
        seen[layer.index] = bottoms
        tops = _source_shapes(layer, overrides) if not names else _layer_tops(layer, bottoms)
        for top, shape in zip(layer.tops, tops):
            blobs[top.value] = shape
    return ShapeTrace(state, seen)
