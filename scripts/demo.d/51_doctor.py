"""caffe-nan doctor: read the log of a real run that exploded and of one whose lr was NaN.

Each log is captured from real Caffe (solver.step with glog to stderr, as
`caffe train` prints it); exits 0 only if the doctor names the right cause.
"""

import subprocess
import sys
from pathlib import Path

from caffe_nanlayers.diagnose import train_log

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "prototxt_examples" / "diagnose"
# Kept after the demo so the logs and plots can be opened (git ignores it).
OUTPUT = ROOT / "demo-output" / "doctor"
RUNS = [
    ("explode_bad_solver.prototxt", 12, "gradient_explosion"),
    ("poly_bad_solver.prototxt", 3, "lr_policy"),
]

ok = True
OUTPUT.mkdir(parents=True, exist_ok=True)
for solver, iterations, cause in RUNS:
    log = OUTPUT / (Path(solver).stem + ".log")
    train_log.capture(EXAMPLES / solver, iterations, log, cwd=EXAMPLES)
    plot = OUTPUT / (Path(solver).stem + ".png")
    done = subprocess.run(
        [sys.executable, "-m", "caffe_nanlayers.cli", "doctor", str(log), "--plot", str(plot)],
        capture_output=True,
        text=True,
    )
    print(done.stdout.strip().replace(str(ROOT) + "/", "") or done.stderr.strip())
    right = done.returncode == 1 and f"[{cause}]" in done.stdout and plot.is_file()
    print(f"{'ok' if right else 'WRONG'}: expected [{cause}]\n")
    ok &= right
sys.exit(0 if ok else 1)
