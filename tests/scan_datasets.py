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


def image_bytes(pixels: np.ndarray, fmt: str) -> bytes:
    """An image file's bytes (``fmt`` "JPEG" or "PNG"), encoded by Pillow as a camera or a script would."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(out, fmt)
    return out.getvalue()


def write_image_list(directory: Path, count: int, labels=None, seed: int = 0, size=(8, 6)) -> list[Path]:
    """``count`` images (JPEG and PNG in turn) under ``directory/images`` and ``directory/list.txt``.

    The list names them relative to the root_folder "images/", with labels ``labels`` (default
    alternating 0 and 1). Returns the image paths in list order.
    """
    rng = np.random.default_rng(seed)
    (directory / "images").mkdir()
    paths, lines = [], []
    for index in range(count):
        ext, fmt = ("jpg", "JPEG") if index % 2 == 0 else ("png", "PNG")
        path = directory / "images" / f"img{index}.{ext}"
        path.write_bytes(image_bytes(rng.integers(0, 256, (*size, 3)), fmt))
        paths.append(path)
        label = labels[index] if labels is not None else index % 2
        lines.append(f"{path.name} {label}\n")
    (directory / "list.txt").write_text("".join(lines))
    return paths
