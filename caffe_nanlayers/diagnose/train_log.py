"""Train with pycaffe and keep the glog log that ``caffe train`` would have written.

Builds of Caffe that ship only pycaffe have no ``caffe`` binary, yet the
doctor reads ``caffe train`` logs. ``solver.step()`` prints exactly the same
glog lines (it is the same C++ ``Solver::Step``) when glog is told to log
INFO to stderr before Caffe loads; this module does that in a child process
and saves its stderr. The tests and the demo use it to produce real logs.

    python -m caffe_nanlayers.diagnose.train_log solver.prototxt 100 2> train.log
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from caffe_nanlayers.atomic import atomic_path

GLOG_TO_STDERR = {"GLOG_minloglevel": "0", "GLOG_logtostderr": "1"}


def start(solver_path: str | os.PathLike, iterations: int, log_file, cwd=None) -> subprocess.Popen:
    """Start a child that steps the solver ``iterations`` times, glog going to ``log_file``."""
    env = {**os.environ, **GLOG_TO_STDERR}
    command = [sys.executable, "-m", __name__, str(solver_path), str(iterations)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log_file, env=env, cwd=cwd)


def capture(solver_path: str | os.PathLike, iterations: int, log_path: str | os.PathLike, cwd=None) -> Path:
    """Train in a child process and write its glog output to ``log_path``; return the path."""
    with atomic_path(log_path) as tmp, open(tmp, "wb") as log_file:
        child = start(solver_path, iterations, log_file, cwd=cwd)
        child.wait()
    if child.returncode != 0:
        tail = Path(log_path).read_text(errors="replace").strip().splitlines()[-1:]
        raise RuntimeError(f"training {solver_path} failed (exit {child.returncode}): {' '.join(tail)}")
    return Path(log_path)


def _train(solver_path: str, iterations: int) -> None:
    os.environ.update(GLOG_TO_STDERR)  # before Caffe loads: glog reads them once
    from caffe_nanlayers.caffe_net import import_caffe

    caffe = import_caffe(quiet=False)
    solver = caffe.get_solver(solver_path)
    solver.step(iterations)


if __name__ == "__main__":
    if len(sys.argv) != 3 or not sys.argv[2].isdigit():
        sys.exit("usage: python -m caffe_nanlayers.diagnose.train_log SOLVER ITERATIONS 2> train.log")
    _train(sys.argv[1], int(sys.argv[2]))
