"""CheckFiniteLayer: stops training at the first NaN, forward or backward, and names the layer."""

import os
import sys
from pathlib import Path

from caffe_nanlayers import NonFiniteError
from caffe_nanlayers.caffe_net import import_caffe

os.chdir(
    Path(__file__).resolve().parents[2] / "prototxt_examples" / "check_finite"
)  # as `caffe train` is run
caffe = import_caffe()
expected = {
    "solver.prototxt": None,
    "solver_bad.prototxt": ("check_pool1", "forward"),
    "solver_backward_bad.prototxt": ("check_relu1", "backward"),
}
ok = True
for solver_file, expect in expected.items():
    solver = caffe.get_solver(solver_file)
    try:
        solver.step(20)
        got = None
        loss = float(solver.net.blobs["loss"].data)
        print(f"{solver_file}: 20 iterations, every check clean (loss {loss:.4f})")
    except NonFiniteError as err:
        got = (err.layer, err.direction)
        print(f"{solver_file}: stopped at iteration {solver.iter}:\n  {err}")
    if got != expect:
        print(f"  expected {expect}, got {got}")
        ok = False
sys.exit(0 if ok else 1)
