"""InputSanitizerLayer: corrupt values in the data make the loss NaN; the layer replaces and counts them.

Both solvers run under `caffe train` in a copy of the example, after its
make_data.py, as the example's comments say.
"""

import math
import re
import shutil
import sys
import tempfile
from pathlib import Path

from caffe_run import caffe_train, first_nonfinite, losses

EXAMPLE = Path(__file__).resolve().parents[2] / "prototxt_examples" / "input_sanitizer"
sys.path.insert(0, str(EXAMPLE))
from make_data import RECORDS, make_data  # noqa: E402

WARNING = re.compile(r"InputSanitizerLayer 'sanitize'.*: batch (\d+) held non-finite input: (.*)")
COUNTS = re.compile(r"(\d+) NaN, (\d+) \+Inf, (\d+) -Inf replaced")

work = Path(tempfile.mkdtemp(prefix="nanlayers-demo-"))
try:
    for path in EXAMPLE.glob("*.prototxt"):
        shutil.copy(path, work)
    injected = make_data(work / "data")  # the example's data/ lives beside its prototxt
    print(f"make_data.py: {RECORDS} records with {injected} injected")
    batch = int(re.search(r"batch_size: (\d+)", (work / "train_val.prototxt").read_text()).group(1))
    epoch = math.ceil(RECORDS / batch)
    _, bad_log = caffe_train(work, "solver_bad.prototxt")
    print(f"  without the layer: loss non-finite first at iteration {first_nonfinite(bad_log)}")
    status, log = caffe_train(work, "solver.prototxt")
    print(f"  with InputSanitizerLayer: exit {status}, every loss finite: {first_nonfinite(log) is None}")
    counted = {"nan": 0, "posinf": 0, "neginf": 0}
    for batch_index, details in WARNING.findall(log):
        if int(batch_index) < epoch:  # the first pass over the data
            for nan, posinf, neginf in COUNTS.findall(details):
                counted["nan"] += int(nan)
                counted["posinf"] += int(posinf)
                counted["neginf"] += int(neginf)
    shown = [line for line in log.splitlines() if WARNING.search(line)][:2]
    print("  its warnings, the first two:\n    " + "\n    ".join(shown))
    print(f"  counted over the first epoch ({epoch} batches): {counted}")
    caught = (
        status == 0
        and first_nonfinite(bad_log) is not None
        and first_nonfinite(log) is None
        and losses(log)
        and counted == injected
    )
finally:
    shutil.rmtree(work, ignore_errors=True)
sys.exit(0 if caught else 1)
