"""The ``caffe`` binary the set-up installs: it runs, from anywhere, on this venv's one Caffe.

Users train with ``caffe train -solver ...`` from their own directory, with
nothing exported: the binary must find this venv's Python packages itself and
load the very ``_caffe.so`` that ``import caffe`` loads (two copies of Caffe
in one process abort on the second layer registry).
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from caffe_binary import caffe_train, minimal_env, run_caffe, write_solver
from conftest import REPO
from nan_test_layers import python_layer

REGRESSION = """
name: "regression"
layer { name: "data" type: "DummyData" top: "x" top: "y"
  dummy_data_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 1 }
    data_filler { type: "gaussian" std: 1 } data_filler { type: "gaussian" std: 1 } } }
layer { name: "fc" type: "InnerProduct" bottom: "x" top: "pred"
  inner_product_param { num_output: 1 weight_filler { type: "xavier" } } }
{check}
layer { name: "loss" type: "EuclideanLoss" bottom: "pred" bottom: "y" top: "loss" }
"""

CHECK_PRED = python_layer("check_pred", "CheckFiniteLayer", bottom=["pred"], top=["pred"])

# A layer that reports, from inside the binary's embedded Python, which
# interpreter runs it and which _caffe.so files the process has mapped.
PROBE_MODULE = """
import json, os, sys
import caffe

class Probe(caffe.Layer):
    def setup(self, bottom, top):
        maps = set()
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if path.endswith("_caffe.so"):
                    maps.add(path)
        inodes = {(os.stat(p).st_dev, os.stat(p).st_ino) for p in maps}
        report = {"prefix": sys.prefix, "caffe": os.path.realpath(caffe._caffe.__file__),
                  "mapped_files": len(inodes), "mapped": sorted(maps)}
        with open(self.param_str, "w") as out:
            json.dump(report, out)
    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)
    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data
    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = top[0].diff
"""


def test_version(caffe_bin):
    run = run_caffe("--version")
    assert run.status == 0, run
    assert "caffe version 1.0.0" in run.log


def test_help_lists_the_commands(caffe_bin):
    run = run_caffe()
    assert "usage: caffe <command> <args>" in run.log
    for command in ("train", "test", "device_query", "time"):
        assert command in run.log


def test_opencv_data_layers_exist(caffe):
    assert {"ImageData", "WindowData"} <= set(caffe.layer_type_list())


def test_train_from_another_directory_with_nothing_set(caffe_bin, tmp_path):
    # No PYTHONPATH, PATH=/usr/bin:/bin: caffe_nanlayers and numpy come from the venv anyway.
    net = tmp_path / "model" / "train_val.prototxt"
    solver = write_solver(tmp_path / "model", REGRESSION.replace("{check}", CHECK_PRED), net=f'"{net}"')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = caffe_train(solver, cwd=elsewhere)
    assert run.status == 0, run
    assert "Optimization Done." in run.log
    assert "Iteration 2, loss = " in run.log or "Iteration 1, loss = " in run.log


def test_one_caffe_and_the_venvs_python_in_the_binary(caffe_bin, caffe, tmp_path):
    (tmp_path / "probe_layer.py").write_text(PROBE_MODULE)
    report = tmp_path / "report.json"
    probe = python_layer(
        "probe", "Probe", bottom=["pred"], top=["pred"], param_str=str(report), module="probe_layer"
    )
    solver = write_solver(tmp_path, REGRESSION.replace("{check}", probe))
    run = caffe_train(solver, python_path=[tmp_path])
    assert run.status == 0, run
    seen = json.loads(report.read_text())
    assert seen["mapped_files"] == 1, seen
    assert seen["caffe"] == str(
        caffe_bin.parent.parent / "lib" / "python3.11" / "site-packages" / "caffe" / "_caffe.so"
    )
    assert seen["prefix"] == str(caffe_bin.parent.parent)


def write_ppm(path, width, height, seed):
    """A binary PPM (P6): OpenCV reads it, and no image library is needed to write it."""
    pixels = bytes((seed * 37 + i * 11) % 256 for i in range(width * height * 3))
    path.write_bytes(f"P6 {width} {height} 255\n".encode() + pixels)


IMAGE_NET = """
name: "images"
layer { name: "data" type: "ImageData" top: "data" top: "label"
  transform_param { scale: 0.00390625 }
  image_data_param { source: "list.txt" root_folder: "images/" batch_size: 2 new_height: 6 new_width: 6 } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "score"
  inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss" }
"""


def test_image_data_net_trains(caffe_bin, tmp_path):
    (tmp_path / "images").mkdir()
    for i in range(3):
        write_ppm(tmp_path / "images" / f"img{i}.ppm", 5 + i, 4, seed=i)
    (tmp_path / "list.txt").write_text("".join(f"img{i}.ppm {i}\n" for i in range(3)))
    solver = write_solver(tmp_path, IMAGE_NET)
    run = caffe_train(solver)
    assert run.status == 0, run
    assert "A total of 3 images." in run.log
    assert "Top shape: 2 3 6 6" in run.log


def test_caffe_test_and_time_run_a_python_layer(caffe_bin, caffe, tmp_path):
    net = tmp_path / "net.prototxt"
    net.write_text(REGRESSION.replace("{check}", CHECK_PRED))
    weights = tmp_path / "net.caffemodel"
    caffe.Net(str(net), caffe.TEST).save(str(weights))
    tested = run_caffe("test", "-model", net, "-weights", weights, "-iterations", "2", cwd=tmp_path)
    assert tested.status == 0, tested
    assert "Loss: " in tested.log
    assert "check_pred" in tested.log  # the Python layer was set up in the net
    timed = run_caffe("time", "-model", net, "-iterations", "2", cwd=tmp_path)
    assert timed.status == 0, timed
    assert "check_pred\tforward: " in timed.log
    assert "Average Forward-Backward: " in timed.log


DOCUMENTED_RUN = re.compile(r"cd prototxt_examples/\S+ && caffe train -solver \S+\.prototxt")


def documented_caffe_train_examples() -> list[str]:
    """Every runnable ``caffe train`` example in the README and docs/, verbatim."""
    texts = [(REPO / "README.md").read_text(), *(p.read_text() for p in sorted((REPO / "docs").glob("*.md")))]
    return sorted({m.group(0) for text in texts for m in DOCUMENTED_RUN.finditer(text)})


def test_the_docs_have_caffe_train_examples():
    assert "cd prototxt_examples/check_finite && caffe train -solver solver_bad.prototxt" in (
        documented_caffe_train_examples()
    )


@pytest.mark.parametrize("command", documented_caffe_train_examples())
def test_documented_caffe_train_examples_run_verbatim(command, caffe_bin):
    # After the README's commands: the venv is active (its bin/ on PATH), the shell is at the checkout.
    env = minimal_env(PATH=f"{caffe_bin.parent}:/usr/bin:/bin")
    run = subprocess.run(
        ["bash", "-c", command], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    log = run.stdout + run.stderr
    assert "Solving " in log, log[-3000:]
    if "_bad" not in command:
        assert run.returncode == 0, log[-3000:]


def run_tool(caffe_bin, tool, *args, cwd):
    return subprocess.run(
        [str(caffe_bin.parent / tool), *map(str, args)],
        cwd=cwd,
        env=minimal_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_convert_imageset_and_compute_image_mean(caffe_bin, tmp_path):
    (tmp_path / "images").mkdir()
    for i in range(3):
        write_ppm(tmp_path / "images" / f"img{i}.ppm", 4, 4, seed=i)
    (tmp_path / "list.txt").write_text("".join(f"img{i}.ppm {i}\n" for i in range(3)))
    converted = run_tool(caffe_bin, "convert_imageset", "images/", "list.txt", "train_lmdb", cwd=tmp_path)
    assert converted.returncode == 0, converted.stderr
    assert "Processed 3 files." in converted.stderr
    mean = run_tool(caffe_bin, "compute_image_mean", "train_lmdb", "mean.binaryproto", cwd=tmp_path)
    assert mean.returncode == 0, mean.stderr
    assert (tmp_path / "mean.binaryproto").stat().st_size > 4 * 4 * 3


def test_upgrade_tools_rewrite_old_prototxt(caffe_bin, tmp_path):
    # A V1 net (layers {}, enum types) and a solver with the old solver_type field.
    (tmp_path / "old_net.prototxt").write_text(
        'name: "old"\nlayers { name: "fc" type: INNER_PRODUCT bottom: "x" top: "y"\n'
        '  inner_product_param { num_output: 1 } }\ninput: "x"\ninput_dim: 1 input_dim: 3\n'
    )
    (tmp_path / "old_solver.prototxt").write_text(
        'net: "old_net.prototxt"\nbase_lr: 0.1\nsolver_type: ADAM\n'
    )
    net = run_tool(caffe_bin, "upgrade_net_proto_text", "old_net.prototxt", "new_net.prototxt", cwd=tmp_path)
    assert net.returncode == 0, net.stderr
    assert 'type: "InnerProduct"' in (tmp_path / "new_net.prototxt").read_text()
    solver = run_tool(
        caffe_bin, "upgrade_solver_proto_text", "old_solver.prototxt", "new_solver.prototxt", cwd=tmp_path
    )
    assert solver.returncode == 0, solver.stderr
    assert 'type: "Adam"' in (tmp_path / "new_solver.prototxt").read_text()
