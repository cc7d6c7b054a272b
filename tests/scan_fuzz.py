"""Datasets broken the way disks and copies break them, and a driver that scans each one.

``corrupt`` damages a copy of a small, clean dataset as an interrupted copy
or a failing disk would: a file cut short, bits flipped, a 512-byte sector
zeroed, a file missing; an image list may also have a line mangled by hand
(its label dropped, a word or an out-of-range class for it, an empty line).
``python scan_fuzz.py KIND FIRST COUNT`` builds and scans datasets
FIRST..FIRST+COUNT-1 of one kind (the seed is the index, so a failure is
replayed by its number) and prints one JSON line per dataset:
what the scan returned and printed, whether the dataset's bytes, mtimes
and file list are unchanged, and which processes it left behind. It runs
the scans in one process (pycaffe imported once; each scan still runs Caffe
in a child of its own) that the test runs apart from pytest, so that a
crash is a failed test naming the dataset, not the end of the test run.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import io
import json
import os
import random
import shutil
import sys
from pathlib import Path

import numpy as np
from scan_datasets import float_datum, float_records, key, write_image_list, write_lmdb

KINDS = ("LMDB", "LevelDB", "HDF5", "ImageData")
RECORDS = 12
BATCH = 4
NETS = {
    "LMDB": 'data_param { source: "data" backend: LMDB batch_size: 4 }',
    "LevelDB": 'data_param { source: "data" backend: LEVELDB batch_size: 4 }',
    "HDF5": 'hdf5_data_param { source: "list.txt" batch_size: 4 }',
    # Resized, as lists of photos of many sizes are: a flipped bit in a header's size then changes nothing.
    "ImageData": (
        'image_data_param { source: "list.txt" root_folder: "images/" batch_size: 4\n'
        "    new_height: 6 new_width: 8 }"
    ),
}
LAYER_TYPES = {"LMDB": "Data", "LevelDB": "Data", "HDF5": "HDF5Data", "ImageData": "ImageData"}
CLASSIFIER = (
    'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"\n'
    "  inner_product_param { num_output: 2 } }\n"
    'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }\n'
)


def net_text(kind: str) -> str:
    return (
        f'layer {{ name: "data" type: "{LAYER_TYPES[kind]}" top: "data" top: "label"\n  {NETS[kind]} }}\n'
        + CLASSIFIER
    )


def write_clean(kind: str, directory: Path) -> list[Path]:
    """The clean dataset of ``kind`` in ``directory``; the paths the fuzz may damage."""
    records = float_records(RECORDS, shape=(1, 2, 2))
    labels = [index % 2 for index in range(RECORDS)]
    if kind == "LMDB":
        write_lmdb(directory / "data", [float_datum(r, label=y) for r, y in zip(records, labels)])
        (directory / "data" / "lock.mdb").unlink()
    elif kind == "LevelDB":
        import plyvel

        db = plyvel.DB(str(directory / "data"), create_if_missing=True)
        for index in range(RECORDS // 2):  # half in a table (checksummed blocks), half in the log
            db.put(key(index), float_datum(records[index], label=labels[index]))
        db.compact_range()
        for index in range(RECORDS // 2, RECORDS):
            db.put(key(index), float_datum(records[index], label=labels[index]))
        db.close()
    elif kind == "ImageData":
        write_image_list(directory, RECORDS, labels=labels, size=(12, 16))
    else:
        import h5py

        half = RECORDS // 2
        for part, rows in (("a", slice(0, half)), ("b", slice(half, RECORDS))):
            with h5py.File(directory / f"{part}.h5", "w") as f:
                f["data"] = np.stack(records[rows]).astype(np.float32)
                f["label"] = np.array(labels[rows], np.float32)
        (directory / "list.txt").write_text("a.h5\nb.h5\n")
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name not in ("LOCK", "LOG"))


def corrupt(files: list[Path], rng: random.Random) -> str:
    """Damage one of ``files`` as a disk or a copy would (or a hand, an image list's line); say how."""
    target = rng.choice(files)
    data = bytearray(target.read_bytes())
    how = rng.choice(("truncate", "flip", "flip", "zero", "remove"))
    if how == "remove" or not data:
        target.unlink()
        return f"removed {target.name}"
    if how == "truncate":
        size = rng.randrange(len(data))
        target.write_bytes(bytes(data[:size]))
        return f"{target.name} cut to {size} of {len(data)} bytes"
    if how == "zero":
        start = rng.randrange(0, len(data), 512) if len(data) > 512 else 0
        data[start : start + 512] = bytes(len(data[start : start + 512]))
        target.write_bytes(bytes(data))
        return f"{target.name}: sector at {start} zeroed"
    offsets = sorted(rng.randrange(len(data)) for _ in range(rng.randint(1, 8)))
    for offset in offsets:
        data[offset] ^= 1 << rng.randrange(8)
    target.write_bytes(bytes(data))
    return f"{target.name}: bits flipped at {offsets}"


def corrupt_image_list(files: list[Path], rng: random.Random) -> str:
    """As ``corrupt``, or (one time in four) a line of the list mangled by hand; say how."""
    listing = next(path for path in files if path.name == "list.txt")
    if rng.random() >= 0.25:
        return corrupt(files, rng)
    lines = listing.read_text().split("\n")
    number = rng.randrange(len(lines) - 1)  # the text ends with a newline: the last item is empty
    image = lines[number].rsplit(" ", 1)[0]
    lines[number] = rng.choice((image, f"{image} cat", f"{image} 1.5", f"{image} 7", ""))
    listing.write_text("\n".join(lines))
    return f"{listing.name}: line {number + 1} made {lines[number]!r}"


def snapshot(directory: Path) -> dict:
    """Every entry's bytes (hashed), mtime and mode: equal before and after means untouched."""
    state = {}
    for path in sorted(directory.rglob("*")):
        info = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        state[str(path.relative_to(directory))] = (digest, info.st_mtime_ns, info.st_mode)
    return state


def children_of(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (orphans come back to it: it is their subreaper)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def drive(kind: str, first: int, count: int, workdir: Path) -> None:
    from caffe_nanlayers.commands.scan import main

    PR_SET_CHILD_SUBREAPER = 36
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    for index in range(first, first + count):
        rng = random.Random(index)
        run_dir = workdir / f"{kind}-{index}"
        run_dir.mkdir()
        files = write_clean(kind, run_dir)
        damage = (corrupt_image_list if kind == "ImageData" else corrupt)(files, rng)
        (run_dir / "net.prototxt").write_text(net_text(kind))
        before = snapshot(run_dir)
        print(json.dumps({"index": index, "started": True}), flush=True)
        out, err = io.StringIO(), io.StringIO()
        os.chdir(run_dir)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(["net.prototxt", "--json", "-q"])
            exception = None
        except BaseException as exc:
            code, exception = None, f"{type(exc).__name__}: {exc}"
        finally:
            os.chdir(workdir)
        result = {
            "index": index,
            "kind": kind,
            "damage": damage,
            "code": code,
            "exception": exception,
            "stdout": out.getvalue(),
            "stderr": err.getvalue(),
            "unchanged": snapshot(run_dir) == before,
            "left": children_of(os.getpid()),
        }
        print(json.dumps(result), flush=True)
        shutil.rmtree(run_dir)


if __name__ == "__main__":
    drive(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
