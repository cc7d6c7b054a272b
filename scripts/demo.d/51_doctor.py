"""caffe-nan doctor: read the log of a real run that exploded and of one whose lr was NaN.

Each log is captured from real Caffe (solver.step with glog to stderr, as
`caffe train` prints it); exits 0 only if the doctor names the right cause.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

from caffe_nanlayers.diagnose import train_log

EXAMPLES = Path(__file__).resolve().parents[2] / "prototxt_examples" / "diagnose"
RUNS = [
    ("explode_bad_solver.prototxt", 12, "gradient_explosion"),
    ("poly_bad_solver.prototxt", 3, "lr_policy"),
]

ok = True
with tempfile.TemporaryDirectory() as work:
    for solver, iterations, cause in RUNS:
        log = Path(work) / (Path(solver).stem + ".log")
        train_log.capture(EXAMPLES / solver, iterations, log, cwd=EXAMPLES)
        plot = Path(work) / (Path(solver).stem + ".png")
        done = subprocess.run(
            [sys.executable, "-m", "caffe_nanlayers.cli", "doctor", str(log), "--plot", str(plot)],
            capture_output=True,
            text=True,
        )
        print(done.stdout.strip().replace(str(log), f"{solver} log") or done.stderr.strip())
        right = done.returncode == 1 and f"[{cause}]" in done.stdout and plot.is_file()
        print(f"{'ok' if right else 'WRONG'}: expected [{cause}]\n")
        ok &= right
sys.exit(0 if ok else 1)
