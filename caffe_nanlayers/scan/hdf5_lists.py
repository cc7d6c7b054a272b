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
import functools
import re
from pathlib import Path

from caffe_nanlayers.errors import UserError, missing_extra, reading

ROWS_READ_AT_ONCE = 1024


@dataclasses.dataclass(frozen=True)
class Hdf5File:
    name: str  # as written in the list
    rows: int
    # Per top: (the shape of a row, the stored numpy dtype), so that a split of the list needs no
    # second pass over the files to know whether workers may read them.
    layout: tuple = dataclasses.field(default=(), compare=False)


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
        raise missing_extra("scanning an HDF5Data layer", "h5py", "scan") from None
    return h5py


def require_file(source: str, line: int, name: str) -> Path:
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


def check_files(source: str, tops: list[str], label: str, on_file=None) -> None:
    """``inspect_files`` where h5py is installed; else only that every listed file is there."""
    try:
        import h5py  # noqa: F401 (only whether it is there)
    except ImportError:
        for line, name in read_list(source, label):
            require_file(source, line, name)
        return
    inspect_files(source, tops, label, on_file)


def inspect_files(
    source: str, tops: list[str], label: str, on_file=None, entries=None, first_index: int = 0
) -> list[Hdf5File]:
    """Check every listed file has a numeric dataset per top with equal row counts; return the row counts.

    ``on_file(index, name)`` is called before each file is opened (``guarded_reads`` keeps it
    where a crash of HDF5 cannot erase it). ``entries`` (``read_list``'s, from ``first_index`` on)
    restricts the check to a part of the list: each file's check is its own, so the parts of a
    list checked apart give what the whole list checked at once gives.
    """
    h5py = _h5py()
    access = file_access(h5py)
    if entries is None:
        entries = read_list(source, label)
    files = []
    for index, (line, name) in enumerate(entries, first_index):
        mark = None if on_file is None else functools.partial(on_file, index, name.encode())
        files.append(inspect_file(h5py, access, source, line, name, tops, mark))
    return files


def file_access(h5py):
    """The file access properties of every open here: closing a file closes its datasets."""
    access = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    access.set_fclose_degree(h5py.h5f.CLOSE_STRONG)
    return access


def inspect_file(
    h5py, access, source: str, line: int, name: str, tops: list[str], before_open=None
) -> Hdf5File:
    """``inspect_files``' check of one listed file (line ``line`` of ``source``): its rows, or a UserError.

    ``before_open()`` is called once the file is found, before HDF5 opens it.
    """
    where = f"{source}:{line}"
    path = require_file(source, line, name)
    if before_open is not None:
        before_open()
    surveyed = _survey_clean_file(h5py, str(path), tops, access)
    if surveyed is not None:
        return Hdf5File(name, *surveyed)
    try:
        handle = h5py.File(str(path), "r")
    except OSError as exc:
        raise UserError(f"{where}: {name!r} is not a readable HDF5 file ({_h5_reason(exc)})") from None
    with handle:
        try:
            return Hdf5File(name, *_rows(handle, tops, f"{where}: {name!r}"))
        except UserError:
            raise
        except Exception as exc:  # a damaged header: h5py raises KeyError, RuntimeError, ValueError, ...
            why = _h5_reason(exc)
            raise UserError(f"{where}: {name!r} is damaged ({why}); Caffe cannot read it") from None


def _survey_clean_file(h5py, path: str, tops: list[str], access) -> tuple[int, tuple] | None:
    """``_rows`` of a file that passes every check, through h5py's low-level calls; None otherwise.

    The survey opens every listed file before the scan reads one, so its cost per file is a share of
    the whole scan: h5py's high-level File and Group objects cost twice these calls. A file that
    fails any check, or that these calls cannot open, is None: the high-level path then says why.
    """
    try:
        fid = h5py.h5f.open(path.encode(), h5py.h5f.ACC_RDONLY, fapl=access)
    except Exception:
        return None
    try:
        return _clean_file_rows(h5py, fid, tops)
    finally:
        fid.close()


def _clean_file_rows(h5py, fid, tops: list[str]) -> tuple[int, tuple] | None:
    """``_survey_clean_file`` of a file already open."""
    try:
        rows, layout = None, []
        for top in tops:
            dataset = h5py.h5d.open(fid, top.encode())
            shape, dtype = dataset.shape, dataset.dtype
            if dtype.kind not in "fiub" or len(shape) < 1 or rows not in (None, shape[0]):
                return None
            rows = int(shape[0])
            layout.append((tuple(shape[1:]), dtype))
        return (rows, tuple(layout)) if rows else None
    except Exception:  # no such dataset, a group, a link to nothing, a damaged header
        return None


def _dataset(handle, name: str, where: str):
    """The dataset ``name`` of a file, None if there is no such name; a link to nothing is said as such."""
    link = handle.get(name, getlink=True)
    if link is None:
        return None
    try:
        return handle[name]
    except (KeyError, OSError) as exc:
        if isinstance(link, h5_link_classes()):
            target = f"{link.filename}:{link.path}" if hasattr(link, "filename") else link.path
            raise UserError(
                f"{where}: {name!r} is a link to {target!r}, which cannot be opened ({_h5_reason(exc)}); "
                "Caffe cannot read it either"
            ) from None
        raise UserError(f"{where}: {name!r} cannot be opened ({_h5_reason(exc)})") from None


def h5_link_classes():
    h5py = _h5py()
    return (h5py.SoftLink, h5py.ExternalLink)


def _h5_reason(exc: Exception) -> str:
    """HDF5's own words, without h5py's "Unable to synchronously open object" framing."""
    text = " ".join(str(exc.args[0] if exc.args else exc).split())
    match = re.search(r"\(([^()]*)\)\s*$", text)
    return match.group(1) if match else text


def _rows(handle, tops: list[str], where: str) -> tuple[int, tuple]:
    rows, layout = None, []
    for top in tops:
        dataset = _dataset(handle, top, where)
        if dataset is None or not hasattr(dataset, "shape"):
            present = ", ".join(repr(k) for k in handle if _is_dataset(handle, k)) or "none"
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
        layout.append((tuple(dataset.shape[1:]), dataset.dtype))
    if rows == 0:
        raise UserError(f"{where}: holds 0 rows; Caffe would read past its end, remove it from the list")
    return rows, tuple(layout)


def _is_dataset(handle, name: str) -> bool:
    try:
        return hasattr(handle[name], "shape")
    except (KeyError, OSError):  # a link to nothing
        return False


def first_unreadable(files: list[Hdf5File], tops: list[str], on_file=None) -> str | None:
    """The first listed file whose datasets cannot be read whole, and why (after Caffe aborted on one)."""
    h5py = _h5py()
    for index, entry in enumerate(files):
        if on_file is not None:
            on_file(index, entry.name.encode())
        rows = "its datasets"
        try:
            with h5py.File(entry.name, "r") as handle:
                for top in tops:
                    dataset = handle[top]
                    for start in range(0, dataset.shape[0], ROWS_READ_AT_ONCE):  # memory stays bounded
                        end = min(start + ROWS_READ_AT_ONCE, dataset.shape[0])
                        rows = f"rows {start}-{end - 1} of {top!r}"
                        dataset[start:end]
        except Exception as exc:  # h5py raises OSError, KeyError, RuntimeError, ... for a damaged file
            return f"{entry.name}: {rows} cannot be read ({_h5_reason(exc)})"
    return None


def locate_row(files: list[Hdf5File], record: int) -> tuple[str, int]:
    """The file and row of a record's position in one pass over the list."""
    for entry in files:
        if record < entry.rows:
            return entry.name, record
        record -= entry.rows
    raise IndexError("record beyond the last file")
