"""GradientClipLayer: the same too-high learning rate explodes without it and stays finite with it."""

import math
import os
import sys
from pathlib import Path

from caffe_nanlayers.caffe_net import import_caffe

os.chdir(Path(__file__).resolve().parents[2] / "prototxt_examples" / "gradient_clip")
caffe = import_caffe()
ITERATIONS = 300


def first_nonfinite(solver):
    for _ in range(ITERATIONS):
        solver.step(1)
        if not math.isfinite(float(solver.net.blobs["loss"].data)):
            return solver.iter - 1
    return None


bad = first_nonfinite(caffe.get_solver("solver_bad.prototxt"))
print(f"solver_bad.prototxt (no clipping): loss non-finite at iteration {bad}")
solver = caffe.get_solver("solver.prototxt")
clipped = first_nonfinite(solver)
layer = solver.net.layer_dict["clip_pred"]
outcome = "finite" if clipped is None else f"loss non-finite at iteration {clipped}"
print(
    f"solver.prototxt (GradientClipLayer): {outcome}"
    f" over {ITERATIONS} iterations, final loss {float(solver.net.blobs['loss'].data):.4g};"
    f" {layer.clip_events} clippings, largest norm {layer.max_norm:.4g} (threshold {layer.threshold})"
)
sys.exit(0 if bad is not None and clipped is None and layer.clip_events > 0 else 1)
