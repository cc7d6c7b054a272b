"""caffe-nan locate on real solvers that go NaN for known reasons, each named with its layer and cause.

Most tests call ``locate`` in this process (pycaffe is loaded once); the
command-line tests go through the isolated child process the CLI uses.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import EXAMPLES
from nan_test_layers import python_layer

from caffe_nanlayers.commands.locate import main as locate_main
from caffe_nanlayers.diagnose.locate import LocateOptions, choose_cause, locate
from caffe_nanlayers.diagnose.replay import Producer

DIAGNOSE = EXAMPLES / "diagnose"
CHECK_FINITE = EXAMPLES / "check_finite"


def run_locate(solver, tmp_path, **kwargs):
    messages = []
    verdict = locate(messages.append, LocateOptions(str(solver), str(tmp_path / "out"), **kwargs))
    return verdict


def test_pooling_stride_forward(caffe, tmp_path):
    verdict = run_locate(CHECK_FINITE / "solver_bad.prototxt", tmp_path)
    producer = verdict.details["producer"]
    assert (producer["layer"], producer["type"], producer["direction"]) == ("pool1", "Pooling", "forward")
    assert producer["stats"]["nan"] > 0
    assert verdict.iteration == 0
    assert verdict.cause.id == "pooling_stride"
    assert "the net's own check check_pool1 fired (forward)" in verdict.details["observed"]


def test_backward_only_nan_of_sqrt_at_zero(caffe, tmp_path):
    verdict = run_locate(CHECK_FINITE / "solver_backward_bad.prototxt", tmp_path)
    producer = verdict.details["producer"]
    assert (producer["layer"], producer["type"], producer["direction"]) == ("sqrt1", "Power", "backward")
    assert producer["blob"] == "gradient of conv1"
    assert verdict.cause.id == "sparsity"


BACKWARD_NAN_NET = (
    """
layer { name: "data" type: "DummyData" top: "data" top: "target"
  dummy_data_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 1 }
    data_filler { type: "gaussian" std: 1 } data_filler { type: "gaussian" std: 1 } } }
layer { name: "fc1" type: "InnerProduct" bottom: "data" top: "fc1"
  inner_product_param { num_output: 5 weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
"""
    + python_layer(
        "nan_grad",
        "BackwardNaNLayer",
        ["fc1"],
        ["g"],
        "{'value': 'inf'}",
        module="nan_test_layers",
    )
    + """
layer { name: "fc2" type: "InnerProduct" bottom: "g" top: "fc2"
  inner_product_param { num_output: 1 weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "fc2" bottom: "target" top: "loss" }
"""
)


def test_backward_only_nan_of_the_test_layer(caffe, tmp_path):
    (tmp_path / "net.prototxt").write_text(BACKWARD_NAN_NET)
    solver = tmp_path / "solver.prototxt"
    solver.write_text(
        'net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 20\nrandom_seed: 1\n'
    )
    verdict = run_locate(solver, tmp_path)
    producer = verdict.details["producer"]
    assert (producer["layer"], producer["type"], producer["direction"]) == ("nan_grad", "Python", "backward")
    assert producer["stats"]["posinf"] == 1
    assert verdict.iteration == 0
    assert verdict.details["lr"] == pytest.approx(0.01)
    assert verdict.cause.id == "layer_arithmetic"
    assert any(o.startswith("gradients non-finite: fc1[0]") for o in verdict.details["observed"])


def test_poly_without_max_iter(caffe, tmp_path):
    verdict = run_locate(DIAGNOSE / "poly_bad_solver.prototxt", tmp_path, max_iter=5)
    assert verdict.cause.id == "lr_policy"
    assert verdict.iteration == 0
    assert verdict.details["lr"] == "nan"
    assert verdict.details["producer"] is None  # nothing to replay: forward and backward were finite
    assert any("weights after the update non-finite" in o for o in verdict.details["observed"])


def test_nan_planted_in_the_data(caffe, tmp_path):
    h5py = pytest.importorskip("h5py")
    data = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)
    data[13, 1] = np.inf
    with h5py.File(tmp_path / "train.h5", "w") as f:
        f["data"] = data
        f["target"] = data[:, :1]
    (tmp_path / "train.txt").write_text(f"{tmp_path / 'train.h5'}\n")
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "data" type: "HDF5Data" top: "data" top: "target"\n'
        f'  hdf5_data_param {{ source: "{tmp_path / "train.txt"}" batch_size: 2 }} }}\n'
        'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"\n'
        '  inner_product_param { num_output: 1 weight_filler { type: "xavier" } } }\n'
        'layer { name: "loss" type: "EuclideanLoss" bottom: "fc" bottom: "target" top: "loss" }\n'
    )
    solver = tmp_path / "solver.prototxt"
    solver.write_text('net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 9\n')
    verdict = run_locate(solver, tmp_path)
    producer = verdict.details["producer"]
    assert (producer["layer"], producer["type"], producer["direction"]) == ("data", "HDF5Data", "forward")
    assert producer["blob"] == "top data"
    assert producer["stats"]["posinf"] == 1
    assert verdict.iteration == 6
    assert verdict.cause.id == "bad_input"


def test_a_healthy_run_is_clean(caffe, tmp_path):
    verdict = run_locate(DIAGNOSE / "regression_solver.prototxt", tmp_path, max_iter=20)
    assert not verdict.nan_found and verdict.exit_code == 0
    assert verdict.details["iterations_run"] == 20


def test_cli_explosion_keeps_the_last_good_weights(caffe, tmp_path, capsys):
    out = tmp_path / "out"
    code = locate_main([str(DIAGNOSE / "explode_bad_solver.prototxt"), "--out", str(out), "--json"])
    assert code == 1
    report = json.loads(capsys.readouterr().out)
    assert report["cause"]["id"] == "gradient_explosion"
    assert report["norms"]["gradient_growth"] > 100
    assert report["norms"]["exploded_params"]
    assert json.loads((out / "report.json").read_text()) == report
    weights = report["saved"]["weights"]
    assert weights.endswith(f"last_good_iter{report['iteration']}.caffemodel")
    net = caffe.Net(str(DIAGNOSE / "explode_bad.prototxt"), weights, caffe.TRAIN)
    assert all(np.isfinite(blob.data).all() for blobs in net.params.values() for blob in blobs)
    assert np.abs(net.params["fc1"][0].data).max() > 1.0  # trained weights, not the fillers' draw


def test_cli_text_names_every_file_it_wrote(caffe, tmp_path, capsys):
    out = tmp_path / "out"
    assert locate_main([str(CHECK_FINITE / "solver_bad.prototxt"), "--out", str(out)]) == 1
    text = capsys.readouterr().out
    (saved,) = [line for line in text.splitlines() if "saved " in line]
    files = {
        "weights": out / "last_good_iter0.caffemodel",
        "replay net": out / "replay_net.prototxt",
        "report": out / "report.json",
    }
    dumps = list((out / "dumps").glob("*.npz"))
    assert len(dumps) == 1
    for path in [*files.values(), dumps[0]]:
        assert str(path) in saved and path.is_file()
    assert json.loads(files["report"].read_text())["saved"]["dump"] == str(dumps[0])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([str(DIAGNOSE / "explode_bad.prototxt")], "this is a net, locate needs a solver"),
        (["nope.prototxt"], "nope.prototxt: no such file"),
        ([str(DIAGNOSE / "poly_bad_solver.prototxt"), "--max-iter", "0"], "must be > 0"),
    ],
)
def test_user_mistakes_are_one_line_exit_2(argv, message, capsys, tmp_path):
    assert locate_main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def _producer(layer_type, has_bottoms=True):
    return Producer("x", layer_type, "forward", "top x", None, None, has_bottoms)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((float("nan"), None, None, None, 3), "lr_policy"),
        ((0.1, 1e6, None, _producer("Pooling"), 9), "gradient_explosion"),
        ((0.1, 2.0, 1.5, _producer("Pooling"), 9), "pooling_stride"),
        ((0.1, None, None, _producer("BatchNorm"), 9), "batchnorm"),
        ((0.1, None, None, _producer("Log"), 9), "loss_layer"),
        ((0.1, None, None, _producer("HDF5Data", False), 9), "bad_input"),
        ((0.1, None, None, _producer("InnerProduct"), 0), "fillers"),
        ((0.1, None, None, _producer("InnerProduct"), 5), "gradient_explosion"),
        ((0.1, None, None, None, 0), "initialization"),
        ((0.1, None, None, None, 5), "bad_input"),
    ],
)
def test_choose_cause(args, expected):
    assert choose_cause(*args) == expected


def test_an_unwritable_out_is_one_line_exit_2(caffe, tmp_path, capsys):
    solver = str(DIAGNOSE / "explode_bad_solver.prototxt")
    (tmp_path / "a_file").write_text("")
    assert locate_main([solver, "--out", "/proc/no_such_dir/out"]) == 2
    assert locate_main([solver, "--out", str(tmp_path / "a_file")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert "/proc/no_such_dir/out: cannot write the report and the last good weights (--out)" in err[0]
    assert err[1].endswith("a_file is a file, not a directory")


def test_a_python_layer_whose_module_is_missing_is_one_line_exit_2(caffe, tmp_path, capsys):
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "py" type: "Python" top: "data"\n'
        '  python_param { module: "their_missing_layers" layer: "X" } }\n'
    )
    solver = tmp_path / "solver.prototxt"
    solver.write_text(f'net: "{tmp_path / "net.prototxt"}"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 3\n')
    assert locate_main([str(solver), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "layer 'py': cannot import its Python module 'their_missing_layers': ModuleNotFoundError" in err


def test_only_the_update_overflowing_is_named_as_such(caffe, tmp_path):
    # lr 3e38 times a gradient above 1.13 is past float32's 3.4e38: the loss and the gradients of
    # iteration 0 are finite, the weights after its update are not.
    solver = tmp_path / "solver.prototxt"
    solver.write_text(
        f'net: "{DIAGNOSE / "regression.prototxt"}"\nbase_lr: 3e38\nlr_policy: "fixed"\n'
        "momentum: 0.9\nmax_iter: 5\nrandom_seed: 1\n"
    )
    verdict = run_locate(solver, tmp_path)
    assert verdict.iteration == 0
    assert [o.split(":")[0] for o in verdict.details["observed"]] == ["weights after the update non-finite"]
    assert verdict.details["producer"] is None
    assert verdict.cause.id == "update_overflow"
    assert "base_lr" in verdict.cause.fix
    assert any("lr 3e+38 × the gradient of" in e and "momentum 0.9" in e for e in verdict.evidence)


@pytest.mark.parametrize(("iteration", "grad_growth"), [(0, None), (7, 3.0)])
def test_choose_cause_update_overflow_at_any_iteration(iteration, grad_growth):
    assert choose_cause(0.1, grad_growth, None, None, iteration, update_overflow=True) == "update_overflow"
    assert choose_cause(0.1, 1e4, None, None, iteration, update_overflow=True) == "gradient_explosion"
    assert choose_cause(float("inf"), None, None, None, iteration, update_overflow=True) == "lr_policy"


def _lmdb_solver(tmp_path, values):
    """A solver over a classifier reading an LMDB written here (records of shape 2x3x3)."""
    from scan_datasets import write_lmdb

    write_lmdb(tmp_path / "train_lmdb", values)
    (tmp_path / "train_lmdb" / "lock.mdb").unlink()
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "data" type: "Data" top: "data" top: "label"\n'
        '  data_param { source: "train_lmdb" backend: LMDB batch_size: 2 } }\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"\n'
        '  inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }\n'
        'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }\n'
    )
    solver = tmp_path / "solver.prototxt"
    solver.write_text('net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 3\n')
    return solver


def test_the_dataset_is_only_read(caffe, tmp_path, capsys, monkeypatch):
    from scan_datasets import float_datum, float_records, snapshot

    monkeypatch.chdir(tmp_path)  # Caffe resolves sources against the working directory
    solver = _lmdb_solver(tmp_path, [float_datum(r) for r in float_records(6)])
    before = snapshot(tmp_path / "train_lmdb")
    assert locate_main([str(solver), "--out", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    assert snapshot(tmp_path / "train_lmdb") == before  # no lock.mdb: Caffe read a private view


@pytest.mark.parametrize(
    ("source", "setup", "message"),
    [
        ("nowhere_lmdb", None, "LMDB source 'nowhere_lmdb' (layer 'data'): no such directory"),
        ("empty_lmdb", "empty", "LMDB source 'empty_lmdb' (layer 'data'): the database is empty"),
        ("a_file", "file", "LMDB source 'a_file' (layer 'data'): is a file, expected a directory"),
    ],
)
def test_a_dataset_caffe_cannot_open_is_named_before_training(
    caffe, tmp_path, capsys, monkeypatch, source, setup, message
):
    from scan_datasets import write_lmdb

    monkeypatch.chdir(tmp_path)
    solver = _lmdb_solver(tmp_path, [])
    if setup == "empty":
        write_lmdb(tmp_path / source, [])
    elif setup == "file":
        (tmp_path / source).write_text("")
    net = tmp_path / "net.prototxt"
    net.write_text(net.read_text().replace('"train_lmdb"', f'"{source}"'))
    assert locate_main([str(solver), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"caffe-nan locate: error: {message}") and err.count("\n") == 1, err


def test_a_record_caffe_cannot_read_points_at_the_scan(caffe, tmp_path, capsys, monkeypatch):
    from scan_datasets import float_datum, float_records

    monkeypatch.chdir(tmp_path)
    values = [float_datum(r) for r in float_records(4)]
    values[1] = b"\xff\xfe not a Datum"
    solver = _lmdb_solver(tmp_path, values)
    assert locate_main([str(solver), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Caffe stopped: Check failed" in err
    assert err.endswith(f"; 'caffe-nan scan {solver}' names the record Caffe could not read\n")


def test_weights_caffe_refuses_are_named_as_the_problem(caffe, tmp_path, capsys, make_net):
    solver = str(DIAGNOSE / "regression_solver.prototxt")
    (tmp_path / "text.caffemodel").write_text("not a model")
    other = make_net(
        'input: "x" input_shape { dim: 1 dim: 7 }\n'
        'layer { name: "fc1" type: "InnerProduct" bottom: "x" top: "fc1"\n'
        "  inner_product_param { num_output: 5 } }\n"
    )
    other.save(str(tmp_path / "other.caffemodel"))
    out = ["--out", str(tmp_path / "out")]
    assert locate_main([solver, "--weights", str(tmp_path / "text.caffemodel"), *out]) == 2
    assert locate_main([solver, "--weights", str(tmp_path / "other.caffemodel"), *out]) == 2
    assert locate_main([solver, "--weights", str(tmp_path), *out]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3
    loading = f": cannot load these weights into the net of {solver}: Caffe stopped: "
    assert err[0].startswith(f"caffe-nan locate: error: {tmp_path / 'text.caffemodel'}{loading}")
    assert "Failed to parse NetParameter" in err[0]
    assert err[1].startswith(f"caffe-nan locate: error: {tmp_path / 'other.caffemodel'}{loading}")
    assert "Cannot copy param 0 weights from layer 'fc1'; shape mismatch" in err[1]
    assert err[2] == f"caffe-nan locate: error: {tmp_path}: is a directory, expected a .caffemodel"


def test_out_never_overwrites_an_input(caffe, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    solver = out / "locate_solver.prototxt"  # a previous run's working solver, run again
    solver.write_text(
        (DIAGNOSE / "regression_solver.prototxt")
        .read_text()
        .replace('net: "regression.prototxt"', f'net: "{DIAGNOSE / "regression.prototxt"}"')
    )
    before = solver.read_text()
    assert locate_main([str(solver), "--out", str(out)]) == 2
    weights = out / "last_good_iter0.caffemodel"
    weights.write_bytes(b"")
    assert (
        locate_main(
            [str(DIAGNOSE / "regression_solver.prototxt"), "--weights", str(weights), "--out", str(out)]
        )
        == 2
    )
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"caffe-nan locate: error: {solver}: refusing to overwrite the input {solver}; give another --out",
        f"caffe-nan locate: error: {out}: refusing to overwrite the input {out}; "
        "give another --out (it holds the --weights file)",
    ]
    assert solver.read_text() == before and weights.read_bytes() == b""


def test_the_cause_is_decided_on_the_facts_not_on_their_wording():
    """Which part of the step went bad is a field, read by the decision; the sentences only report it."""
    from caffe_nanlayers.diagnose.locate import Observed

    assert not Observed(lr=0.01)
    update_only = Observed(lr=0.01, bad_params=[("fc1[0]", None)])
    assert update_only and update_only.only_in_update and not update_only.in_forward_or_backward
    both = Observed(lr=0.01, bad_losses={"loss": float("nan")}, bad_params=[("fc1[0]", None)])
    assert both.in_forward_or_backward and not both.only_in_update
    assert Observed(lr=float("nan")).lines() == ["lr = nan"]
    division = Observed(lr=float("nan"), lr_division_by_zero=True)
    assert division.lines()[0].startswith("lr: integer division by zero")
    assert (
        choose_cause(division.lr, None, None, None, 0, update_overflow=division.only_in_update) == "lr_policy"
    )
