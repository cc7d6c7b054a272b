"""The HDF5 files behind an HDF5Data layer: checked the way Caffe will read them, and counted.

HDF5Data reads a text file listing ``.h5`` files (whitespace-separated, each
opened relative to the *working directory*), and from each file the datasets
named exactly like the layer's tops. A mismatch is a Caffe CHECK that aborts
the process; checking it here first gives the user the file, the dataset
that is missing and the names that are there. The row counts also give the
scan its one pass (rows over all files, in list order) and let it name a bad
record by file and row.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from caffe_nanlayers.errors import UserError, reading


@dataclasses.dataclass(frozen=True)
class Hdf5File:
    name: str  # as written in the list
    rows: int


def read_text_list(source: str, label: str, expected: str) -> str:
    """The text of a data layer's list file (HDF5 files, images), its problems in one line naming it."""
    if not Path(source).exists():
        raise UserError(f"{label}: no such file (Caffe resolves it against the working directory)")
    with reading(source, expected):
        return Path(source).read_text(encoding="utf-8")


def read_list(source: str, label: str) -> list[tuple[int, str]]:
    """(line number, file name) for each entry of an HDF5Data source list, as Caffe tokenizes it."""
    text = read_text_list(source, label, "a list of .h5 files, one a line")
    entries = [(number, token) for number, line in enumerate(text.splitlines(), 1) for token in line.split()]
    if not entries:
        raise UserError(f"{label}: lists no HDF5 file (Caffe needs at least one)")
    return entries


def _h5py():
    try:
        import h5py
    except ImportError:
        raise UserError(
            "scanning an HDF5Data layer needs the Python package 'h5py': pip install h5py"
        ) from None
    return h5py


def _require_file(source: str, line: int, name: str) -> Path:
    path = Path(name)
    if not path.is_file():
        beside = Path(source).parent / name
        hint = (
            f"; it exists relative to the list ({beside}), but Caffe opens entries relative to the "
            "working directory"
            if not path.is_absolute() and beside.is_file()
            else ""
        )
        what = "is a directory, expected an HDF5 file" if path.is_dir() else "not found"
        raise UserError(f"{source}:{line}: HDF5 file {name!r} {what}{hint}")
    return path


def check_files(source: str, tops: list[str], label: str) -> None:
    """``inspect_files`` where h5py is installed; else only that every listed file is there."""
    try:
        import h5py  # noqa: F401 (only whether it is there)
    except ImportError:
        for line, name in read_list(source, label):
            _require_file(source, line, name)
        return
    inspect_files(source, tops, label)


def inspect_files(source: str, tops: list[str], label: str) -> list[Hdf5File]:
    """Check every listed file has a numeric dataset per top with equal row counts; return the row counts."""
    h5py = _h5py()
    files = []
    for line, name in read_list(source, label):
        where = f"{source}:{line}"
        path = _require_file(source, line, name)
        try:
            handle = h5py.File(str(path), "r")
        except OSError as exc:
            raise UserError(f"{where}: {name!r} is not a readable HDF5 file ({exc})") from None
        with handle:
            files.append(Hdf5File(name, _rows(handle, tops, f"{where}: {name!r}")))
    return files


def _rows(handle, tops: list[str], where: str) -> int:
    rows = None
    for top in tops:
        dataset = handle.get(top)
        if dataset is None or not hasattr(dataset, "shape"):
            present = ", ".join(repr(k) for k in handle if hasattr(handle[k], "shape")) or "none"
            raise UserError(
                f"{where} has no dataset {top!r} (datasets: {present}); "
                "HDF5Data reads the datasets named like its tops"
            )
        if dataset.dtype.kind not in "fiub":
            raise UserError(f"{where}: dataset {top!r} has type {dataset.dtype}; Caffe reads only numbers")
        if len(dataset.shape) < 1:
            raise UserError(f"{where}: dataset {top!r} is a scalar; Caffe needs one row per record")
        if rows is not None and dataset.shape[0] != rows:
            raise UserError(
                f"{where}: dataset {top!r} has {dataset.shape[0]} rows, {tops[0]!r} has {rows}; "
                "every top needs one row per record"
            )
        rows = int(dataset.shape[0])
    if rows == 0:
        raise UserError(f"{where}: holds 0 rows; Caffe would read past its end, remove it from the list")
    return rows


def locate_row(files: list[Hdf5File], record: int) -> tuple[str, int]:
    """The file and row of a record's position in one pass over the list."""
    for entry in files:
        if record < entry.rows:
            return entry.name, record
        record -= entry.rows
    raise IndexError("record beyond the last file")
