"""Run the real ``caffe`` binary the way users do: ``caffe train -solver solver.prototxt``.

Most Caffe users never touch pycaffe: their Python layers run inside the
``caffe`` binary, whose embedded interpreter, command line, logging and exit
status differ from pycaffe's. Tests of that path run the binary the set-up
installs next to the venv's python, in a minimal environment (no PYTHONPATH,
no venv on PATH, as after a fresh login), and read the log it writes.

    run = caffe_train(solver_path)          # -> CaffeRun(status, log)
    assert run.status != 0 and "CheckFiniteLayer" in run.log
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CAFFE_BIN = Path(sys.executable).parent / "caffe"


@dataclass(frozen=True)
class CaffeRun:
    """What a user sees of one run: the exit status and the terminal's text (glog writes to stderr)."""

    status: int
    log: str
    command: tuple[str, ...]

    def __str__(self) -> str:
        return f"$ {' '.join(self.command)}\nexit {self.status}\n{self.log[-4000:]}"


def minimal_env(python_path=(), **extra: str) -> dict[str, str]:
    """A login's environment: system PATH only, no PYTHONPATH but the modules a test asks for.

    glog's own log files go nowhere (GLOG_logtostderr): the terminal's text is the log.
    """
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "GLOG_logtostderr": "1"}
    if python_path:
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in python_path)
    env.update(extra)
    return env


def run_caffe(*args: str, cwd=None, python_path=(), timeout: float = 120, **env: str) -> CaffeRun:
    """``caffe ARGS...`` in ``cwd``; the log is stdout and stderr together, as on a terminal."""
    command = (str(CAFFE_BIN), *map(str, args))
    proc = subprocess.run(
        command,
        cwd=cwd,
        env=minimal_env(python_path, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        timeout=timeout,
    )
    return CaffeRun(proc.returncode, proc.stdout, command)


def start_caffe_train(solver, log_file, cwd=None, python_path=(), **env: str) -> subprocess.Popen:
    """``caffe train -solver SOLVER`` in the background, its terminal text going to ``log_file``.

    For tests that run several trainings at once and read each log afterwards.
    """
    solver = Path(solver)
    command = [str(CAFFE_BIN), "train", "-solver", str(solver)]
    return subprocess.Popen(
        command,
        cwd=solver.parent if cwd is None else cwd,
        env=minimal_env(python_path, **env),
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )


def caffe_train(solver, cwd=None, python_path=(), timeout: float = 120, **env: str) -> CaffeRun:
    """``caffe train -solver SOLVER``, run from the solver's directory unless ``cwd`` says otherwise."""
    solver = Path(solver)
    cwd = solver.parent if cwd is None else cwd
    return run_caffe("train", "-solver", solver, cwd=cwd, python_path=python_path, timeout=timeout, **env)


def write_solver(directory: Path, net_text: str, name: str = "solver.prototxt", **solver_fields) -> Path:
    """A solver file and its train_val.prototxt in ``directory``; ``solver_fields`` override the defaults."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "train_val.prototxt").write_text(net_text)
    fields = {
        "net": '"train_val.prototxt"',
        "base_lr": 0.01,
        "lr_policy": '"fixed"',
        "max_iter": 2,
        "display": 1,
        "random_seed": 1,
        "snapshot_after_train": "false",
        "solver_mode": "CPU",
    }
    fields.update({key: _solver_value(value) for key, value in solver_fields.items()})
    path = directory / name
    path.write_text("".join(f"{key}: {value}\n" for key, value in fields.items()))
    return path


def _solver_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
