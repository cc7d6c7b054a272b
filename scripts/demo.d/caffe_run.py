"""Run the `caffe` binary the set-up installed next to this Python, as the examples say to.

Shared by the demo steps (not a step: its name starts with no digit).
"""

import math
import re
import subprocess
import sys
from pathlib import Path

CAFFE = Path(sys.executable).parent / "caffe"
LOSS = re.compile(r"\] Iteration (\d+)(?: \([^)]*\))?, loss = (\S+)")


def caffe_train(directory: Path, solver_file: str) -> tuple[int, str]:
    """`cd DIRECTORY && caffe train -solver SOLVER_FILE`: the exit status and what it printed."""
    print(f"$ cd {directory.relative_to(Path.cwd()) if directory.is_relative_to(Path.cwd()) else directory}"
          f" && caffe train -solver {solver_file}")  # fmt: skip
    run = subprocess.run(
        [str(CAFFE), "train", "-solver", solver_file], cwd=directory, capture_output=True, text=True
    )
    return run.returncode, run.stdout + run.stderr


def losses(log: str) -> list[tuple[int, float]]:
    """(iteration, loss) of every `Iteration N, loss = X` line."""
    return [(int(i), float(v)) for i, v in LOSS.findall(log)]


def first_nonfinite(log: str) -> int | None:
    return next((i for i, v in losses(log) if not math.isfinite(v)), None)
