"""Small datasets for the scan tests, written the way Caffe's own tools write them.

Keys are zero-padded record numbers like convert_imageset's, so key order is
record order and a planted record's key is known in advance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from caffe_nanlayers.proto_io import caffe_pb2


def key(index: int) -> bytes:
    return f"{index:08d}".encode()


def float_datum(values: np.ndarray, label: int = 0) -> bytes:
    datum = caffe_pb2().Datum()
    datum.channels, datum.height, datum.width = values.shape
    datum.float_data.extend(values.astype(np.float32).ravel().tolist())
    datum.label = label
    return datum.SerializeToString()


def uint8_datum(values: np.ndarray, label: int = 0) -> bytes:
    datum = caffe_pb2().Datum()
    datum.channels, datum.height, datum.width = values.shape
    datum.data = values.astype(np.uint8).tobytes()
    datum.label = label
    return datum.SerializeToString()


def write_lmdb(path: Path, values: list[bytes]) -> Path:
    import lmdb

    env = lmdb.open(str(path), map_size=1 << 30)
    with env.begin(write=True) as txn:
        for index, value in enumerate(values):
            txn.put(key(index), value)
    env.close()
    return path


def write_leveldb(path: Path, values: list[bytes]) -> Path:
    import plyvel

    db = plyvel.DB(str(path), create_if_missing=True)
    with db.write_batch() as batch:
        for index, value in enumerate(values):
            batch.put(key(index), value)
    db.close()
    return path


def float_records(count: int, shape=(2, 3, 3), planted: dict | None = None, seed: int = 0) -> list:
    """``count`` clean records in [-1, 1]; ``planted`` maps a record index to (flat index, value)."""
    rng = np.random.default_rng(seed)
    records = [rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(count)]
    for index, changes in (planted or {}).items():
        for flat, value in changes:
            records[index].reshape(-1)[flat] = value
    return records


def snapshot(directory: Path) -> dict:
    """Every file of a directory with its size and mtime: equal before and after means untouched."""
    return {
        str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
    }
