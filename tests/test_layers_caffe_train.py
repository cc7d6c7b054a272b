"""The three layers in a ``train_val.prototxt`` run by the real ``caffe train``, as most users run them.

Under the binary there is no pycaffe object: a layer finds its prototxt name
from the command line, its messages reach the terminal through the layers'
own fallback logging, and a ``raise`` must end the run with a non-zero
status and the full message. pycaffe tests of the same layers are in
``test_layers_*.py``; these run the shipped examples verbatim and small nets
written here.
"""

from __future__ import annotations

import re
import shutil
import sys

import pytest
from caffe_binary import caffe_train, write_solver
from conftest import EXAMPLES
from nan_test_layers import python_layer

# AVE pooling, kernel 3, stride 5 on 10x10: the last row and column of windows are empty (0/0 = NaN).
POOL_NET = """
name: "pool"
layer { name: "data" type: "DummyData" top: "data" top: "target"
  dummy_data_param { shape { dim: 2 dim: 1 dim: 10 dim: 10 } shape { dim: 2 dim: 1 }
    data_filler { type: "gaussian" std: 1 } data_filler { type: "gaussian" std: 1 } } }
{check_data}
layer { name: "pool1" type: "Pooling" bottom: "data" top: "pool1"
  pooling_param { pool: AVE kernel_size: 3 stride: 5 } }
{check_pool1}
layer { name: "fc" type: "InnerProduct" bottom: "pool1" top: "fc"
  inner_product_param { num_output: 1 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "fc" bottom: "target" top: "loss" }
"""

# The widely pasted snippet: same class, same param_str, only the name and blobs differ.
SNIPPET = python_layer("NAME", "CheckFiniteLayer", ["BLOB"], ["BLOB"], "prefix-check")


def snippet(name: str, blob: str) -> str:
    return SNIPPET.replace("NAME", name).replace("BLOB", blob)


def test_check_finite_example_stops_the_run_with_its_full_message(caffe_bin):
    run = caffe_train(EXAMPLES / "check_finite" / "solver_bad.prototxt")
    assert run.status != 0, run
    message = next(line for line in run.log.splitlines() if "NonFiniteError" in line)
    assert (
        "CheckFiniteLayer 'check_pool1' [after pool1]: non-finite values in forward pass, iteration 0"
        in message
    )
    assert "bottom 0 'pool1' data: " in message and " NaN, " in message
    assert "Optimization Done" not in run.log


def test_check_finite_example_backward(caffe_bin):
    run = caffe_train(EXAMPLES / "check_finite" / "solver_backward_bad.prototxt")
    assert run.status != 0, run
    assert re.search(
        r"CheckFiniteLayer 'check_relu1' \[below sqrt1\]: non-finite values in backward pass", run.log
    )


def test_healthy_example_trains_to_the_end(caffe_bin):
    run = caffe_train(EXAMPLES / "check_finite" / "solver.prototxt")
    assert run.status == 0, run
    assert "Iteration 100, loss = " in run.log and "Optimization Done." in run.log


def test_two_pasted_copies_of_the_snippet_are_told_apart(caffe_bin, tmp_path):
    net = POOL_NET.replace("{check_data}", snippet("check_data", "data")).replace(
        "{check_pool1}", snippet("check_pool1", "pool1")
    )
    run = caffe_train(write_solver(tmp_path, net))
    assert run.status != 0, run
    assert (
        "CheckFiniteLayer 'check_pool1' [prefix-check]: non-finite values in forward pass, iteration 0"
        in run.log
    )
    assert "'check_data'" not in run.log.split("NonFiniteError", 1)[1]


# The NaN exists only in the TEST phase: a Power 0.5 of data shifted below zero, in a test-only branch.
TEST_ONLY_NAN = """
name: "test_only"
layer { name: "data" type: "DummyData" top: "data" top: "target"
  dummy_data_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 1 }
    data_filler { type: "uniform" min: 1 max: 2 } data_filler { type: "gaussian" std: 1 } } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
  inner_product_param { num_output: 1 weight_filler { type: "xavier" } } }
{check_train}
layer { name: "loss" type: "EuclideanLoss" bottom: "fc" bottom: "target" top: "loss" }
layer { name: "root" type: "Power" bottom: "data" top: "root" include { phase: TEST }
  power_param { power: 0.5 shift: -5 } }
{check_test}
"""


def test_a_check_in_the_test_net_names_itself(caffe_bin, tmp_path):
    net = TEST_ONLY_NAN.replace("{check_train}", snippet("check_fc", "fc")).replace(
        "{check_test}",
        snippet("check_root", "root").replace('type: "Python"', 'type: "Python" include { phase: TEST }'),
    )
    run = caffe_train(write_solver(tmp_path, net, test_iter=1, test_interval=1))
    assert run.status != 0, run
    assert "CheckFiniteLayer 'check_root' [prefix-check]: non-finite values in forward pass" in run.log


def test_warn_is_visible_on_the_terminal_and_training_goes_on(caffe_bin, tmp_path):
    warn = python_layer("check_pool1", "CheckFiniteLayer", ["pool1"], ["pool1"], "{'mode': 'warn'}")
    net = POOL_NET.replace("{check_data}", "").replace("{check_pool1}", warn)
    run = caffe_train(write_solver(tmp_path, net, max_iter=2))
    assert run.status == 0, run
    warnings = [line for line in run.log.splitlines() if line.startswith("[caffe_nanlayers.layers] WARNING")]
    assert any("CheckFiniteLayer 'check_pool1'" in line and "iteration 0" in line for line in warnings), run
    assert "Optimization Done." in run.log


def test_gradient_clip_example_reports_its_clipping_and_stays_finite(caffe_bin):
    run = caffe_train(EXAMPLES / "gradient_clip" / "solver.prototxt")
    assert run.status == 0, run
    assert "GradientClipLayer" in run.log and "[caffe_nanlayers.layers]" in run.log
    losses = re.findall(r"Iteration \d+ \(.*?\), loss = (\S+)|Iteration \d+, loss = (\S+)", run.log)
    values = [float(a or b) for a, b in losses]
    assert values and all(v == v and abs(v) != float("inf") for v in values)


def test_gradient_clip_bad_example_goes_inf(caffe_bin):
    run = caffe_train(EXAMPLES / "gradient_clip" / "solver_bad.prototxt")
    assert run.status == 0, run  # Caffe itself never stops on a NaN
    assert re.search(r"loss = (inf|-?nan)", run.log)


def test_input_sanitizer_example_under_caffe_train(caffe_bin, tmp_path):
    pytest.importorskip("h5py")
    work = tmp_path / "input_sanitizer"
    shutil.copytree(EXAMPLES / "input_sanitizer", work)
    sys.path.insert(0, str(work))
    try:
        from make_data import make_data
    finally:
        sys.path.remove(str(work))
    make_data(work / "data")  # the example reads data/ relative to where caffe runs: work
    bad = caffe_train(work / "solver_bad.prototxt")
    assert bad.status == 0, bad
    assert re.search(r"loss = (inf|-?nan)", bad.log)
    good = caffe_train(work / "solver.prototxt")
    assert good.status == 0, good
    assert not re.search(r"loss = (inf|-?nan)", good.log)
    assert re.search(
        r"InputSanitizerLayer 'sanitize' \[features\]: batch \d+ held non-finite input", good.log
    )
