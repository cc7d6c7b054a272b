"""The linter's model of Caffe, checked against real Caffe.

The pooling rule claims which output row is empty and what it holds; the
shape inference claims Caffe's blob sizes. Real nets built by pycaffe must
agree, or the linter's messages would be guesses.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import EXAMPLES

from caffe_nanlayers.lint import Options, lint_text
from caffe_nanlayers.lint.net import NetState, build_net
from caffe_nanlayers.lint.parser import parse_file, parse_text
from caffe_nanlayers.lint.shapes import PoolingGeometry, trace_shapes

pytestmark = pytest.mark.caffe

FLT_MAX = np.finfo(np.float32).max


def test_empty_ave_window_is_nan_in_caffe(caffe):
    net = caffe.Net(str(EXAMPLES / "lint" / "net_pooling_bad.prototxt"), caffe.TEST)
    net.blobs["data"].data[...] = np.random.default_rng(0).random(net.blobs["data"].data.shape)
    net.forward()
    out = net.blobs["pool1"].data[0, 0]
    assert out.shape == (3, 3)  # the linter said: a 3x3 output
    assert np.isnan(out[2, :]).all() and np.isnan(out[:, 2]).all()  # row 2 and column 2, as reported
    assert np.isfinite(out[:2, :2]).all()


def test_empty_max_window_is_minus_flt_max_in_caffe(caffe):
    """The V1 example: Caffe upgrades it on load, and the reported row 3 / column 3 hold -FLT_MAX."""
    net = caffe.Net(str(EXAMPLES / "lint" / "net_v1_bad.prototxt"), caffe.TEST)
    net.blobs["data"].data[...] = np.random.default_rng(0).random((1, 1, 9, 9))
    net.forward()
    out = net.blobs["pool1"].data[0, 0]
    assert out.shape == (4, 4)
    assert (out[3, :] == -FLT_MAX).all() and (out[:, 3] == -FLT_MAX).all()
    assert (out[:3, :3] >= 0).all()


@pytest.mark.parametrize(
    "path",
    [
        EXAMPLES / "lint" / "train_val_fixed.prototxt",
        EXAMPLES / "lint" / "net_pooling_fixed.prototxt",
        EXAMPLES / "pooling_stride" / "deploy_bad.prototxt",
    ],
    ids=lambda p: p.name,
)
def test_inferred_shapes_match_caffe(caffe, path):
    net = caffe.Net(str(path), caffe.TEST)
    model = build_net(parse_file(str(path)).root)
    trace = trace_shapes(model, NetState("TEST"))
    checked = 0
    for layer in model.layers_in(NetState("TEST")):
        for bottom, shape in zip(layer.bottoms, trace.bottoms[layer.index]):
            if shape is not None and None not in shape:
                assert tuple(net.blobs[bottom.value].data.shape) == shape, (layer.name, bottom.value)
                checked += 1
    assert checked >= 1


def test_inferred_shapes_match_caffe_on_the_corpus(caffe, shared_dir):
    """Small BVLC deploy nets: every shape the linter infers is the one Caffe allocates."""
    root = shared_dir / "corpus" / "bvlc"
    for rel in ("examples/mnist/lenet.prototxt", "examples/cifar10/cifar10_quick.prototxt"):
        path = root / rel
        net = caffe.Net(str(path), caffe.TEST)
        model = build_net(parse_file(str(path)).root)
        trace = trace_shapes(model, NetState("TEST"))
        for layer in model.layers:
            for bottom, shape in zip(layer.bottoms, trace.bottoms[layer.index]):
                assert shape is not None and tuple(net.blobs[bottom.value].data.shape) == shape, rel


def _pooling_geometries():
    for height, width in ((5, 7), (10, 10), (11, 6)):
        for kernel in (1, 2, 3):
            for stride in range(1, 7):
                for pad_h, pad_w in ((0, 0), (1, 0), (0, 1), (1, 1)):
                    if pad_h < kernel and pad_w < kernel:
                        for ceil in ("true", "false"):
                            yield height, width, kernel, stride, pad_h, pad_w, ceil


def test_pooling_rule_agrees_with_caffe_on_every_small_geometry(caffe, tmp_path):
    """Output size, and an empty window reported exactly where Caffe computes one (-FLT_MAX, NaN for AVE).

    Padding on either axis makes Caffe drop the last window on both when it starts past the image.
    """
    path = tmp_path / "pool.prototxt"
    checked = empty_seen = 0
    for height, width, kernel, stride, pad_h, pad_w, ceil in _pooling_geometries():
        for method in ("MAX", "AVE"):
            text = (
                'layer { name: "d" type: "Input" top: "d" '
                f"input_param {{ shape {{ dim: 1 dim: 1 dim: {height} dim: {width} }} }} }}\n"
                'layer { name: "p" type: "Pooling" bottom: "d" top: "p" pooling_param { '
                f"pool: {method} kernel_size: {kernel} stride: {stride} pad_h: {pad_h} pad_w: {pad_w} "
                f"ceil_mode: {ceil} }} }}\n"
            )
            path.write_text(text)
            net = caffe.Net(str(path), caffe.TEST)
            net.blobs["d"].data[...] = 1.0
            net.forward()
            out = net.blobs["p"].data[0, 0]
            model = build_net(parse_text(text).root)
            trace = trace_shapes(model, NetState("TEST"))
            assert trace.bottoms[1] == [(1, 1, height, width)]
            g = PoolingGeometry.of(model.layers[1])
            where = (method, height, width, kernel, stride, pad_h, pad_w, ceil)
            assert out.shape == (g.output_size(0, height), g.output_size(1, width)), where
            empty = (out == -FLT_MAX).any() if method == "MAX" else (~(out > 0)).any()
            findings = lint_text(text, "p.prototxt", Options(select=["NAN101"])).findings
            assert [f.severity for f in findings] == (["error"] if empty else []), where
            if method == "AVE" and empty:
                assert ("yields NaN" in findings[0].message) == bool(np.isnan(out).any()), where
            checked += 1
            empty_seen += bool(empty)
    assert checked > 500 and empty_seen > 20
