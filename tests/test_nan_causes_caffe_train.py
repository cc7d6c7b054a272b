"""Every reproduced NaN cause trained by the real ``caffe train``, and the doctor reading its log.

``test_nan_causes.py`` reproduces each cause in real Caffe and checks that
``caffe-nan locate`` names it. Users, though, come with the log that ``caffe
train`` printed. Each row here is trained by the binary twice, without and
with ``debug_info: true`` (all runs at once, once per module), and the doctor
reads the log the binary wrote:

- it finds the first non-finite iteration: locate's, or the next one where
  the NaN was made backward (a plain log shows losses only, and a NaN
  gradient reaches the loss through the next update);
- with ``debug_info`` it names the first bad layer, from BVLC's per-layer
  ``[Forward]`` / ``[Backward]`` lines, as locate names the producer, and the
  cause locate names; a layer whose weights' gradient went non-finite before
  its output did is named from its ``param blob`` line, backward;
- on a plain log, where nothing names a layer, it names locate's cause (from
  the net the log printed at start-up, where a setting of it makes NaN) or
  says what the log lacks: a confidence below high, the missing debug_info
  lines in its evidence, and the next steps to collect them.

``VERDICTS`` pins the doctor's (iteration, cause, confidence) on each log;
``docs/diagnosis.md`` holds the same table (a test keeps the two equal).
The logs are written at run time into the module's tmp directories.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from caffe_binary import CaffeRun, caffe_train, start_caffe_train
from test_nan_causes import BY_CAUSE, CAUSES, Reproduction, net_text

from caffe_nanlayers.diagnose.caffe_log import parse_log
from caffe_nanlayers.diagnose.doctor import diagnose

# The poly row cannot train under the binary: without max_iter (the bug it
# shows), max_iter is 0 and `caffe train` stops before iteration 1.
TRAINED = [r for r in CAUSES if r.trains and r.cause != "lr_policy"]
TESTS = Path(__file__).resolve().parent
DOCS = TESTS.parent / "docs" / "diagnosis.md"

# How each log is written: display every iteration, with or without debug_info; and one row
# displayed every 4 iterations, where the NaN may hide inside the interval.
PLAIN, DEBUG, COARSE = "plain", "debug_info", "display 4"
SOLVER_LINES = {PLAIN: "display: 1\n", DEBUG: "display: 1\ndebug_info: true\n", COARSE: "display: 4\n"}

# (cause reproduced, log) -> the doctor's (iteration, cause named, confidence) on the binary's log.
VERDICTS = {
    ("gradient_explosion", PLAIN): (4, "gradient_explosion", "high"),
    ("gradient_explosion", DEBUG): (4, "gradient_explosion", "high"),
    # a plain log names no layer; the net it printed does (lint-prototxt's rules on it): medium
    ("loss_layer", PLAIN): (2, "loss_layer", "medium"),  # InfogainLoss fed raw scores (NAN106)
    # InfogainLoss sent back 1e18 for a loss of 29; fc2's weight gradient overflowed next
    ("loss_layer", DEBUG): (1, "loss_layer", "high"),
    ("bad_input", PLAIN): (6, "bad_input", "medium"),  # steady for 6 displays of 1, then NaN
    ("bad_input", DEBUG): (6, "bad_input", "high"),  # the HDF5Data layer's top
    ("bad_input", COARSE): (8, "gradient_explosion", "low"),  # two readings, 4 iterations apart
    ("pooling_stride", PLAIN): (0, "pooling_stride", "medium"),  # a window that covers no input
    ("pooling_stride", DEBUG): (0, "pooling_stride", "high"),
    ("batchnorm", PLAIN): (0, "batchnorm", "medium"),  # eps 0
    ("batchnorm", DEBUG): (0, "batchnorm", "high"),
    # a NaN made backward at iteration 0 shows in the loss of iteration 1
    ("sparsity", PLAIN): (1, "gradient_explosion", "low"),
    ("sparsity", DEBUG): (0, "sparsity", "high"),  # the Power layer's backward 0/0
    ("fillers", PLAIN): (0, "fillers", "medium"),  # gaussian without std
    ("fillers", DEBUG): (0, "fillers", "medium"),  # an InnerProduct overflowing at iteration 0
    ("log0", PLAIN): (0, "log0", "medium"),  # loss = +inf at iteration 0 from a Python loss layer
    ("log0", DEBUG): (0, "log0", "medium"),  # a Python loss whose forward made +inf
}


def write_row(row: Reproduction, caffe, directory: Path, kind: str) -> Path:
    """The row's net and a solver stopping at iteration 10; the solver's path."""
    if row.files:
        row.files(directory, caffe)
    (directory / "net.prototxt").write_text(net_text(row, directory))
    solver = directory / "solver.prototxt"
    # Every row's first NaN comes by iteration 6: stop soon after, as Caffe itself never stops on one.
    short = re.sub(r"max_iter: \d+", "max_iter: 10", row.solver)
    solver.write_text(f'net: "{directory / "net.prototxt"}"\n' + short + SOLVER_LINES[kind])
    return solver


def read_verdict(log_path: Path):
    with open(log_path) as log:
        return diagnose(parse_log(log), str(log_path))


def train_row(row: Reproduction, caffe, directory, kind: str) -> tuple[CaffeRun, object]:
    """Train the row's net with the binary; return the run and the doctor's verdict on its log."""
    solver = write_row(row, caffe, directory, kind)
    run = caffe_train(solver, cwd=directory, python_path=[TESTS])  # nan_test_layers, as users set PYTHONPATH
    log_path = directory / "caffe_train.log"
    log_path.write_text(run.log)
    return run, read_verdict(log_path)


@pytest.fixture(scope="module")
def trained(caffe, caffe_bin, tmp_path_factory) -> dict[tuple[str, str], tuple[str, object]]:
    """(cause, log kind) -> (the binary's log, the doctor's verdict), all runs started at once."""
    children = {}
    for cause, kind in VERDICTS:
        directory = tmp_path_factory.mktemp(f"{cause}_{kind.replace(' ', '')}")
        solver = write_row(BY_CAUSE[cause], caffe, directory, kind)
        handle = open(directory / "caffe_train.log", "w")  # noqa: SIM115 (closed below, once the child ends)
        child = start_caffe_train(solver, handle, cwd=directory, python_path=[TESTS])
        children[cause, kind] = (child, handle, directory / "caffe_train.log")
    runs = {}
    for key, (child, handle, log_path) in children.items():
        child.wait(timeout=120)
        handle.close()
        assert child.returncode == 0, log_path.read_text()[-3000:]  # Caffe itself trains on through a NaN
        runs[key] = (log_path.read_text(), read_verdict(log_path))
    return runs


def test_every_trained_row_is_pinned_plain_and_with_debug_info():
    assert {(r.cause, k) for r in TRAINED for k in (PLAIN, DEBUG)} <= set(VERDICTS)


@pytest.mark.parametrize("key", list(VERDICTS), ids=lambda k: f"{k[0]}-{k[1].replace(' ', '')}")
def test_the_doctors_verdict_on_the_binarys_log(key, trained):
    cause, kind = key
    _, verdict = trained[key]
    assert verdict.nan_found and verdict.exit_code == 1, verdict.summary
    assert (verdict.iteration, verdict.cause.id, verdict.confidence) == VERDICTS[key], verdict.to_text()
    layer = verdict.details["first_layer"]
    if layer is not None:
        # the log shows the layer: the cause is locate's, whatever the confidence
        assert kind == DEBUG and verdict.cause.id == cause, verdict.to_text()
    if verdict.confidence == "high":
        assert verdict.cause.id == cause  # never high for a wrong cause
        return
    # unsure: the next steps say what to collect, first of all locate's replay
    assert "caffe-nan locate" in verdict.next_steps[0], verdict.next_steps
    if layer is None:
        # what the log lacks to decide: the lines that name a layer, and how to get them
        assert [f["id"] for f in verdict.details["log_lacks"]] == ["no_layer_lines"]
        assert any("no debug_info lines" in e for e in verdict.evidence)
        assert any("debug_info: true" in step for step in verdict.next_steps)
    if verdict.cause.id != cause:
        named = [verdict.cause.id] + [c.id for c in verdict.also_possible]
        # the cause itself among the others, or (at iteration 0) the net-or-data umbrella
        assert cause in named or (verdict.iteration == 0 and verdict.cause.id == "initialization"), named
    if kind == COARSE:
        assert any("a smaller display (now 4)" in step for step in verdict.next_steps), verdict.next_steps


@pytest.mark.parametrize("kind", [PLAIN, DEBUG])
@pytest.mark.parametrize("row", [pytest.param(r, id=r.cause) for r in TRAINED])
def test_the_first_bad_iteration_and_layer_are_locates(row, kind, trained):
    log, verdict = trained[row.cause, kind]
    made_backward = row.locate is not None and row.locate[1] == "backward"
    layer = verdict.details["first_layer"]
    if kind == PLAIN:
        assert layer is None  # nothing in a plain log names a layer
        if row.locate_iteration is not None:
            assert verdict.iteration == row.locate_iteration + made_backward, verdict.summary
        return
    assert "[Forward] Layer " in log and "[Backward] Layer " in log
    assert layer is not None, verdict.summary
    if row.locate is None:
        return
    name, direction = row.locate
    assert re.fullmatch(name, layer["layer"]), layer
    if layer["blob"].startswith("param blob"):
        # a weight's gradient, which locate does not watch, went non-finite before the output it names
        assert layer["direction"] == "backward" and layer["iteration"] <= row.locate_iteration, layer
        assert verdict.iteration == layer["iteration"]
    else:
        assert (layer["direction"], layer["iteration"]) == (direction, row.locate_iteration), layer
        assert verdict.iteration == row.locate_iteration


def verdicts_table() -> str:
    """The markdown table of docs/diagnosis.md, from the pins."""
    rows = [
        "| cause reproduced | plain log | with `debug_info: true` |",
        "|---|---|---|",
    ]
    for row in TRAINED:
        cells = []
        for kind in (PLAIN, DEBUG):
            iteration, named, confidence = VERDICTS[row.cause, kind]
            cells.append(f"{named} ({confidence}), iteration {iteration}")
        rows.append(f"| {row.cause} | {cells[0]} | {cells[1]} |")
    return "\n".join(rows) + "\n"


def test_the_docs_table_is_the_pins():
    assert verdicts_table() in DOCS.read_text(), "docs/diagnosis.md should hold:\n" + verdicts_table()


def test_debug_info_lines_are_bvlcs(trained):
    """The set-up and debug_info lines that users' BVLC logs carry, from this build."""
    log, verdict = trained["pooling_stride", DEBUG]
    for line in (
        "Creating Layer pool1",
        "Top shape: 2 1 3 3 (18)",
        "[Forward] Layer pool1, top blob pool1 data: nan",
        "[Backward] Layer fc, param blob 0 diff: ",
        "All net params (data, diff): L1 norm = ",
    ):
        assert line in log, line
    assert verdict.details["first_layer"]["type"] == "Pooling"


def test_poly_without_max_iter_never_trains_under_the_binary(caffe, caffe_bin, tmp_path):
    """What the log lacks: `caffe train` runs no iteration at all, so there is no NaN to read."""
    run, verdict = train_row(BY_CAUSE["lr_policy"], caffe, tmp_path, PLAIN)
    assert run.status == 0, run
    assert "Iteration 1" not in run.log and "Optimization Done." in run.log
    assert not verdict.nan_found
