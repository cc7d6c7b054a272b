"""InputSanitizerLayer: corrupt values in the data make the loss NaN; the layer replaces and counts them."""

import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

from caffe_nanlayers.caffe_net import import_caffe

EXAMPLE = Path(__file__).resolve().parents[2] / "prototxt_examples" / "input_sanitizer"
sys.path.insert(0, str(EXAMPLE))
from make_data import RECORDS, make_data  # noqa: E402

caffe = import_caffe()
work = Path(tempfile.mkdtemp(prefix="nanlayers-demo-"))
try:
    for path in EXAMPLE.glob("*.prototxt"):
        shutil.copy(path, work)
    os.chdir(work)  # the example's data/ lives beside its prototxt, as the README runs it
    injected = make_data("data")
    print(f"make_data.py: {RECORDS} records with {injected} injected")
    results = {}
    for solver_file in ("solver_bad.prototxt", "solver.prototxt"):
        solver = caffe.get_solver(solver_file)
        batch = solver.net.blobs["data"].data.shape[0]
        losses = []
        for _ in range(math.ceil(RECORDS / batch)):  # one epoch
            solver.step(1)
            losses.append(float(solver.net.blobs["loss"].data))
        results[solver_file] = (solver, losses)
        print(f"{solver_file}: losses over one epoch {', '.join(f'{v:.4g}' for v in losses)}")
    bad_losses = results["solver_bad.prototxt"][1]
    solver, losses = results["solver.prototxt"]
    total = solver.net.layer_dict["sanitize"].total_counts
    print(f"InputSanitizerLayer counted {total.describe()}")
    counted = {"nan": total.nan, "posinf": total.posinf, "neginf": total.neginf}
    caught = (
        not all(map(math.isfinite, bad_losses)) and all(map(math.isfinite, losses)) and counted == injected
    )
finally:
    os.chdir("/")
    shutil.rmtree(work, ignore_errors=True)
sys.exit(0 if caught else 1)
