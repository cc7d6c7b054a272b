"""GradientClipLayer in real Caffe nets: the clipping rule, its scopes and modes, and a real explosion."""

import logging
import math

import numpy as np
import pytest
from nan_test_layers import HALF_BACKWARD, python_layer, zero_size_net

from caffe_nanlayers import NonFiniteError
from caffe_nanlayers.errors import UserError


def clip_net(make_net, param_str, shapes=((4, 5),), in_place=False, phase="TEST"):
    """Inputs x0.. -> GradientClipLayer -> outputs y0.. (or x0.. in place); the test sets the top diffs."""
    names = [f"x{i}" for i in range(len(shapes))]
    tops = names if in_place else [f"y{i}" for i in range(len(shapes))]
    shape_text = " ".join("shape { " + " ".join(f"dim: {d}" for d in s) + " }" for s in shapes)
    text = (
        f'name: "clip" force_backward: true\n'
        f'layer {{ name: "in" type: "Input" {" ".join(f"top: {n!r}" for n in names)} '
        f"input_param {{ {shape_text} }} }}\n".replace("'", '"')
        + python_layer("clip", "GradientClipLayer", names, tops, param_str)
    )
    net = make_net(text, phase)
    return net, net.layer_dict["clip"], tops


def backward_with(net, tops, grads):
    net.forward()
    net.backward(**dict(zip(tops, grads)))


def gradient(norm, shape=(4, 5), seed=0):
    g = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return g * np.float32(norm / np.linalg.norm(g))


@pytest.mark.parametrize("in_place", [False, True])
def test_norm_above_threshold_is_rescaled_to_it(make_net, in_place):
    net, layer, tops = clip_net(make_net, "{'threshold': 2.0, 'log_every': 0}", in_place=in_place)
    net.blobs["x0"].data[...] = 3
    g = gradient(50.0)
    backward_with(net, tops, [g])
    out = net.blobs["x0"].diff
    assert np.linalg.norm(out) == pytest.approx(2.0, rel=1e-6)
    assert np.allclose(out, g * (2.0 / 50.0), rtol=1e-6)  # same direction
    assert (net.blobs[tops[0]].data == 3).all()  # forward is the identity
    assert layer.clip_events == 1 and layer.max_norm == pytest.approx(50.0, rel=1e-6)
    assert layer.last_norms == [pytest.approx(50.0, rel=1e-6)]


def test_norm_below_threshold_is_untouched(make_net):
    net, layer, tops = clip_net(make_net, "{'threshold': 2.0}")
    g = gradient(1.5)
    backward_with(net, tops, [g])
    assert np.array_equal(net.blobs["x0"].diff, g)
    assert layer.clip_events == 0 and layer.max_norm == pytest.approx(1.5, rel=1e-6)


def test_huge_gradient_norm_does_not_overflow(make_net):
    # ||g||^2 is beyond float32's range while g itself is finite.
    net, layer, tops = clip_net(make_net, "{'threshold': 1.0}")
    g = gradient(1e30)
    backward_with(net, tops, [g])
    assert np.linalg.norm(net.blobs["x0"].diff.astype(np.float64)) == pytest.approx(1.0, rel=1e-5)
    assert layer.max_norm == pytest.approx(1e30, rel=1e-5)


def test_norm_of_a_large_blob_is_exact(make_net):
    # One chunk (of the layer's 2**16 elements) of loud gradients, then many
    # quiet chunks: one float32 dot over the whole blob rounds most of the
    # quiet squares away against the loud partial sums; float32 dots per
    # chunk, summed in float64, keep them.
    shape = (4, 100_000)
    net, layer, tops = clip_net(make_net, "{'threshold': 3.0}", shapes=(shape,))
    g = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    flat = g.reshape(-1)  # a view
    flat[: 1 << 16] *= 100
    exact = math.sqrt(np.sum(flat.astype(np.float64) ** 2))
    one_dot = math.sqrt(float(np.dot(flat, flat)))
    assert abs(one_dot - exact) / exact > 1e-6  # ~1e-5 here: the data tells the two ways apart
    backward_with(net, tops, [g])
    assert layer.last_norms[0] == pytest.approx(exact, rel=1e-7)
    assert np.linalg.norm(net.blobs["x0"].diff.astype(np.float64)) == pytest.approx(3.0, rel=1e-6)


def test_global_scope_uses_one_norm_over_all_bottoms(make_net):
    net, layer, tops = clip_net(make_net, "{'threshold': 1.0}", shapes=((3,), (2, 2)))
    g0, g1 = gradient(3.0, (3,)), gradient(4.0, (2, 2), seed=1)  # global norm 5
    backward_with(net, tops, [g0, g1])
    assert np.allclose(net.blobs["x0"].diff, g0 / 5, rtol=1e-6)
    assert np.allclose(net.blobs["x1"].diff, g1 / 5, rtol=1e-6)
    assert layer.clip_events == 1 and layer.last_norms == [pytest.approx(5.0)]


def test_blob_scope_clips_each_bottom_on_its_own(make_net):
    net, layer, tops = clip_net(make_net, "{'threshold': 3.5, 'scope': 'blob'}", shapes=((3,), (2, 2)))
    g0, g1 = gradient(3.0, (3,)), gradient(4.0, (2, 2), seed=1)
    backward_with(net, tops, [g0, g1])
    assert np.array_equal(net.blobs["x0"].diff, g0)  # below threshold
    assert np.linalg.norm(net.blobs["x1"].diff) == pytest.approx(3.5, rel=1e-6)
    assert layer.clip_events == 1 and layer.last_norms == [pytest.approx(3.0), pytest.approx(4.0)]


def test_value_mode_clips_elements(make_net):
    net, layer, tops = clip_net(make_net, "{'threshold': 0.5, 'mode': 'value'}", shapes=((4,),))
    backward_with(net, tops, [np.array([-2.0, -0.25, 0.5, 7.0], np.float32)])
    assert net.blobs["x0"].diff.tolist() == [-0.5, -0.25, 0.5, 0.5]
    assert layer.clip_events == 1 and layer.max_norm == 7.0


def test_nonfinite_gradient_raises_by_default(make_net):
    net, _, tops = clip_net(make_net, "{'threshold': 1.0, 'label': 'above fc'}")
    g = gradient(0.5)
    g[1, 2] = np.nan
    with pytest.raises(NonFiniteError) as err:
        backward_with(net, tops, [g])
    e = err.value
    assert (e.layer, e.direction, e.blob_name, e.stats.nan) == ("clip", "backward", "y0", 1)
    assert "GradientClipLayer 'clip' [above fc]" in str(e)


def test_nonfinite_zero_skips_the_update_and_pass_lets_it_through(make_net, caplog):
    g0, g1 = gradient(0.5, (3,)), gradient(0.5, (2, 2))
    g1[0, 0] = np.inf
    for policy, scope, expect_x0, expect_x1_zero in (
        ("zero", "global", np.zeros(3), True),
        ("zero", "blob", g0, True),
        ("pass", "global", g0, False),
    ):
        net, layer, tops = clip_net(
            make_net,
            f"{{'threshold': 1.0, 'nonfinite': '{policy}', 'scope': '{scope}'}}",
            shapes=((3,), (2, 2)),
        )
        with caplog.at_level(logging.WARNING, logger="caffe_nanlayers.layers"):
            backward_with(net, tops, [g0, g1])
        assert np.array_equal(net.blobs["x0"].diff, expect_x0)
        x1 = net.blobs["x1"].diff
        assert (x1 == 0).all() if expect_x1_zero else np.array_equal(x1, g1)
        assert layer.nonfinite_events == 1
        assert f"nonfinite: '{policy}'" in caplog.records[-1].getMessage()


@pytest.mark.parametrize("in_place", [False, True])
def test_nonfinite_zero_with_global_scope_does_not_clip_the_zeroed_good_bottom(make_net, in_place):
    # The good bottom's norm is above the threshold: clipping it would write
    # its scaled gradient back over the zeros, and count a norm thrown away.
    net, layer, tops = clip_net(
        make_net,
        "{'threshold': 1.0, 'nonfinite': 'zero', 'log_every': 0}",
        shapes=((3,), (2, 2)),
        in_place=in_place,
    )
    g0, g1 = gradient(5.0, (3,)), gradient(0.5, (2, 2))
    g1[0, 0] = np.nan
    backward_with(net, tops, [g0, g1])
    assert (net.blobs["x0"].diff == 0).all() and (net.blobs["x1"].diff == 0).all()
    assert (layer.nonfinite_events, layer.clip_events, layer.last_norms, layer.max_norm) == (1, 0, [], 0.0)


def test_nonfinite_pass_with_blob_scope_clips_the_good_bottom_only(make_net):
    net, layer, tops = clip_net(
        make_net, "{'threshold': 1.0, 'nonfinite': 'pass', 'scope': 'blob'}", shapes=((3,), (2, 2))
    )
    g0, g1 = gradient(4.0, (3,)), gradient(0.5, (2, 2))
    g1[1, 1] = -np.inf
    backward_with(net, tops, [g0, g1])
    assert np.allclose(net.blobs["x0"].diff, g0 / 4, rtol=1e-6)
    assert np.array_equal(net.blobs["x1"].diff, g1)  # passed on unchanged, -Inf included
    assert (layer.nonfinite_events, layer.clip_events) == (1, 1)
    assert layer.last_norms == [pytest.approx(4.0, rel=1e-6)]


def test_value_mode_with_global_scope_clips_every_bottom_elementwise(make_net):
    net, layer, tops = clip_net(make_net, "{'threshold': 0.5, 'mode': 'value'}", shapes=((3,), (2,)))
    backward_with(net, tops, [np.array([0.25, -0.75, 0.5], np.float32), np.array([-7.0, 0.1], np.float32)])
    assert net.blobs["x0"].diff.tolist() == [0.25, -0.5, 0.5]
    assert net.blobs["x1"].diff.tolist() == [-0.5, pytest.approx(0.1)]
    assert layer.clip_events == 1 and layer.last_norms == [7.0]


def test_json_param_str(make_net):
    net, layer, tops = clip_net(
        make_net, '{"threshold": 2, "scope": "blob", "log_every": 0}', shapes=((3,), (2,))
    )
    assert (layer.threshold, layer.params["scope"]) == (2.0, "blob")
    backward_with(net, tops, [gradient(4.0, (3,)), gradient(1.0, (2,))])
    assert np.linalg.norm(net.blobs["x0"].diff) == pytest.approx(2.0, rel=1e-6)
    assert layer.clip_events == 1


def test_propagate_down_false_bottom_is_left_alone_and_out_of_the_norm(make_net):
    net = make_net(
        HALF_BACKWARD
        % python_layer("clip", "GradientClipLayer", ["x", "h"], ["x2", "h2"], "{'threshold': 1.0}")
    )
    layer = net.layer_dict["clip"]
    gx, gh = gradient(100.0, (2, 3)), gradient(0.5, (2, 3), seed=1)
    # x = 0 and u = 0 (so h = 0: no bias); EuclideanLoss sends (bottom - target) / batch size 2.
    net.blobs["x"].data[...] = 0
    net.blobs["u"].data[...] = 0
    net.blobs["tx"].data[...] = -2 * gx
    net.blobs["th"].data[...] = -2 * gh
    net.forward()
    net.blobs["x"].diff[...] = 42
    net.backward()
    assert np.array_equal(net.blobs["h2"].diff, gh)
    assert np.array_equal(net.blobs["h"].diff, gh)  # 0.5 < 1: the large gradient at x2 is not counted
    assert (net.blobs["x"].diff == 42).all()
    assert layer.last_norms == [pytest.approx(0.5, rel=1e-6)] and layer.clip_events == 0


@pytest.mark.parametrize("in_place", [False, True])
def test_zero_size_bottom(make_net, in_place):
    text, tops = zero_size_net("clip", "GradientClipLayer", in_place, "{'threshold': 1.0}")
    net = make_net(text)
    layer = net.layer_dict["clip"]
    assert net.blobs[tops[0]].count == 0
    net.blobs["y"].data[...] = [1, 2]
    net.forward()
    assert net.blobs[tops[1]].data.tolist() == [1, 2]
    net.blobs[tops[1]].diff[...] = [3, 4]
    net._backward(len(net.layers) - 1, 0)  # not net.backward(): it returns (reads) the inputs' diffs
    assert net.blobs["y"].diff.tolist() == [pytest.approx(0.6), pytest.approx(0.8)]
    assert layer.last_norms == [pytest.approx(5.0)]


def test_summary_every_n_backward_passes(make_net, caplog):
    net, _, tops = clip_net(make_net, "{'threshold': 1.0, 'log_every': 2}")
    with caplog.at_level(logging.INFO, logger="caffe_nanlayers.layers"):
        for norm in (5.0, 0.5, 0.5):
            backward_with(net, tops, [gradient(norm)])
    (record,) = [r for r in caplog.records if r.levelno == logging.INFO]
    assert "GradientClipLayer 'clip'" in record.getMessage()
    assert "clipped 1 time(s) in the last 2 backward passes" in record.getMessage()


def test_forward_only_in_test_phase(make_net):
    net, layer, _ = clip_net(make_net, "{'threshold': 1.0}", phase="TEST")
    net.blobs["x0"].data[...] = 7
    net.forward()
    assert (net.blobs["y0"].data == 7).all() and layer.phase == 1


@pytest.mark.parametrize(
    ("param_str", "expected"),
    [
        ("", "key 'threshold' is required"),
        ("{'threshold': 0}", "key 'threshold' must be a finite number > 0"),
        ("{'threshold': 1, 'scope': 'layer'}", "key 'scope' must be one of 'global', 'blob'"),
        ("{'threshold': 1, 'log_every': -1}", "key 'log_every' must be >= 0"),
        ("{'threshold': 1, 'clip': 2}", "unknown key 'clip'"),
    ],
)
def test_bad_param_str_fails_at_construction(make_net, param_str, expected):
    with pytest.raises(UserError) as err:
        clip_net(make_net, param_str)
    assert str(err.value).startswith("GradientClipLayer") and expected in str(err.value)
    assert "valid keys: label, log_every, mode, nonfinite, scope, threshold" in str(err.value)


# Linear regression on standard-normal features: with base_lr 5 plain SGD
# overshoots further every step and the loss overflows within ~30 iterations.
REGRESSION = """
name: "regression"
layer { name: "data" type: "DummyData" top: "x" top: "y"
  dummy_data_param { shape { dim: 32 dim: 10 } shape { dim: 32 dim: 1 }
                     data_filler { type: "gaussian" std: 1 } data_filler { type: "gaussian" std: 1 } } }
layer { name: "fc" type: "InnerProduct" bottom: "x" top: "pred"
  inner_product_param { num_output: 1 weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
%s
layer { name: "loss" type: "EuclideanLoss" bottom: "pred" bottom: "y" top: "loss" }
"""
HOT_SOLVER = 'base_lr: 5 momentum: 0.9 lr_policy: "fixed" max_iter: 300 display: 0 random_seed: 1'
CLIP = python_layer("clip", "GradientClipLayer", ["pred"], ["pred"], "{'threshold': 0.1, 'log_every': 0}")


def first_nonfinite_loss(solver, iterations):
    for it in range(iterations):
        solver.step(1)
        if not math.isfinite(float(solver.net.blobs["loss"].data)):
            return it
    return None


def test_gradient_explosion_is_contained(make_solver, tmp_path):
    plain = make_solver(HOT_SOLVER, REGRESSION % "")
    assert first_nonfinite_loss(plain, 300) is not None

    clipped = make_solver(HOT_SOLVER, REGRESSION % CLIP)
    layer = clipped.net.layer_dict["clip"]
    for _ in range(300):
        clipped.step(1)
        assert math.isfinite(float(clipped.net.blobs["loss"].data))
        norm = layer.last_norms[0]
        diff_norm = np.linalg.norm(clipped.net.blobs["pred"].diff.astype(np.float64))
        assert diff_norm == pytest.approx(min(norm, 0.1), rel=1e-5)
    assert 0 < layer.clip_events <= 300 and layer.max_norm > 0.1
