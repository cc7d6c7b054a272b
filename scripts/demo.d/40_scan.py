"""caffe-nan scan: one pass of the example LMDB through Caffe names exactly the four planted bad records."""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "prototxt_examples" / "scan"

with tempfile.TemporaryDirectory(prefix="demo-scan-") as tmp:
    made = subprocess.run(
        [sys.executable, str(EXAMPLE / "make_dataset.py"), tmp], capture_output=True, text=True, check=True
    )
    planted = {(key, top, problem) for key, (top, problem) in json.loads(made.stdout).items()}
    command = [sys.executable, "-m", "caffe_nanlayers.cli", "scan", str(EXAMPLE / "train_val.prototxt")]
    print("$ caffe-nan scan train_val.prototxt   # in the directory of train_lmdb", flush=True)
    shown = subprocess.run(command, cwd=tmp, capture_output=True, text=True)
    print(shown.stdout, end="")
    as_json = subprocess.run([*command, "--json", "--quiet"], cwd=tmp, capture_output=True, text=True)
    report = json.loads(as_json.stdout)
    named = {(b["key"], b["top"], b["problem"]) for b in report["bad"]}
    ok = (
        shown.returncode == as_json.returncode == 1 and named == planted and report["records_scanned"] == 1000
    )
    if not ok:
        print(f"expected exit 1 and {sorted(planted)}, got exit {as_json.returncode} and {sorted(named)}")
        print(shown.stderr, end="")
sys.exit(0 if ok else 1)
