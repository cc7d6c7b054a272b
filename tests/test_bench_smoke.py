"""The benchmark runner works end to end (a quick run of the check bench).

No timing is asserted here: speed is for bench/, on the machine at hand.
What is asserted is that the runner prints the check table with one row per
quick size, which also means the check and the users' snippet agreed on a
clean and a dirty array of every size (the bench refuses to time them
otherwise).
"""

import re
import subprocess
import sys
from pathlib import Path

RUN_ALL = Path(__file__).resolve().parent.parent / "bench" / "run_all.py"


def test_quick_check_bench_prints_its_table():
    proc = subprocess.run(
        [sys.executable, str(RUN_ALL), "--quick", "--only", "check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "### 1. Check throughput" in out
    first_cells = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ")]
    rows = [cell for cell in first_cells if re.fullmatch(r"\d+[KM]", cell)]
    assert rows == ["1K", "64K", "1M"]
    assert "| CPU |" in out and "| Caffe |" in out
