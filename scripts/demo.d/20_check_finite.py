"""CheckFiniteLayer under `caffe train`: ends the run at the first NaN, names the layer.

Runs the README's example as users run it, with the `caffe` binary the
set-up installed next to this Python, from the example's directory.
"""

import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "prototxt_examples" / "check_finite"
CAFFE = Path(sys.executable).parent / "caffe"
MESSAGE = re.compile(r"CheckFiniteLayer '(\w+)' .*?: non-finite values in (forward|backward) pass.*")
expected = {
    "solver.prototxt": None,
    "solver_bad.prototxt": ("check_pool1", "forward"),
    "solver_backward_bad.prototxt": ("check_relu1", "backward"),
}
ok = True
for solver_file, expect in expected.items():
    print(f"$ cd prototxt_examples/check_finite && caffe train -solver {solver_file}")
    run = subprocess.run(
        [str(CAFFE), "train", "-solver", solver_file], cwd=EXAMPLE, capture_output=True, text=True
    )
    found = MESSAGE.search(run.stderr)
    got = (found.group(1), found.group(2)) if found else None
    if found:
        print(f"  exit {run.returncode}, stopped by:\n  {found.group(0)}")
    else:
        last = [line for line in run.stderr.splitlines() if ", loss = " in line][-1:]
        print(f"  exit {run.returncode}, every check clean: {' '.join(last)}")
    if got != expect or (run.returncode == 0) != (expect is None):
        print(f"  expected {expect}, got {got} (exit {run.returncode})")
        ok = False
sys.exit(0 if ok else 1)
