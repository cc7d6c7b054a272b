"""caffe-nan instrument + locate: name the layer, the direction and the cause of a NaN, in real Caffe.

Instruments the pooling example, then locates three solvers that go NaN for
different reasons; exits 0 only if each one gets its right layer and cause.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "prototxt_examples"
EXPECTED = [
    # solver, expected cause, expected (layer, direction) of the producer or None
    (EXAMPLES / "check_finite" / "solver_bad.prototxt", "pooling_stride", ("pool1", "forward")),
    (EXAMPLES / "check_finite" / "solver_backward_bad.prototxt", "sparsity", ("sqrt1", "backward")),
    (EXAMPLES / "diagnose" / "explode_bad_solver.prototxt", "gradient_explosion", None),
    (EXAMPLES / "diagnose" / "poly_bad_solver.prototxt", "lr_policy", None),
]


def caffe_nan(*args):
    return subprocess.run(
        [sys.executable, "-m", "caffe_nanlayers.cli", *map(str, args)], capture_output=True, text=True
    )


ok = True
with tempfile.TemporaryDirectory() as work:
    work = Path(work)
    checked = work / "train_val.checked.prototxt"
    done = caffe_nan("instrument", EXAMPLES / "check_finite" / "train_val_bad.prototxt", "-o", checked)
    print(done.stdout.strip() or done.stderr.strip())
    ok &= done.returncode == 0 and checked.is_file()
    for solver, cause, where in EXPECTED:
        done = caffe_nan("locate", solver, "--out", work / solver.stem, "--max-iter", 50, "--json")
        if done.returncode != 1:
            print(f"{solver.name}: exit {done.returncode}: {done.stderr.strip()}")
            ok = False
            continue
        report = json.loads(done.stdout)
        producer = report["producer"]
        found = (producer["layer"], producer["direction"]) if producer else None
        right = report["cause"]["id"] == cause and (where is None or found == where)
        ok &= right
        print(f"{'ok  ' if right else 'WRONG'} {solver.relative_to(ROOT)}: {report['summary']}")
        found_cause = report["cause"]
        print(f"      cause [{found_cause['id']}]: {found_cause['title']}; fix: {found_cause['fix']}")
sys.exit(0 if ok else 1)
