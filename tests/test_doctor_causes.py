"""caffe-nan doctor on real training runs, one per reproduced cause of NaN.

The reproductions of ``test_nan_causes.py`` (each net goes NaN for one known
reason) are trained in real Caffe with ``display: 1``, with and without
``debug_info: true`` (plain only where it tells something else), their glog
output kept as ``caffe train`` writes it; the doctor reads each log. What it
may say is bounded by what the log shows: this build prints no per-layer
debug_info lines (Caffe's DLOG, compiled out), only the norm of all
gradients, so a cause that lives in one layer (Pooling, BatchNorm) can only
be "the net or its data before any update" (``initialization``). The test
pins each verdict and holds the doctor to one rule: it never says ``high``
for a wrong cause.
"""

from __future__ import annotations

import pytest
from test_nan_causes import BY_CAUSE, net_text

from caffe_nanlayers.diagnose import train_log
from caffe_nanlayers.diagnose.caffe_log import parse_log
from caffe_nanlayers.diagnose.doctor import diagnose

# (cause reproduced, debug_info) -> (iteration, cause named, confidence)
VERDICTS = {
    ("gradient_explosion", False): (4, "gradient_explosion", "high"),
    ("gradient_explosion", True): (3, "gradient_explosion", "high"),
    ("lr_policy", True): (0, "lr_policy", "high"),
    # two finite readings, then NaN: too little to separate the causes
    ("loss_layer", False): (2, "gradient_explosion", "low"),
    # a finite loss with a non-finite gradient at iteration 0: a backward made it
    ("loss_layer", True): (0, "loss_layer", "low"),
    ("bad_input", False): (6, "bad_input", "medium"),  # steady for 6 displays of 1, then NaN
    ("bad_input", True): (6, "bad_input", "medium"),
    ("pooling_stride", False): (0, "initialization", "medium"),
    ("pooling_stride", True): (0, "initialization", "medium"),
    ("batchnorm", True): (0, "initialization", "medium"),
    ("sparsity", False): (1, "gradient_explosion", "low"),
    ("sparsity", True): (0, "loss_layer", "low"),  # sparsity ranked second
    ("fillers", True): (0, "initialization", "medium"),
}
ITERATIONS = 8


@pytest.fixture(scope="module")
def cause_logs(caffe, tmp_path_factory):
    """(cause, debug_info) -> path of the log of its real run (all runs in parallel)."""
    children = {}
    for cause, debug in VERDICTS:
        row = BY_CAUSE[cause]
        work = tmp_path_factory.mktemp(f"{cause}_{'debug' if debug else 'plain'}")
        if row.files:
            row.files(work, caffe)
        (work / "net.prototxt").write_text(net_text(row, work))
        solver = work / "solver.prototxt"
        extra = "display: 1\n" + ("debug_info: true\n" if debug else "")
        solver.write_text(f'net: "{work / "net.prototxt"}"\n{row.solver}{extra}')
        handle = open(work / "train.log", "wb")  # noqa: SIM115 (closed below, after the child ends)
        children[cause, debug] = (train_log.start(solver, ITERATIONS, handle, cwd=work), handle, work)
    paths = {}
    for key, (child, handle, work) in children.items():
        child.wait()
        handle.close()
        assert child.returncode == 0, (work / "train.log").read_text()[-2000:]
        paths[key] = work / "train.log"
    return paths


@pytest.mark.parametrize(("cause", "debug"), list(VERDICTS), ids=lambda v: str(v))
def test_the_doctor_on_a_real_run_of_each_cause(cause, debug, cause_logs):
    with open(cause_logs[cause, debug]) as f:
        log = parse_log(f)
    assert (log.debug_lines > 0) == debug
    verdict = diagnose(log, f"{cause}.log")
    assert verdict.exit_code == 1
    assert (verdict.iteration, verdict.cause.id, verdict.confidence) == VERDICTS[cause, debug]
    if verdict.confidence == "high":
        assert verdict.cause.id == cause
    else:
        assert verdict.next_steps and "caffe-nan locate" in verdict.next_steps[0]
    if verdict.confidence == "low":  # the log cannot separate the causes: it says so
        assert any("cannot separate" in e for e in verdict.evidence)
        return
    named = [verdict.cause.id] + [c.id for c in verdict.also_possible]
    # the cause itself, or (at iteration 0, no layer in the log) the net-or-data umbrella
    assert cause in named or (verdict.iteration == 0 and verdict.cause.id == "initialization")
