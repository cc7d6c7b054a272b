"""Every reproduced NaN cause trained by the real ``caffe train``, and the doctor reading its log.

``test_nan_causes.py`` reproduces each cause in real Caffe and checks that
``caffe-nan locate`` names it. Users, though, come with the log that ``caffe
train`` printed. Each row here is trained by the binary twice, without and
with ``debug_info: true``, and the doctor reads the log the binary wrote:

- it finds the first non-finite iteration: locate's, or the next one where
  the NaN was made backward (a plain log shows losses only, and a NaN
  gradient reaches the loss through the next update);
- with ``debug_info`` it names the first bad layer, from BVLC's per-layer
  ``[Forward]`` / ``[Backward]`` lines, as locate names the producer, at
  locate's iteration; a layer whose weights' gradient went non-finite
  before its output did is named from its ``param blob`` line, backward.

The logs are written at run time into each test's tmp directory.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from caffe_binary import CaffeRun, caffe_train
from test_nan_causes import BY_CAUSE, CAUSES, Reproduction, net_text

from caffe_nanlayers.diagnose.caffe_log import parse_log
from caffe_nanlayers.diagnose.doctor import diagnose

# The poly row cannot train under the binary: without max_iter (the bug it
# shows), max_iter is 0 and `caffe train` stops before iteration 1.
TRAINED = [r for r in CAUSES if r.trains and r.cause != "lr_policy"]
TESTS = Path(__file__).resolve().parent


def train_row(row: Reproduction, caffe, directory, debug_info: bool) -> tuple[CaffeRun, object]:
    """Train the row's net with the binary; return the run and the doctor's verdict on its log."""
    if row.files:
        row.files(directory, caffe)
    (directory / "net.prototxt").write_text(net_text(row, directory))
    solver = directory / "solver.prototxt"
    extra = "display: 1\n" + ("debug_info: true\n" if debug_info else "")
    # Every row's first NaN comes by iteration 6: stop soon after, as Caffe itself never stops on one.
    short = re.sub(r"max_iter: \d+", "max_iter: 10", row.solver)
    solver.write_text(f'net: "{directory / "net.prototxt"}"\n' + short + extra)
    run = caffe_train(solver, cwd=directory, python_path=[TESTS])  # nan_test_layers, as users set PYTHONPATH
    log_path = directory / "caffe_train.log"
    log_path.write_text(run.log)
    with open(log_path) as log:
        return run, diagnose(parse_log(log), str(log_path))


@pytest.mark.parametrize("debug_info", [False, True], ids=["plain", "debug_info"])
@pytest.mark.parametrize("row", [pytest.param(r, id=r.cause) for r in TRAINED])
def test_doctor_finds_the_first_bad_iteration_in_the_binarys_log(row, debug_info, caffe, caffe_bin, tmp_path):
    run, verdict = train_row(row, caffe, tmp_path, debug_info)
    assert run.status == 0, run  # Caffe itself trains on through a NaN
    assert verdict.nan_found, (verdict.summary, str(run))
    made_backward = row.locate is not None and row.locate[1] == "backward"
    if row.locate_iteration is not None:
        assert verdict.iteration == row.locate_iteration + made_backward, verdict.summary
    layer = verdict.details["first_layer"]
    if not debug_info:
        assert layer is None  # nothing in a plain log names a layer
        return
    assert "[Forward] Layer " in run.log and "[Backward] Layer " in run.log
    assert layer is not None, verdict.summary
    if row.locate is None:
        return
    name, direction = row.locate
    assert re.fullmatch(name, layer["layer"]), layer
    if layer["blob"].startswith("param blob"):
        assert layer["direction"] == "backward" and layer["iteration"] <= row.locate_iteration, layer
    else:
        assert (layer["direction"], layer["iteration"]) == (direction, row.locate_iteration), layer


def test_debug_info_lines_are_bvlcs(caffe, caffe_bin, tmp_path):
    """The set-up and debug_info lines that users' BVLC logs carry, from this build."""
    run, verdict = train_row(BY_CAUSE["pooling_stride"], caffe, tmp_path, debug_info=True)
    for line in (
        "Creating Layer pool1",
        "Top shape: 2 1 3 3 (18)",
        "[Forward] Layer pool1, top blob pool1 data: nan",
        "[Backward] Layer fc, param blob 0 diff: ",
        "All net params (data, diff): L1 norm = ",
    ):
        assert line in run.log, line
    assert verdict.details["first_layer"]["type"] == "Pooling"


def test_poly_without_max_iter_never_trains_under_the_binary(caffe, caffe_bin, tmp_path):
    """What the log lacks: `caffe train` runs no iteration at all, so there is no NaN to read."""
    run, verdict = train_row(BY_CAUSE["lr_policy"], caffe, tmp_path, debug_info=False)
    assert run.status == 0, run
    assert "Iteration 1" not in run.log and "Optimization Done." in run.log
    assert not verdict.nan_found
