"""Step a solver from pycaffe in a child process and keep the glog lines it prints.

Some runs only happen in pycaffe: a Python loop calling ``solver.step(n)``
trains a solver that ``caffe train`` would not (no ``max_iter``: the binary
stops at once). ``solver.step()`` prints the same glog lines as the binary
when glog is told to log INFO to stderr before Caffe loads. Everything the
binary can train is trained by it (tests/caffe_binary.py).
"""

from __future__ import annotations

import os
import subprocess
import sys

GLOG_TO_STDERR = {"GLOG_minloglevel": "0", "GLOG_logtostderr": "1"}


def start_pycaffe_steps(solver_path, iterations: int, log_file, cwd=None) -> subprocess.Popen:
    """Start a child that steps the solver ``iterations`` times, glog going to ``log_file``."""
    env = {**os.environ, **GLOG_TO_STDERR}
    command = [sys.executable, __file__, str(solver_path), str(iterations)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log_file, env=env, cwd=cwd)


def _step(solver_path: str, iterations: int) -> None:
    os.environ.update(GLOG_TO_STDERR)  # before Caffe loads: glog reads them once
    from caffe_nanlayers.caffe_net import import_caffe

    caffe = import_caffe(quiet=False)
    caffe.get_solver(solver_path).step(iterations)


if __name__ == "__main__":
    _step(sys.argv[1], int(sys.argv[2]))
