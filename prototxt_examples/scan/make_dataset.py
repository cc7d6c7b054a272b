#!/usr/bin/env python3
"""Write the datasets that train_val.prototxt reads, with a few planted bad records.

    python make_dataset.py DIR      # writes DIR/train_lmdb and DIR/val_lmdb, prints the planted records

The records are MNIST-sized (1x28x28) uint8 Datums, keyed like
convert_imageset's output ("00000042"). Planted in train_lmdb, as real
converters produce them:

- two records written as float_data by a buggy preprocessing step, one
  holding NaN (a 0/0 in a normalization) and one holding +Inf;
- a label 10 for a 10-class net (1-based labels), and a label -1 (an
  "unknown" marker that was never filtered out).

val_lmdb is clean. Then, from DIR (Caffe resolves sources against the
working directory): ``caffe-nan scan path/to/train_val.prototxt``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

SHAPE = (1, 28, 28)
TRAIN_RECORDS = 1000
VAL_RECORDS = 200
# key -> (top, problem) the scan must report
PLANTED = {
    "00000137": ("data", "nonfinite"),
    "00000512": ("data", "nonfinite"),
    "00000700": ("label", "label"),
    "00000999": ("label", "label"),
}


def datum_class():
    from caffe_nanlayers.proto_io import caffe_pb2

    return caffe_pb2().Datum


def write(path: Path, count: int, planted: bool, seed: int) -> None:
    import lmdb

    Datum = datum_class()
    rng = np.random.default_rng(seed)
    env = lmdb.open(str(path), map_size=1 << 28)
    with env.begin(write=True) as txn:
        for index in range(count):
            key = f"{index:08d}"
            label = int(rng.integers(0, 10))
            datum = Datum(channels=SHAPE[0], height=SHAPE[1], width=SHAPE[2], label=label)
            pixels = rng.integers(0, 256, SHAPE, dtype=np.uint8)
            if planted and key in ("00000137", "00000512"):
                values = pixels.astype(np.float32)
                values[0, 14, 14] = np.nan if key == "00000137" else np.inf
                datum.float_data.extend(values.ravel().tolist())
            else:
                datum.data = pixels.tobytes()
            if planted and key == "00000700":
                datum.label = 10
            if planted and key == "00000999":
                datum.label = -1
            txn.put(key.encode(), datum.SerializeToString())
    env.close()
    (path / "lock.mdb").unlink()  # as if copied from elsewhere: the scan must not create it again


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    write(out / "train_lmdb", TRAIN_RECORDS, planted=True, seed=1)
    write(out / "val_lmdb", VAL_RECORDS, planted=False, seed=2)
    print(json.dumps({key: list(where) for key, where in PLANTED.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
