"""caffe-nan doctor on logs that real Caffe wrote while these tests made it fail.

Each scenario is a real training run by the ``caffe`` binary (``caffe train
-solver``, its terminal text kept), except the poly one, which only a
pycaffe loop trains (``caffe train`` stops at once without max_iter). The
runs start together once per session; each test reads one log.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from caffe_binary import start_caffe_train
from conftest import EXAMPLES
from pycaffe_log import start_pycaffe_steps

from caffe_nanlayers.commands.doctor import main as doctor_main
from caffe_nanlayers.diagnose.caffe_log import parse_log
from caffe_nanlayers.diagnose.doctor import diagnose

DIAGNOSE = EXAMPLES / "diagnose"

REGRESSION_HDF5 = """
name: "planted"
layer { name: "data" type: "HDF5Data" top: "data" top: "target"
  hdf5_data_param { source: "SOURCE" batch_size: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
  inner_product_param { num_output: 1 weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "fc" bottom: "target" top: "loss" }
"""

TWO_LOSSES = """
name: "two_losses"
layer { name: "data" type: "DummyData" top: "data" top: "ta" top: "tb"
  dummy_data_param { shape { dim: 8 dim: 16 } shape { dim: 8 dim: 1 } shape { dim: 8 dim: 1 }
    data_filler { type: "gaussian" std: 1 } data_filler { type: "gaussian" std: 1 }
    data_filler { type: "gaussian" std: 1 } } }
layer { name: "fc_a" type: "InnerProduct" bottom: "data" top: "fc_a"
  inner_product_param { num_output: 1 weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "loss_a" type: "EuclideanLoss" bottom: "fc_a" bottom: "ta" top: "loss_a" }
layer { name: "fc_b" type: "InnerProduct" bottom: "data" top: "fc_b"
  inner_product_param { num_output: 1 weight_filler { type: "gaussian" std: 1 }
    bias_filler { type: "constant" } } }
layer { name: "loss_b" type: "EuclideanLoss" bottom: "fc_b" bottom: "tb" top: "loss_b" loss_weight: 20 }
"""

NAN_FROM_START = """
name: "nan_from_start"
layer { name: "data" type: "DummyData" top: "data" top: "target"
  dummy_data_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 1 }
    data_filler { type: "constant" value: nan } data_filler { type: "constant" value: 1 } } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
  inner_product_param { num_output: 1 weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "fc" bottom: "target" top: "loss" }
"""

SOLVER = (
    'base_lr: {lr}\nlr_policy: "fixed"\nmax_iter: {max_iter}\ndisplay: 1\nrandom_seed: 1\n'
    "snapshot_after_train: false\n{extra}"
)


def _planted_hdf5(directory):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    data = rng.standard_normal((20, 4)).astype(np.float32)
    data[13, 2] = np.nan  # record 13: batch 6 with batch_size 2
    with h5py.File(directory / "train.h5", "w") as f:
        f["data"] = data
        f["target"] = data.sum(axis=1, keepdims=True).astype(np.float32)
    (directory / "train.txt").write_text(f"{directory / 'train.h5'}\n")
    return directory / "train.txt"


def _write_solver(directory, name, net_text, lr, max_iter, extra=""):
    (directory / f"{name}_net.prototxt").write_text(net_text)
    solver = directory / f"{name}_solver.prototxt"
    text = SOLVER.format(lr=lr, max_iter=max_iter, extra=extra)
    solver.write_text(f'net: "{directory / (name + "_net.prototxt")}"\n' + text)
    return solver


@pytest.fixture(scope="session")
def logs(caffe, caffe_bin, tmp_path_factory):
    """name -> path of a log captured from a real run (all runs in parallel, once per session)."""
    work = tmp_path_factory.mktemp("doctor_logs")
    source = _planted_hdf5(work)
    explode = (DIAGNOSE / "explode_bad.prototxt").read_text()
    runs = {
        # caffe train -solver, run from the solver's directory
        "explode": _write_solver(work, "explode", explode, 0.05, 12, "momentum: 0.9\n"),
        "planted": _write_solver(work, "planted", REGRESSION_HDF5.replace("SOURCE", str(source)), 0.01, 9),
        "debug": _write_solver(work, "debug", explode, 0.05, 8, "debug_info: true\n"),
        "two_losses": _write_solver(
            work, "two_losses", TWO_LOSSES, 0.3, 40, "test_iter: 1\ntest_interval: 5\n"
        ),
        "nan_from_start": _write_solver(work, "nan_from_start", NAN_FROM_START, 0, 3),
    }
    children = {}
    for name, solver in runs.items():
        handle = open(work / f"{name}.log", "wb")  # noqa: SIM115 (closed below, after the child ends)
        children[name] = (start_caffe_train(solver, handle), handle)
    handle = open(work / "poly.log", "wb")  # noqa: SIM115 (closed below, after the child ends)
    children["poly"] = (
        start_pycaffe_steps(DIAGNOSE / "poly_bad_solver.prototxt", 3, handle, cwd=DIAGNOSE),
        handle,
    )
    runs["poly"] = DIAGNOSE / "poly_bad_solver.prototxt"
    for name, (child, handle) in children.items():
        child.wait()
        handle.close()
        assert child.returncode == 0, (work / f"{name}.log").read_text()[-2000:]
    paths = {name: work / f"{name}.log" for name in runs}
    # A real log cut before its first NaN is a real log of a clean run.
    clean = paths["planted"].read_text().split("\n")
    first_bad = next(i for i, line in enumerate(clean) if "nan" in line.lower() and "Iteration" in line)
    paths["clean"] = work / "clean.log"
    paths["clean"].write_text("\n".join(clean[:first_bad]) + "\n")
    return paths


def verdict_of(path):
    with open(path) as f:
        return diagnose(parse_log(f), str(path))


def test_too_high_base_lr_is_a_gradient_explosion(logs):
    verdict = verdict_of(logs["explode"])
    assert verdict.nan_found and verdict.cause.id == "gradient_explosion"
    assert verdict.details["first"]["what"] == "loss"
    assert verdict.iteration >= 3
    assert any("loss grew" in e for e in verdict.evidence)


def test_poly_without_max_iter_is_the_lr_policy(logs):
    text = logs["poly"].read_text()
    assert "lr = -nan" in text or "lr = nan" in text  # what Caffe really prints for poly without max_iter
    verdict = verdict_of(logs["poly"])
    assert verdict.cause.id == "lr_policy"
    assert verdict.iteration == 0
    assert verdict.details["first"]["what"] == "lr"
    assert any("no max_iter" in e for e in verdict.evidence)


def test_nan_planted_in_the_data_is_bad_input(logs):
    verdict = verdict_of(logs["planted"])
    assert (verdict.cause.id, verdict.confidence) == ("bad_input", "medium")
    assert verdict.iteration == 6  # record 13 is in the 7th batch of 2
    # display: 1 and a steady loss: no explosion inside an interval, yet the others stay possible
    assert [c.id for c in verdict.also_possible] == ["gradient_explosion", "loss_layer"]
    assert [f["id"] for f in verdict.details["facts"]] == ["steady"]
    assert any("steady" in e or "falling" in e for e in verdict.evidence)


def test_debug_info_log_shows_the_gradient_going_bad_before_the_loss(logs):
    log = parse_log(logs["debug"].open())
    assert log.debug_lines > 0
    verdict = diagnose(log, "debug.log")
    assert verdict.cause.id == "gradient_explosion"
    bad_norm = next(r for r in log.param_diff_norms if not r.finite)
    # a layer's line is the first value to go bad, then the gradients' norm, then the loss line
    assert verdict.details["first"]["what"] == "debug_info"
    assert verdict.details["first"]["line"] < bad_norm.line < log.losses.first_bad().line
    assert (
        verdict.details["first_layer"]["iteration"] == bad_norm.iteration == log.losses.first_bad().iteration
    )
    assert verdict.confidence == "high"
    assert [c.id for c in verdict.also_possible] == ["loss_layer"]  # low: its input was already huge
    assert any("L2 norm of all gradients grew" in e for e in verdict.evidence)
    # BVLC's per-layer lines name the layer whose output went non-finite first
    assert any("first non-finite forward value in layer loss (EuclideanLoss" in e for e in verdict.evidence)
    assert any("activations already huge before it" in e and "iteration 6" in e for e in verdict.evidence)


def test_with_two_losses_the_one_that_grew_is_named(logs):
    log = parse_log(logs["two_losses"].open())
    assert log.test_outputs, "the run interleaves test outputs"
    assert log.loss_weights == {"loss_a": 1.0, "loss_b": 20.0}
    verdict = diagnose(log, "two_losses.log")
    assert verdict.cause.id == "gradient_explosion"
    assert verdict.details["grew"]["output"] == "loss_b"
    assert any("lower its loss_weight (now 20)" in e for e in verdict.evidence)


def test_nan_from_iteration_zero_is_the_net_or_its_data(logs):
    verdict = verdict_of(logs["nan_from_start"])
    assert verdict.iteration == 0
    assert verdict.cause.id == "initialization"


def test_clean_log_exits_0(logs, capsys):
    assert doctor_main([str(logs["clean"])]) == 0
    assert "no NaN/Inf in the log" in capsys.readouterr().out


def test_cli_json_and_plot(logs, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "out" / "loss.png"
    assert doctor_main([str(logs["explode"]), "--json", "--plot", str(png)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["nan_found"] is True
    assert report["cause"]["id"] == "gradient_explosion"
    assert report["first"]["value"] in ("inf", "-nan", "nan")
    assert report["plot"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(png.parent.glob(".*.tmp"))


def test_the_command_line_entry_point(logs):
    done = subprocess.run(
        [sys.executable, "-m", "caffe_nanlayers.cli", "doctor", str(logs["poly"]), "--format", "json"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["cause"]["id"] == "lr_policy"


def test_the_entry_point_without_a_subcommand_is_a_usage_error_on_stderr():
    command = [sys.executable, "-m", "caffe_nanlayers.cli"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("caffe-nan: no subcommand given (expected one of lint, scan,")
    assert done.stderr.count("\n") == 1
    helped = subprocess.run([*command, "--help"], capture_output=True, text=True)
    assert (helped.returncode, helped.stderr) == (0, "") and helped.stdout.startswith("usage: caffe-nan")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["missing.log"], "missing.log: no such file"),
        (["--plot"], "expected one argument"),
        ([], "the following arguments are required: log"),
    ],
)
def test_user_mistakes_are_one_line_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert doctor_main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_a_plot_path_that_cannot_be_written_is_one_line_exit_2(logs, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert doctor_main([str(logs["explode"]), "--plot", str(tmp_path)]) == 2
    assert doctor_main([str(logs["explode"]), "--plot", "/proc/no_such_dir/loss.png"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"caffe-nan doctor: error: {tmp_path}: is a directory; give a file name for the PNG plot",
        "caffe-nan doctor: error: /proc/no_such_dir/loss.png: cannot write the PNG plot: "
        "No such file or directory (/proc/no_such_dir)",
    ]
    assert not list(tmp_path.glob(".*.tmp"))


def test_the_plot_never_overwrites_the_log(logs, tmp_path, capsys):
    log = tmp_path / "train.log"
    log.write_bytes(logs["explode"].read_bytes())
    (tmp_path / "link.log").symlink_to(log)
    assert doctor_main([str(log), "--plot", str(log)]) == 2
    assert doctor_main([str(log), "--json", "--plot", str(tmp_path / "link.log")]) == 2
    assert capsys.readouterr() == (
        "",
        f"caffe-nan doctor: error: {log}: refusing to overwrite the input {log}; give another --plot\n"
        f"caffe-nan doctor: error: {tmp_path / 'link.log'}: refusing to overwrite the input {log}; "
        "give another --plot\n",
    )
    assert log.read_bytes() == logs["explode"].read_bytes()


def test_a_file_that_is_not_a_training_log_is_an_error(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("hello\nworld\n")
    assert doctor_main([str(path)]) == 2
    assert "no Caffe line in 2 lines" in capsys.readouterr().err


def test_ctrl_c_is_one_line_and_exit_130(tmp_path, capsys, monkeypatch):
    import caffe_nanlayers.commands.doctor as doctor_cli

    def interrupted(handle):
        raise KeyboardInterrupt

    monkeypatch.setattr(doctor_cli, "parse_log", interrupted)
    (tmp_path / "train.log").write_text("I0101 solver.cpp:228] Iteration 0, loss = 1\n")
    assert doctor_main([str(tmp_path / "train.log"), "--json"]) == 130
    assert capsys.readouterr() == ("", "caffe-nan doctor: interrupted\n")


def _log_text(logs) -> bytes:
    return logs["explode"].read_bytes()


def test_a_gzip_log_is_found_by_its_content_and_its_damage_is_one_line(logs, tmp_path, capsys):
    import gzip

    packed = gzip.compress(_log_text(logs))
    (tmp_path / "renamed.log").write_bytes(packed)  # gzip without the .gz name
    (tmp_path / "plain.log.gz").write_bytes(_log_text(logs))  # the .gz name without gzip
    assert doctor_main([str(tmp_path / "renamed.log")]) == 1
    assert doctor_main([str(tmp_path / "plain.log.gz")]) == 1
    assert capsys.readouterr().err == ""
    (tmp_path / "cut.log.gz").write_bytes(packed[: len(packed) // 2])
    damaged = bytearray(packed)
    damaged[10] = 0b111  # the first deflate block (after gzip's 10-byte header) of reserved type 3
    (tmp_path / "damaged.log.gz").write_bytes(bytes(damaged))
    assert doctor_main([str(tmp_path / "cut.log.gz")]) == 2
    assert doctor_main([str(tmp_path / "damaged.log.gz")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        f"caffe-nan doctor: error: {tmp_path / 'cut.log.gz'}: truncated gzip file "
        "(it ends before its end-of-stream marker)"
    )
    assert err[1] == (
        f"caffe-nan doctor: error: {tmp_path / 'damaged.log.gz'}: corrupt gzip data "
        "(Error -3 while decompressing data: invalid block type)"
    )
    assert len(err) == 2


def test_a_binary_file_is_not_a_text_log(tmp_path, capsys):
    (tmp_path / "weights.caffemodel").write_bytes(b"\n\x05conv1\x12\x00\x1a\x00" * 100)
    assert doctor_main([str(tmp_path / "weights.caffemodel")]) == 2
    assert capsys.readouterr().err == (
        f"caffe-nan doctor: error: {tmp_path / 'weights.caffemodel'}: not a text log (byte 8 is NUL), "
        "expected a caffe train log\n"
    )


@pytest.mark.parametrize(
    ("stdin", "code", "err"),
    [
        (b"", 2, "caffe-nan doctor: error: <stdin>: no Caffe line in 0 lines"),
        (None, 1, ""),  # the log, gzip-compressed, through a pipe
    ],
)
def test_the_log_from_stdin(logs, stdin, code, err):
    import gzip

    data = gzip.compress(_log_text(logs)) if stdin is None else stdin
    done = subprocess.run(
        [sys.executable, "-m", "caffe_nanlayers.cli", "doctor", "-"], input=data, capture_output=True
    )
    assert done.returncode == code and done.stderr.decode().startswith(err), done.stderr
    assert done.stderr.count(b"\n") == (1 if err else 0)


def test_a_reader_that_goes_away_is_no_traceback(logs):
    doctor = subprocess.Popen(
        [sys.executable, "-m", "caffe_nanlayers.cli", "doctor", str(logs["explode"]), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    doctor.stdout.close()  # `caffe-nan doctor LOG --json | true`: the reader leaves before it is written to
    err = doctor.stderr.read()
    assert (doctor.wait(), err) == (141, b"")


def test_a_gzip_log_with_a_line_of_many_megabytes_is_read_in_bounded_memory(tmp_path, capsys):
    import gzip
    import tracemalloc

    path = tmp_path / "flat.log.gz"
    with gzip.open(path, "wb") as f:  # 32 MB on one line (a log whose newlines were lost), then the NaN
        f.write(b"I0101 10:00:00.000000 1 solver.cpp:228] Iteration 0, loss = 2.3\n")
        f.write(b"x" * (32 << 20) + b"\n")
        f.write(b"I0101 10:00:00.000000 1 solver.cpp:228] Iteration 20, loss = nan\n")
    tracemalloc.start()
    try:
        code = doctor_main([str(path), "--json"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["iteration"] == 20
    assert any("read up to that length" in e for e in report["evidence"])
    assert peak < 4 << 20, f"peak {peak} bytes for a 32 MB line"


def test_input_with_no_caffe_line_at_all_is_the_only_refusal(tmp_path, capsys):
    (tmp_path / "outputs.log").write_text("Train net output #0: loss = nan (* 1 = nan loss)\n")
    (tmp_path / "prose.txt").write_text("my loss is nan, why?\n")
    assert doctor_main([str(tmp_path / "outputs.log")]) == 1
    assert doctor_main([str(tmp_path / "prose.txt")]) == 2
    assert "prose.txt: no Caffe line in 1 lines" in capsys.readouterr().err


def test_the_plot_of_an_excerpt_with_no_iteration(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    log = tmp_path / "outputs.log"
    log.write_text(
        "Train net output #0: loss = 2.5 (* 1 = 2.5 loss)\nTrain net output #0: loss = nan (* 1 = nan loss)\n"
    )
    png = tmp_path / "outputs.png"
    assert doctor_main([str(log), "--plot", str(png)]) == 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "first NaN/Inf at an unknown iteration (excerpt)" in capsys.readouterr().out


def test_the_plateau_without_glog_prefixes_is_a_finding(tmp_path, capsys):
    log = tmp_path / "pasted.log"
    log.write_text(
        "Iteration 0, loss = 87.3366\nIteration 1000, loss = 8.26466\nIteration 1000, lr = 0.001\n"
    )
    assert doctor_main([str(log), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["first"]["kind"], report["iteration"]) == ("saturated", 0)
