"""A tool whose optional dependency is missing names the extra that installs it.

The missing module is simulated the way Python itself sees a missing
module: a process whose ``sys.modules`` maps the name to None, so that
``import`` raises ImportError there. The inputs are real (an HDF5 file, an
LMDB, a caffe train log); the tool runs as a user runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO
from scan_datasets import write_lmdb


def run_without(module: str, argv: list[str], cwd) -> subprocess.CompletedProcess:
    """Run caffe-nan where ``module`` cannot be imported, in its process and in every child it starts
    (the scan reads datasets in processes of its own): a module of that name that raises ImportError
    comes first on their path, and the first process also has it blocked in ``sys.modules``."""
    shadow = cwd / "without"
    shadow.mkdir()
    (shadow / f"{module}.py").write_text(
        f"raise ImportError({f'No module named {module!r}'!r}, name={module!r})\n"
    )
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "from caffe_nanlayers.cli import main\n"
        f"sys.exit(main({argv!r}))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": f"{shadow}{os.pathsep}{REPO}"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_scan_without_h5py_names_the_scan_extra(tmp_path):
    import h5py

    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["data"] = np.zeros((2, 3), np.float32)
    (tmp_path / "list.txt").write_text("a.h5\n")
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "h5" type: "HDF5Data" top: "data"\n'
        '  hdf5_data_param { source: "list.txt" batch_size: 1 } }\n'
    )
    result = run_without("h5py", ["scan", "net.prototxt"], tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "caffe-nan scan: scanning an HDF5Data layer needs the Python package 'h5py': "
        "pip install 'caffe-nanlayers[scan]'\n"
    )


def test_scan_without_lmdb_names_the_scan_extra(tmp_path):
    write_lmdb(tmp_path / "db", [b"x"])
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "d" type: "Data" top: "data"\n'
        '  data_param { source: "db" backend: LMDB batch_size: 1 } }\n'
    )
    result = run_without("lmdb", ["scan", "net.prototxt"], tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith("caffe-nan scan: ") and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.endswith("needs the Python package 'lmdb': pip install 'caffe-nanlayers[scan]'\n")


@pytest.mark.parametrize("output", ["json", "text"])
def test_doctor_plot_without_matplotlib_names_the_plot_extra(tmp_path, output):
    (tmp_path / "train.log").write_text(
        "I1130 12:00:00.000000  1234 solver.cpp:218] Iteration 0 (0 iter/s, 0s/20 iters), loss = nan\n"
    )
    argv = ["doctor", "train.log", "--plot", "loss.png"] + (["--json"] if output == "json" else [])
    result = run_without("matplotlib", argv, tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "caffe-nan doctor: error: --plot needs the Python package 'matplotlib': "
        "pip install 'caffe-nanlayers[plot]'\n"
    )
    assert not (tmp_path / "loss.png").exists()
