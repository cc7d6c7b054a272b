"""CheckFiniteLayer in real Caffe nets: forward and backward, every mode, in place or not."""

import collections
import json
import logging
import tracemalloc

import numpy as np
import pytest
from nan_test_layers import HALF_BACKWARD, python_layer, zero_size_net

from caffe_nanlayers import NonFiniteError
from caffe_nanlayers.errors import UserError
from caffe_nanlayers.layers import CheckFiniteLayer

# AVE pooling, kernel 3, stride 5 on 10x10: the last row and column of the
# 3x3 output pool empty windows, 0/0 = NaN (5 of 9 values).
POOL_NET = """
name: "pool" force_backward: true
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } } }
layer { name: "pool1" type: "Pooling" bottom: "data" top: "pool1"
        pooling_param { pool: AVE kernel_size: 3 stride: 5 } }
"""


def pool_net(make_net, param_str, layer="CheckFiniteLayer", phase="TEST"):
    net = make_net(POOL_NET + python_layer("check_pool1", layer, ["pool1"], ["pool1"], param_str), phase)
    net.blobs["data"].data[...] = np.random.default_rng(0).random((1, 1, 10, 10))
    return net


def test_forward_nan_after_pooling_raises_naming_layer_direction_and_counts(make_net):
    net = pool_net(make_net, "{'label': 'after pool1'}")
    with pytest.raises(NonFiniteError) as err:
        net.forward()
    e = err.value
    assert isinstance(e, FloatingPointError)
    assert (e.layer, e.label, e.direction, e.blob_index, e.blob_name) == (
        "check_pool1",
        "after pool1",
        "forward",
        0,
        "pool1",
    )
    assert (e.stats.nan, e.stats.posinf, e.stats.neginf) == (5, 0, 0)
    assert e.stats.shape == (1, 1, 3, 3) and e.stats.first_index == (0, 0, 0, 2)
    assert e.iteration == 0 and e.dump_path is None
    message = str(e)
    for part in ("CheckFiniteLayer 'check_pool1'", "after pool1", "forward", "bottom 0 'pool1'", "5 NaN"):
        assert part in message
    assert "55.6%" in message and "(1, 1, 3, 3)" in message and "finite min" in message


def test_snippet_alias_and_plain_label(make_net):
    net = pool_net(make_net, "prefix-check_pool1", layer="checkFiniteLayer")
    with pytest.raises(NonFiniteError, match=r"\[prefix-check_pool1\]") as err:
        net.forward()
    assert err.value.label == "prefix-check_pool1"


def test_warn_logs_and_lets_forward_finish(make_net, caplog):
    net = pool_net(make_net, "{'label': 'after pool1', 'mode': 'warn'}")
    with caplog.at_level(logging.WARNING, logger="caffe_nanlayers.layers"):
        net.forward()
        net.forward()
    assert np.isnan(net.blobs["pool1"].data).sum() == 5
    records = [r for r in caplog.records if r.name == "caffe_nanlayers.layers"]
    assert len(records) == 2 and records[0].levelno == logging.WARNING
    assert "forward" in records[0].getMessage() and "5 NaN" in records[0].getMessage()
    assert "iteration 1" in records[1].getMessage()
    layer = net.layer_dict["check_pool1"]
    assert layer.events == 2 and layer.forward_passes == 2


def test_dump_writes_the_bad_blob_then_raises(make_net, tmp_path):
    dump_dir = tmp_path / "dumps"
    net = pool_net(make_net, json.dumps({"label": "after pool1", "mode": "dump", "dump_dir": str(dump_dir)}))
    with pytest.raises(NonFiniteError) as err:
        net.forward()
    path = err.value.dump_path
    assert path and path in str(err.value)
    assert path == str(dump_dir / "check_pool1-forward-iter0.npz")
    with np.load(path) as dump:
        blob = dump["blob0"]
        meta = json.loads(str(dump["meta"]))
    assert blob.shape == (1, 1, 3, 3) and np.isnan(blob).sum() == 5
    assert np.array_equal(blob, net.blobs["pool1"].data, equal_nan=True)
    assert meta["layer"] == "check_pool1" and meta["direction"] == "forward" and meta["iteration"] == 0
    (entry,) = meta["blobs"]
    assert entry["name"] == "pool1" and entry["nan"] == 5 and entry["shape"] == [1, 1, 3, 3]
    with pytest.raises(NonFiniteError) as again:  # a second dump never overwrites the first
        net.forward()
    assert again.value.dump_path.endswith("check_pool1-forward-iter1.npz")
    # Written through a temporary file renamed into place: nothing else is left behind.
    assert sorted(p.name for p in dump_dir.iterdir()) == [
        "check_pool1-forward-iter0.npz",
        "check_pool1-forward-iter1.npz",
    ]


def test_dump_that_cannot_be_written_still_raises_the_nonfinite_error(make_net, tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    net = pool_net(make_net, json.dumps({"mode": "dump", "dump_dir": str(not_a_dir / "dumps")}))
    with pytest.raises(NonFiniteError) as err:
        net.forward()
    e = err.value
    assert e.stats.nan == 5 and e.dump_path is None
    message = str(e)
    assert "check_pool1" in message and "forward" in message and "5 NaN" in message
    assert f"dump failed: Not a directory: {not_a_dir / 'dumps'}" in message


# A gradient that is NaN though the forward pass is clean: caught below the
# layer that makes it, in backward, where a forward check sees nothing.
BACKWARD_NET = """
name: "backward_nan" force_backward: true
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 4 dim: 3 } } }
layer { name: "t" type: "Input" top: "t" input_param { shape { dim: 4 dim: 2 } } }
layer { name: "fc1" type: "InnerProduct" bottom: "x" top: "fc1"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.1 } } }
"""


def backward_net(make_net, param_str="{'label': 'below the NaN'}", in_place=True):
    check_top = "fc1" if in_place else "fc1_checked"
    text = (
        BACKWARD_NET
        + python_layer("check_fc1", "CheckFiniteLayer", ["fc1"], [check_top], param_str)
        + python_layer("nan_grad", "BackwardNaNLayer", [check_top], ["y"], "nan", module="nan_test_layers")
        + 'layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }\n'
    )
    net = make_net(text)
    net.blobs["x"].data[...] = np.random.default_rng(1).standard_normal((4, 3))
    return net


@pytest.mark.parametrize("in_place", [True, False])
def test_backward_only_nan_is_caught_in_backward(make_net, in_place):
    net = backward_net(make_net, in_place=in_place)
    net.forward()
    assert np.isfinite(net.blobs["loss"].data).all()
    with pytest.raises(NonFiniteError) as err:
        net.backward()
    e = err.value
    assert (e.layer, e.direction, e.blob_index) == ("check_fc1", "backward", 0)
    assert e.blob_name == ("fc1" if in_place else "fc1_checked")
    assert e.stats.nan == 1 and "backward" in str(e) and "gradient arriving here" in str(e)


def test_direction_forward_does_not_check_backward(make_net):
    net = backward_net(make_net, "{'direction': 'forward'}")
    net.forward()
    net.backward()
    assert np.isnan(net.blobs["x"].diff).any()


def test_direction_backward_does_not_check_forward(make_net):
    net = pool_net(make_net, "{'direction': 'backward'}")
    net.forward()


def test_in_training_the_iteration_is_the_solvers(make_solver):
    net = (
        BACKWARD_NET.replace("force_backward: true", "")
        + python_layer("check_fc1", "CheckFiniteLayer", ["fc1"], ["fc1"], "{'label': 'below'}")
        + python_layer(
            "nan_grad",
            "BackwardNaNLayer",
            ["fc1"],
            ["y"],
            "{'value': 'inf', 'after': 3}",
            module="nan_test_layers",
        )
        + 'layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }\n'
    )
    solver = make_solver('base_lr: 0.01 lr_policy: "fixed" max_iter: 10 display: 0', net)
    solver.step(3)
    with pytest.raises(NonFiniteError) as err:
        solver.step(1)
    assert err.value.iteration == solver.iter == 3
    assert err.value.layer == "check_fc1" and err.value.stats.posinf == 1


def test_not_in_place_passes_data_and_diffs_honouring_propagate_down(make_net):
    # Two bottoms: x (an input, needs no gradient) and h (needs one).
    text = (
        """
name: "two" layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "h" type: "InnerProduct" bottom: "x" top: "h"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 1 } } }
"""
        + python_layer("check", "CheckFiniteLayer", ["x", "h"], ["x2", "h2"])
        + """
layer { name: "sum" type: "Eltwise" bottom: "x2" bottom: "h2" top: "s" }
layer { name: "loss" type: "EuclideanLoss" bottom: "s" bottom: "x" top: "loss" }
"""
    )
    net = make_net(text, phase="TRAIN")
    net.blobs["x"].data[...] = np.arange(6).reshape(2, 3)
    net.forward()
    assert np.array_equal(net.blobs["x2"].data, net.blobs["x"].data)
    assert np.array_equal(net.blobs["h2"].data, net.blobs["h"].data)
    net.blobs["x"].diff[...] = 42
    net.backward()
    assert np.array_equal(net.blobs["h"].diff, net.blobs["h2"].diff) and net.blobs["h"].diff.any()
    assert (net.blobs["x"].diff == 42).all()  # propagate_down false for x: left alone


@pytest.mark.parametrize("mode", ["raise", "warn"])
def test_backward_checks_a_top_whose_bottom_gets_no_gradient(make_net, mode, caplog):
    # The snippet this layer replaces checks only when propagate_down is
    # false; this check must fire then too, not only when it is true.
    check = python_layer("check", "CheckFiniteLayer", ["x", "h"], ["x2", "h2"], f"{{'mode': '{mode}'}}")
    net = make_net(HALF_BACKWARD % check)
    net.blobs["tx"].data[0, 1] = np.nan
    net.forward()
    net.blobs["x"].diff[...] = 42
    with caplog.at_level(logging.WARNING, logger="caffe_nanlayers.layers"):
        if mode == "raise":
            with pytest.raises(NonFiniteError) as err:
                net.backward()
            assert (err.value.direction, err.value.blob_index, err.value.blob_name) == ("backward", 0, "x2")
            return
        net.backward()
    (record,) = caplog.records
    assert "backward" in record.getMessage() and "top 0 'x2'" in record.getMessage()
    assert (net.blobs["x"].diff == 42).all()  # propagate_down was false for x: left alone
    assert np.array_equal(net.blobs["h"].diff, net.blobs["h2"].diff)


def test_several_bottoms_name_each_bad_one(make_net):
    text = (
        'name: "m" layer { name: "in" type: "Input" top: "a" top: "b" top: "c"\n'
        "  input_param { shape { dim: 2 dim: 2 } shape { dim: 3 } shape { dim: 1 } } }\n"
        + python_layer("check_abc", "CheckFiniteLayer", ["a", "b", "c"], ["a", "b", "c"])
    )
    net = make_net(text)
    net.blobs["b"].data[...] = [1, np.inf, -np.inf]
    net.blobs["c"].data[...] = np.nan
    with pytest.raises(NonFiniteError) as err:
        net.forward()
    e = err.value
    assert (e.blob_index, e.blob_name) == (1, "b") and (e.stats.posinf, e.stats.neginf) == (1, 1)
    lines = str(e).splitlines()
    assert "bottom 1 'b'" in lines[0] and "bottom 2 'c'" in lines[1] and "1 NaN" in lines[1]
    net.blobs["b"].data[...] = 0
    net.blobs["c"].data[...] = 0
    net.forward()


def test_probe_without_tops_checks_forward(make_net):
    text = POOL_NET + python_layer("check_probe", "CheckFiniteLayer", ["pool1"], [], "prefix-probe")
    net = make_net(text)
    with pytest.raises(NonFiniteError, match="check_probe"):
        net.forward()


def test_a_blob_read_by_several_layers_keeps_its_name(make_net):
    # pool1 feeds two checks: Caffe splits it into pool1_pool1_0_split_0 and _1.
    backward_only = python_layer("copy", "CheckFiniteLayer", ["pool1"], ["c"], "{'direction': 'backward'}")
    net = make_net(POOL_NET + backward_only + python_layer("probe", "CheckFiniteLayer", ["pool1"], []))
    with pytest.raises(NonFiniteError) as err:
        net.forward()
    assert (err.value.layer, err.value.blob_name) == ("probe", "pool1")


def test_train_and_test_phase_nets(make_net):
    for phase in ("TRAIN", "TEST"):
        net = pool_net(make_net, "{'label': 'x'}", phase=phase)
        with pytest.raises(NonFiniteError) as err:
            net.forward()
        assert err.value.layer == "check_pool1"
        assert net.layer_dict["check_pool1"].phase == (0 if phase == "TRAIN" else 1)


@pytest.mark.parametrize(
    ("param_str", "expected"),
    [
        ("{'mod': 'warn'}", "unknown key 'mod' (did you mean 'mode'?)"),
        ("{'mode': 'stop'}", "key 'mode' must be one of 'raise', 'warn', 'dump'"),
        ('{"direction": 1}', "key 'direction' must be a string"),
        ("mode: warn", "write a dict literal"),
    ],
)
def test_bad_param_str_fails_at_net_construction(make_net, param_str, expected):
    with pytest.raises(UserError) as err:
        pool_net(make_net, param_str)
    message = str(err.value)
    assert message.startswith("CheckFiniteLayer") and expected in message
    assert "valid keys: direction, dump_dir, label, mode" in message


def test_wrong_number_of_tops_fails_at_construction(make_net):
    text = POOL_NET + python_layer("check", "CheckFiniteLayer", ["data", "pool1"], ["checked"])
    with pytest.raises(UserError, match=r"as many tops as bottoms \(or none\)"):
        make_net(text)


def test_bind_names(make_net):
    from caffe_nanlayers.layers import CheckFiniteLayer, bind_names

    net = pool_net(make_net, "")
    assert bind_names(net) == 1
    layer = net.layer_dict["check_pool1"]
    assert isinstance(layer, CheckFiniteLayer)
    assert (layer.name, layer.bottom_names, layer.top_names) == ("check_pool1", ["pool1"], ["pool1"])


def test_name_from_the_caffe_command_line(make_net, tmp_path):
    """Under ``caffe train`` there is no pycaffe object: the names come from the solver's prototxt."""
    from caffe_nanlayers.layers.naming import find_in_command_line_prototxt as find

    check = python_layer("check_pool1", "CheckFiniteLayer", ["pool1"], ["pool1"], "{'label': 'p'}")
    net_path, solver_path = tmp_path / "train_val.prototxt", tmp_path / "solver.prototxt"
    net_path.write_text(POOL_NET + check)
    solver_path.write_text(f'net: "{net_path}"\nbase_lr: 0.1\n')
    layer = make_net(POOL_NET + check).layer_dict["check_pool1"]
    assert find(layer, ["caffe", "train", f"--solver={solver_path}"]) == ("check_pool1", ["pool1"], ["pool1"])
    assert find(layer, ["caffe", "time", "-model", str(net_path)])[0] == "check_pool1"


def test_name_from_the_caffe_command_line_past_an_exclude_rule_of_a_stage(make_net, tmp_path):
    """Excluded from TRAIN only in stage "deploy", the check is in caffe train's net (no -stage)."""
    from caffe_nanlayers.layers.naming import find_in_command_line_prototxt as find

    check = python_layer("check_pool1", "CheckFiniteLayer", ["pool1"], ["pool1"], "{'label': 'p'}").replace(
        '"Python"', '"Python" exclude { phase: TRAIN stage: "deploy" }'
    )
    net_path, solver_path = tmp_path / "train_val.prototxt", tmp_path / "solver.prototxt"
    net_path.write_text(POOL_NET + check)
    solver_path.write_text(f'net: "{net_path}"\nbase_lr: 0.1\n')
    layer = make_net(POOL_NET + check, "TRAIN").layer_dict["check_pool1"]
    assert find(layer, ["caffe", "train", f"--solver={solver_path}"]) == ("check_pool1", ["pool1"], ["pool1"])


# One snippet pasted three times: on the data, after pool1, and once more in
# the test net of stage "b" only. Same class, same param_str.
SNIPPET = python_layer("check", "CheckFiniteLayer", [], [], "prefix-check")
TWICE_NET = (
    'name: "twice" force_backward: true\n'
    'layer { name: "data" type: "Input" top: "data"\n'
    "        input_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } } }\n"
    + SNIPPET.replace('"check"', '"check_data"').replace('"Python"', '"Python" bottom: "data" top: "data"')
    + 'layer { name: "pool1" type: "Pooling" bottom: "data" top: "pool1"\n'
    "        pooling_param { pool: AVE kernel_size: 3 stride: 5 } }\n"
    + SNIPPET.replace('"check"', '"check_pool1"').replace('"Python"', '"Python" bottom: "pool1" top: "pool1"')
    + SNIPPET.replace('"check"', '"check_b"').replace(
        '"Python"', '"Python" bottom: "pool1" top: "pool1" include { phase: TEST stage: "b" }'
    )
)


def layers_named_by_the_net(net):
    from caffe_nanlayers.layers.naming import _layers_with_names

    return [(layer, names) for layer, names in _layers_with_names(net) if isinstance(layer, CheckFiniteLayer)]


@pytest.fixture
def fresh_process(monkeypatch):
    """The set-up counts of a process that has built no layer yet, as ``caffe train`` starts."""
    from caffe_nanlayers.layers import naming

    monkeypatch.setattr(naming, "_set_up", collections.Counter())


def test_caffe_train_tells_the_same_snippet_apart_by_set_up_order(make_solver, tmp_path, fresh_process):
    """Under ``caffe train`` each copy is named: the binary builds the train net, then each test net."""
    from caffe_nanlayers.layers.naming import find_in_command_line_prototxt as find

    solver = make_solver(
        'base_lr: 0.1 lr_policy: "fixed" test_interval: 1000 test_iter: 1 test_iter: 1 '
        'test_state { stage: "a" } test_state { stage: "b" }',
        TWICE_NET,
    )
    argv = ["caffe", "train", "-solver", str(tmp_path / "solver" / "solver.prototxt")]
    found = []
    for net in [solver.net, *solver.test_nets]:
        for layer, names in layers_named_by_the_net(net):
            assert find(layer, argv) == names
            found.append(names[0])
    assert found == ["check_data", "check_pool1"] * 3 + ["check_b"]
    # Another program's command line: its nets may be built in any order, so no guess.
    layer, _ = layers_named_by_the_net(solver.net)[1]
    assert find(layer, ["python", "train.py", "-solver", argv[-1]]) is None


def test_caffe_test_and_time_tell_the_same_snippet_apart(make_net, tmp_path, fresh_process):
    from caffe_nanlayers.layers.naming import find_in_command_line_prototxt as find

    path = tmp_path / "net.prototxt"
    path.write_text(TWICE_NET)
    for layer, names in layers_named_by_the_net(make_net(TWICE_NET, "TEST")):
        assert find(layer, ["caffe", "test", "-model", str(path)]) == names
        assert find(layer, ["caffe", "time", "-model", str(path), "-phase", "TEST"]) == names
        assert find(layer, ["caffe", "time", "-model", str(path)]) is None  # that one builds a TRAIN net


@pytest.mark.parametrize("in_place", [False, True])
def test_zero_size_bottom_is_skipped_and_the_others_checked(make_net, in_place):
    text, tops = zero_size_net("check", "CheckFiniteLayer", in_place)
    net = make_net(text)
    net.blobs["y"].data[...] = [1, 2]
    net.forward()
    assert net.blobs[tops[1]].data.tolist() == [1, 2]
    net.blobs[tops[1]].diff[...] = [3, 4]
    net._backward(len(net.layers) - 1, 0)  # not net.backward(): it returns (reads) the inputs' diffs
    assert net.blobs["y"].diff.tolist() == [3, 4]
    net.blobs["y"].data[...] = [1, np.nan]
    with pytest.raises(NonFiniteError) as err:
        net.forward()
    assert (err.value.layer, err.value.blob_index, err.value.stats.nan) == ("check", 1, 1)


@pytest.mark.parametrize("in_place", [True, False])
def test_a_batch_size_changed_between_passes_is_checked_as_it_is_now(make_net, in_place):
    # A blob that grows gets new memory and one that shrinks keeps its old
    # elements past the new end: a check must read each blob as it is in
    # this pass, never an array kept from an earlier one.
    top = "x" if in_place else "x2"
    net = make_net(
        'name: "batch" force_backward: true\n'
        'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }\n'
        + python_layer("check", "CheckFiniteLayer", ["x"], [top])
        + python_layer("probe", "CheckFiniteLayer", [top], [])  # so that the top is no net output
    )
    x = net.blobs["x"]

    def backward():
        net._backward(len(net.layers) - 1, 0)  # not net.backward(): it returns (reads) the inputs' diffs

    x.data[...] = 1
    net.forward()
    net.blobs[top].diff[...] = 1
    backward()

    x.reshape(64, 3)
    net.reshape()
    x.data[...] = np.arange(64 * 3).reshape(64, 3)
    net.forward()
    assert np.array_equal(net.blobs[top].data, x.data)
    net.blobs[top].diff[...] = 1
    net.blobs[top].diff[63, 2] = np.inf
    with pytest.raises(NonFiniteError) as err:
        backward()
    assert (err.value.direction, err.value.stats.shape, err.value.stats.first_index) == (
        "backward",
        (64, 3),
        (63, 2),
    )
    x.data[63, 2] = np.nan
    with pytest.raises(NonFiniteError) as err:
        net.forward()
    assert (err.value.layer, err.value.stats.shape, err.value.stats.first_index) == (
        "check",
        (64, 3),
        (63, 2),
    )

    x.reshape(2, 3)  # the NaN at [63, 2] is no longer part of the blob
    net.reshape()
    x.data[...] = 1
    net.forward()
    net.blobs[top].diff[...] = 1
    backward()
    x.data[1, 0] = -np.inf
    with pytest.raises(NonFiniteError) as err:
        net.forward()
    assert (err.value.stats.shape, err.value.stats.first_index) == ((2, 3), (1, 0))


def test_clean_path_allocates_nothing_blob_sized(make_net):
    text = (
        'name: "big" layer { name: "x" type: "Input" top: "x"\n'
        "  input_param { shape { dim: 16 dim: 256 dim: 1024 } } }\n"
        + python_layer("check", "CheckFiniteLayer", ["x"], ["x"])
    )
    net = make_net(text)
    net.blobs["x"].data[...] = 1.0
    blob_bytes = net.blobs["x"].data.nbytes
    net.forward()
    tracemalloc.start()
    try:
        net.forward()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < blob_bytes / 100


def test_dump_dir_holding_a_nul_byte_is_a_dump_failure_of_the_nonfinite_error(make_net, tmp_path):
    net = pool_net(make_net, json.dumps({"mode": "dump", "dump_dir": str(tmp_path / "nan\0dumps")}))
    with pytest.raises(NonFiniteError) as err:
        net.forward()
    message = str(err.value)
    assert err.value.stats.nan == 5 and err.value.dump_path is None
    assert message.endswith(
        "dump failed: a path cannot hold a NUL byte: " + repr(str(tmp_path / "nan\0dumps"))
    )
    assert list(tmp_path.iterdir()) == []
