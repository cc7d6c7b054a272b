"""InputSanitizerLayer in real Caffe nets: replacement, clamping, counts, gradient, and a real dataset."""

import importlib.util
import logging
import math

import numpy as np
import pytest
from conftest import EXAMPLES
from nan_test_layers import python_layer, zero_size_net

from caffe_nanlayers import NonFiniteError
from caffe_nanlayers.errors import UserError
from caffe_nanlayers.layers import SanitizeCounts
from caffe_nanlayers.params import FLOAT32_MAX

BAD = np.array([[1.0, np.nan, np.inf, -np.inf], [-50.0, 0.5, np.nan, 20.0]], np.float32)


def sanitizer_net(make_net, param_str="", in_place=True, shapes=((2, 4),)):
    names = [f"x{i}" for i in range(len(shapes))]
    tops = names if in_place else [f"s{i}" for i in range(len(shapes))]
    shape_text = " ".join("shape { " + " ".join(f"dim: {d}" for d in s) + " }" for s in shapes)
    tops_text = " ".join(f'top: "{n}"' for n in names)
    text = (
        f'name: "sanitize" force_backward: true\n'
        f'layer {{ name: "in" type: "Input" {tops_text} input_param {{ {shape_text} }} }}\n'
        + python_layer("sanitize", "InputSanitizerLayer", names, tops, param_str)
    )
    net = make_net(text)
    return net, net.layer_dict["sanitize"], tops


def test_defaults_replace_nan_by_0_and_inf_by_the_batch_range_and_count(make_net):
    net, layer, _ = sanitizer_net(make_net)
    net.blobs["x0"].data[...] = BAD
    net.forward()
    out = net.blobs["x0"].data
    # the finite values are 1, -50, 0.5 and 20: +Inf becomes 20, -Inf -50
    assert out.tolist() == [[1.0, 0.0, 20.0, -50.0], [-50.0, 0.5, 0.0, 20.0]]
    assert layer.batch_counts == SanitizeCounts(nan=2, posinf=1, neginf=1)
    assert layer.batch_counts.replaced == 4


def test_a_blob_with_no_finite_value_becomes_zeros(make_net):
    net, layer, _ = sanitizer_net(make_net)
    net.blobs["x0"].data[...] = np.array([[np.nan, np.inf, -np.inf, np.inf]] * 2, np.float32)
    net.forward()
    assert not net.blobs["x0"].data.any()
    assert layer.batch_counts == SanitizeCounts(nan=2, posinf=4, neginf=2)


def test_one_explicit_infinity_value_keeps_the_other_default(make_net):
    net, _, _ = sanitizer_net(make_net, "{'posinf': 7}")
    net.blobs["x0"].data[...] = BAD
    net.forward()
    assert net.blobs["x0"].data[0].tolist() == [1.0, 0.0, 7.0, -50.0]


# Data holding NaN, +Inf and -Inf, sanitized with every default, then the layers a
# regression has right after its data.
FINITE_NET = """
name: "finite" force_backward: true
layer { name: "in" type: "Input" top: "x" top: "y"
  input_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 } } }
{sanitize}
layer { name: "fc" type: "InnerProduct" bottom: "x" top: "fc"
  inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 1 }
    bias_filler { type: "constant" value: 0.5 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "fc" bottom: "y" top: "loss" }
"""


def forward_backward_finite_net(make_net, param_str):
    net = make_net(
        FINITE_NET.replace("{sanitize}", python_layer("s", "InputSanitizerLayer", ["x"], ["x"], param_str))
    )
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    x[0, 0], x[1, 2], x[3, 1] = np.nan, np.inf, -np.inf
    net.blobs["x"].data[...] = x
    net.blobs["y"].data[...] = rng.standard_normal((4, 2))
    net.forward()
    net.backward()
    return net


def test_with_every_default_the_next_layers_stay_finite(make_net):
    net = forward_backward_finite_net(make_net, "{}")
    assert math.isfinite(float(net.blobs["loss"].data))
    assert np.isfinite(net.blobs["fc"].data).all()
    assert np.isfinite(net.params["fc"][0].diff).all() and np.isfinite(net.params["fc"][1].diff).all()
    assert np.isfinite(net.blobs["x"].diff).all()


def test_explicit_values_still_win_even_float32s_extremes(make_net):
    # float32 max times a weight above 1 (or two such terms summed) is Inf again at the next layer.
    net = forward_backward_finite_net(make_net, f"{{'posinf': {FLOAT32_MAX!r}, 'neginf': {-FLOAT32_MAX!r}}}")
    assert FLOAT32_MAX in net.blobs["x"].data and -FLOAT32_MAX in net.blobs["x"].data
    assert not np.isfinite(net.blobs["loss"].data)


def test_replacement_values_clamp_and_totals(make_net):
    net, layer, _ = sanitizer_net(make_net, "{'nan': -1, 'posinf': 9, 'neginf': -9, 'clip': [-10, 10]}")
    for _ in range(2):
        net.blobs["x0"].data[...] = BAD
        net.forward()
    assert net.blobs["x0"].data.tolist() == [[1.0, -1.0, 9.0, -9.0], [-10.0, 0.5, -1.0, 10.0]]
    assert layer.batch_counts == SanitizeCounts(nan=2, posinf=1, neginf=1, clamped=2)
    assert layer.total_counts == SanitizeCounts(nan=4, posinf=2, neginf=2, clamped=4)
    assert layer.forward_passes == 2


def test_clean_batch_counts_zero_and_is_untouched(make_net):
    net, layer, _ = sanitizer_net(make_net, "{'clip': [-100, 100]}")
    clean = np.arange(8, dtype=np.float32).reshape(2, 4)
    net.blobs["x0"].data[...] = clean
    net.forward()
    assert np.array_equal(net.blobs["x0"].data, clean) and layer.batch_counts == SanitizeCounts()


def test_not_in_place_leaves_the_bottom_alone(make_net):
    net, _, _ = sanitizer_net(make_net, in_place=False)
    net.blobs["x0"].data[...] = BAD
    net.forward()
    assert np.isnan(net.blobs["x0"].data).sum() == 2
    assert np.isfinite(net.blobs["s0"].data).all()


@pytest.mark.parametrize("in_place", [True, False])
def test_backward_zero_where_replaced_or_clamped(make_net, in_place):
    net, _, tops = sanitizer_net(make_net, "{'clip': [-10, 10]}", in_place=in_place)
    net.blobs["x0"].data[...] = BAD
    net.forward()
    net.backward(**{tops[0]: np.full((2, 4), 3.0, np.float32)})
    kept = np.array([[1, 0, 0, 0], [0, 1, 0, 0]], bool)
    assert np.array_equal(net.blobs["x0"].diff, np.where(kept, 3.0, 0.0))


def test_several_bottoms_counted_each(make_net):
    net, layer, _ = sanitizer_net(make_net, shapes=((2, 4), (3,)))
    net.blobs["x0"].data[...] = BAD
    net.blobs["x1"].data[...] = [np.nan, 1, np.nan]
    net.forward()
    assert [c.nan for c in layer.batch_counts_by_bottom] == [2, 2]
    assert layer.batch_counts == SanitizeCounts(nan=4, posinf=1, neginf=1)


def test_mode_raise(make_net):
    net, _, _ = sanitizer_net(make_net, "{'mode': 'raise', 'label': 'features'}")
    net.blobs["x0"].data[...] = BAD
    with pytest.raises(NonFiniteError) as err:
        net.forward()
    e = err.value
    assert (e.layer, e.direction, e.blob_name, e.label) == ("sanitize", "forward", "x0", "features")
    assert (e.stats.nan, e.stats.posinf, e.stats.neginf) == (2, 1, 1)
    assert "InputSanitizerLayer 'sanitize' [features]" in str(e)


def test_mode_warn_logs_each_bad_batch(make_net, caplog):
    net, _, _ = sanitizer_net(make_net, "{'mode': 'warn'}")
    with caplog.at_level(logging.WARNING, logger="caffe_nanlayers.layers"):
        net.blobs["x0"].data[...] = BAD
        net.forward()
        net.blobs["x0"].data[...] = 0
        net.forward()
    (record,) = caplog.records
    assert "InputSanitizerLayer 'sanitize'" in record.getMessage()
    assert (
        "batch 0" in record.getMessage()
        and "bottom 0 'x0': 2 NaN, 1 +Inf, 1 -Inf replaced" in record.getMessage()
    )


def test_json_param_str(make_net):
    net, layer, _ = sanitizer_net(make_net, '{"nan": -1, "posinf": 9, "neginf": -9, "mode": "warn"}')
    net.blobs["x0"].data[...] = BAD
    net.forward()
    assert net.blobs["x0"].data.tolist() == [[1.0, -1.0, 9.0, -9.0], [-50.0, 0.5, -1.0, 20.0]]
    assert layer.params["mode"] == "warn"


# x is an input (no force_backward) and h the output of a layer with weights:
# Caffe calls the sanitizer's backward with propagate_down [False, True].
HALF_BACKWARD = """
name: "half_backward"
layer { name: "in" type: "Input" top: "x" top: "u" top: "t"
        input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 3 } shape { dim: 2 dim: 3 } } }
layer { name: "h" type: "InnerProduct" bottom: "u" top: "h"
        inner_product_param { num_output: 3 bias_term: false } }
%s
layer { name: "sum" type: "Eltwise" bottom: "x2" bottom: "h2" top: "s" }
layer { name: "loss" type: "EuclideanLoss" bottom: "s" bottom: "t" top: "loss" }
"""


def test_propagate_down_false_bottom_is_left_alone(make_net):
    sanitize = python_layer("sanitize", "InputSanitizerLayer", ["x", "h"], ["x2", "h2"], "{'clip': [-1, 1]}")
    text = HALF_BACKWARD % sanitize
    net = make_net(text)
    net.params["h"][0].data[...] = np.eye(3)  # h = u
    net.blobs["x"].data[...] = [[np.nan, 0, 0], [0, 0, np.inf]]
    net.blobs["u"].data[...] = [[0.5, 5, 0], [0, 0, 0]]
    net.blobs["t"].data[...] = -4
    net.forward()
    net.blobs["x"].diff[...] = 42
    net.backward()
    assert (net.blobs["x"].diff == 42).all()  # not even zeroed where x was replaced
    h2 = net.blobs["h2"].diff
    assert h2.all() and np.array_equal(net.blobs["h"].diff, np.where([[0, 1, 0], [0, 0, 0]], 0, h2))


@pytest.mark.parametrize("in_place", [False, True])
def test_zero_size_bottom_is_skipped_and_the_others_sanitized(make_net, in_place):
    text, tops = zero_size_net("sanitize", "InputSanitizerLayer", in_place)
    net = make_net(text)
    layer = net.layer_dict["sanitize"]
    net.blobs["y"].data[...] = [np.nan, 2]
    net.forward()
    assert net.blobs[tops[1]].data.tolist() == [0, 2]
    assert layer.batch_counts_by_bottom == [SanitizeCounts(), SanitizeCounts(nan=1)]
    net.blobs[tops[1]].diff[...] = [3, 4]
    net._backward(len(net.layers) - 1, 0)  # not net.backward(): it returns (reads) the inputs' diffs
    assert net.blobs["y"].diff.tolist() == [0, 4]


@pytest.mark.parametrize(
    ("param_str", "expected"),
    [
        ("{'nan': 'zero'}", "key 'nan' must be a number"),
        ("{'posinf': 1e39}", "key 'posinf' must be a finite number that float32 can hold"),
        ("{'clip': [1, -1]}", "key 'clip' must be [lo, hi] with lo <= hi"),
        ("{'mode': 'drop'}", "key 'mode' must be one of 'replace', 'warn', 'raise'"),
    ],
)
def test_bad_param_str_fails_at_construction(make_net, param_str, expected):
    with pytest.raises(UserError) as err:
        sanitizer_net(make_net, param_str)
    assert str(err.value).startswith("InputSanitizerLayer") and expected in str(err.value)
    assert "valid keys: clip, label, mode, nan, neginf, posinf" in str(err.value)


def example_net(tmp_path, name):
    """The shipped example net, reading a dataset that make_data.py writes into tmp_path."""
    spec = importlib.util.spec_from_file_location("make_data", EXAMPLES / "input_sanitizer" / "make_data.py")
    make_data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_data)
    injected = make_data.make_data(tmp_path / "data")
    text = (EXAMPLES / "input_sanitizer" / name).read_text()
    text = text.replace('source: "data/train_h5.txt"', f'source: "{tmp_path / "data" / "train_h5.txt"}"')
    assert str(tmp_path) in text
    return text, injected, make_data.RECORDS


def run_one_epoch(make_solver, text, records):
    solver = make_solver('base_lr: 0.01 momentum: 0.9 lr_policy: "fixed" max_iter: 100 display: 0', text)
    batch = solver.net.blobs["data"].data.shape[0]
    losses = []
    for _ in range(math.ceil(records / batch)):
        solver.step(1)
        losses.append(float(solver.net.blobs["loss"].data))
    return solver, losses


def test_injected_nan_and_inf_make_the_loss_nonfinite_without_the_sanitizer(make_solver, tmp_path):
    text, _, records = example_net(tmp_path, "train_val_bad.prototxt")
    _, losses = run_one_epoch(make_solver, text, records)
    assert not all(math.isfinite(loss) for loss in losses)


def test_sanitizer_keeps_the_loss_finite_and_counts_what_was_injected(make_solver, tmp_path, caplog):
    text, injected, records = example_net(tmp_path, "train_val.prototxt")
    with caplog.at_level(logging.WARNING, logger="caffe_nanlayers.layers"):
        solver, losses = run_one_epoch(make_solver, text, records)
    assert all(math.isfinite(loss) for loss in losses)
    total = solver.net.layer_dict["sanitize"].total_counts
    assert {"nan": total.nan, "posinf": total.posinf, "neginf": total.neginf} == injected
    assert all(np.isfinite(p.data).all() for p in solver.net.params["fc1"])
    assert caplog.records and "held non-finite input" in caplog.records[0].getMessage()
