"""GradientClipLayer: the same too-high learning rate explodes without it and stays finite with it.

Both solvers run under `caffe train`, as their comments say.
"""

import re
import sys
from pathlib import Path

from caffe_run import caffe_train, first_nonfinite, losses

EXAMPLE = Path(__file__).resolve().parents[2] / "prototxt_examples" / "gradient_clip"
SUMMARY = re.compile(r"GradientClipLayer '(\w+)'.*since start: (\d+) clipping\(s\).*largest norm (\S+)")

_, log = caffe_train(EXAMPLE, "solver_bad.prototxt")
bad = first_nonfinite(log)
print(f"  no clipping: loss non-finite at iteration {bad}")
status, log = caffe_train(EXAMPLE, "solver.prototxt")
clipped = first_nonfinite(log)
summaries = SUMMARY.findall(log)
last_iteration, last_loss = losses(log)[-1]
outcome = "finite" if clipped is None else f"loss non-finite at iteration {clipped}"
print(f"  GradientClipLayer: {outcome} up to iteration {last_iteration}, final loss {last_loss:.4g}")
if summaries:
    name, clippings, largest = summaries[-1]
    print(f"  its last summary: {name}: {clippings} clippings since start, largest norm {largest}")
ok = status == 0 and bad is not None and clipped is None and summaries and int(summaries[-1][1]) > 0
sys.exit(0 if ok else 1)
