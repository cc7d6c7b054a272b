#!/usr/bin/env python3
"""Write the input_sanitizer example's data: a regression set with a few corrupt values.

    cd prototxt_examples/input_sanitizer && python make_data.py   # then: caffe train -solver solver.prototxt

Writes ``data/train.h5`` (datasets ``data``, 256 x 8 features, and ``label``,
256 x 1 targets) and ``data/train_h5.txt``, the list file HDF5Data reads. A
few features are NaN, +Inf and -Inf, as a broken preprocessing step leaves
them; how many of each is printed and returned (nothing binary is shipped).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

RECORDS, FEATURES = 256, 8
INJECTED = {"nan": 6, "posinf": 3, "neginf": 2}


def make_data(directory: str | Path = "data", seed: int = 0) -> dict:
    """Write the dataset into ``directory``; returns the number of NaN, +Inf and -Inf injected."""
    import h5py

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((RECORDS, FEATURES)).astype(np.float32)
    y = (x @ rng.standard_normal((FEATURES, 1)) + 0.1 * rng.standard_normal((RECORDS, 1))).astype(np.float32)
    positions = rng.choice(x.size, size=sum(INJECTED.values()), replace=False)
    values = np.repeat([np.nan, np.inf, -np.inf], list(INJECTED.values()))
    x.reshape(-1)[positions] = values
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    with h5py.File(directory / "train.h5", "w") as f:
        f["data"], f["label"] = x, y
    (directory / "train_h5.txt").write_text(f"{directory / 'train.h5'}\n")
    return dict(INJECTED)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "data"
    counts = make_data(target)
    injected = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    print(f"wrote {target / 'train.h5'}: {RECORDS} records, injected {injected}")
