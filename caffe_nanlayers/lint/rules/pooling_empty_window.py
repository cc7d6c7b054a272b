"""Pooling with stride > kernel: the last window can start at or past the input's edge.

Caffe sizes pooling outputs with ``ceil((in + 2*pad - kernel) / stride) + 1``.
When the stride is larger than the kernel, the last window along an axis can
start at or beyond the input's edge and cover no input at all. Caffe still
computes it: MAX pooling leaves ``-FLT_MAX`` (-3.4e38) there, and AVE divides
an empty sum by a pool size of 0: ``0/0 = NaN``, which then spreads to the
loss. When the input size is known (an Input layer, ``input_shape``, V1
``input_dim``, a data layer's ``crop_size``, or ``--input-shape``), the shape
is followed through the net with Caffe's formulas: an empty output row or
column is named (error), and a size that leaves no window empty is not
reported. Without a known size, stride > kernel is a warning, since some
input size will hit it.

Only an unpadded pooling in ceil mode (Caffe's default) can have an empty
window: with any ``pad``, Caffe drops a last window that would start past the
image (on both axes, even when only ``pad_h`` or ``pad_w`` is set), and floor
rounding (``ceil_mode: false`` or ``round_mode: FLOOR``) never reaches past
the edge. Neither is reported.

Fix: use ``stride <= kernel_size`` (for example ``kernel_size: 3 stride: 3``),
or pad/crop so that ``(in + 2*pad - kernel)`` is a multiple of the stride.

PASS::

    layer { name: "data" type: "Input" top: "data"
            input_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } } }
    layer { name: "pool" type: "Pooling" bottom: "data" top: "pool"
            pooling_param { pool: AVE kernel_size: 3 stride: 3 } }

PASS::

    layer { name: "data" type: "Input" top: "data"
            input_param { shape { dim: 1 dim: 1 dim: 11 dim: 11 } } }
    layer { name: "pool" type: "Pooling" bottom: "data" top: "pool"
            pooling_param { pool: AVE kernel_size: 3 stride: 4 } }

PASS::

    layer { name: "pool" type: "Pooling" bottom: "x" top: "pool"
            pooling_param { pool: MAX kernel_size: 2 stride: 3 pad: 1 } }

FAIL::

    layer { name: "data" type: "Input" top: "data"
            input_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } } }
    layer { name: "pool" type: "Pooling" bottom: "data" top: "pool"
            pooling_param { pool: AVE kernel_size: 3 stride: 5 } }

FAIL::

    layer { name: "pool" type: "Pooling" bottom: "x" top: "pool"
            pooling_param { pool: MAX kernel_size: 2 stride: 3 } }
"""

from __future__ import annotations

from caffe_nanlayers.lint.context import Problem
from caffe_nanlayers.lint.findings import ERROR
from caffe_nanlayers.lint.shapes import PoolingGeometry

CODE = "NAN101"
NAME = "pooling-empty-window"
SEVERITY = "warning"
SCOPE = "net"
SUMMARY = "Pooling stride > kernel: a window past the input edge yields NaN (AVE) or -FLT_MAX (MAX)."

_AXES = ("row", "column")
# Unpadded, with a kernel of at least 1, only the last window of an axis can be
# empty; the walk is bounded all the same, so that a geometry this reasoning
# missed cannot loop over billions of windows (a fuzzed padding of 1e23 once
# did). Past this many the walk stops and the message gives the run as a range.
_MAX_EMPTY = 64


def _empty_indices(g: PoolingGeometry, axis: int, size: int) -> list[tuple[int, int]]:
    """(output index, AVE extent) of the windows along ``axis`` that cover no input, in order."""
    empty = []
    # Windows move forward with the index: only a tail of them can be empty, so walk back from the last.
    last = g.output_size(axis, size) - 1
    for index in range(last, max(last - _MAX_EMPTY, -1), -1):
        start, end, extent = g.window(axis, index, size)
        if end > start:
            break
        empty.append((index, extent))
    empty.reverse()
    return empty


def _index_list(indices: list[int]) -> str:
    if len(indices) <= 4:
        return ", ".join(map(str, indices))
    if len(indices) == _MAX_EMPTY:  # the walk stopped: the run starts earlier still
        return f"{indices[0]} to {indices[-1]} and more before them"
    return f"{indices[0]} to {indices[-1]}"


def _empty_outputs(g: PoolingGeometry, height: int, width: int) -> str | None:
    """Describe the empty output rows/columns for an input of height x width, and what they hold."""
    sizes = (height, width)
    empty = [_empty_indices(g, axis, sizes[axis]) for axis in (0, 1)]
    if not empty[0] and not empty[1]:
        return None
    out_h, out_w = g.output_size(0, height), g.output_size(1, width)
    parts = []
    for axis in (0, 1):
        if empty[axis]:
            indices = [i for i, _ in empty[axis]]
            first = indices[0] * g.stride[axis] - g.pad[axis]
            noun = _AXES[axis] + ("s" if len(indices) > 1 else "")
            parts.append(f"output {noun} {_index_list(indices)} (window from input {_AXES[axis]} {first})")
    where = " and ".join(parts) + f" of the {out_h}x{out_w} output lie past the {height}x{width} input"
    if g.method == "AVE":
        # AVE divides by the window's extent (padding included): 0 makes 0/0, a negative extent makes 0.
        zero = any(extent == 0 for axis in (0, 1) for _, extent in empty[axis])
        result = "NaN (an empty sum divided by a pool size of 0)" if zero else "0 instead of an average"
        return f"{where}: AVE pooling yields {result}"
    if g.method == "MAX":
        return f"{where}: MAX pooling yields -FLT_MAX (-3.4e38)"
    return f"{where}: the windows are empty"


def check(ctx):
    for layer in ctx.net.layers:
        if layer.type != "Pooling":
            continue
        g = PoolingGeometry.of(layer)
        kh, kw = g.kernel
        if g.global_pooling or not kh or not kw or kh < 0 or kw < 0:
            continue  # Caffe refuses a negative kernel (NAN002)
        if g.stride[0] <= kh and g.stride[1] <= kw:
            continue
        if any(g.pad) or not g.ceil:
            continue  # Caffe makes no empty window then, whatever the input size
        node = layer.param("pooling_param") or layer.node
        stride_node = node.get("stride") or node.get("stride_h") or node.get("stride_w") or node
        known = False
        for trace in ctx.traces:
            shapes = trace.bottoms.get(layer.index)
            shape = shapes[0] if shapes else None
            if shape is None or len(shape) != 4 or shape[2] is None or shape[3] is None:
                continue
            known = True
            empty = _empty_outputs(g, shape[2], shape[3])
            if empty:
                yield Problem(
                    stride_node,
                    f"pooling '{layer.name}': stride {g.stride[0]}x{g.stride[1]} > kernel {kh}x{kw} "
                    f"on a {shape[2]}x{shape[3]} input: {empty}",
                    severity=ERROR,
                )
                break
        if not known:
            yield Problem(
                stride_node,
                f"pooling '{layer.name}': stride {g.stride[0]}x{g.stride[1]} > kernel {kh}x{kw}: "
                "for some input sizes the last window starts past the edge "
                f"({g.method} then yields {'NaN' if g.method == 'AVE' else '-FLT_MAX'}) "
                "and input pixels between windows are skipped",
            )
