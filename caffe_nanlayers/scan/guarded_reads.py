"""Read the user's datasets in a child process, so that a corrupt file cannot kill the command.

The readers of LMDB, LevelDB and HDF5 are C libraries that trust the file:
LMDB maps ``data.mdb`` and follows whatever page numbers it finds there, and
a page past the end of a cut-short file is a SIGBUS that no ``except``
catches; a damaged HDF5 header can crash HDF5 as well. Every walk over a
user's dataset (counting it, checking each record the way Caffe will read
it, finding the keys of bad records, finding the record Caffe could not
read) therefore runs in a child (``isolate.run_isolated``). While it walks,
the child writes where it is to a small shared file; if it dies, the parent
names the record it was reading in one line, and the dataset is still only
read.

Each child is a plain Python process with the reading library and, for
Datums, Caffe's generated ``caffe_pb2`` loaded on its own (importing all of
pycaffe would cost about a second per read).
"""

from __future__ import annotations

import importlib.util
import mmap
import os
import struct
import sys
import tempfile
import threading
from pathlib import Path

from caffe_nanlayers.errors import UserError
from caffe_nanlayers.isolate import CaffeStopped, IsolatedWorker, run_isolated, signal_name
from caffe_nanlayers.scan import databases, hdf5_lists

_MARK = struct.Struct("<qH")  # position of the last record read whole, length of its name
_MARK_SIZE = 4096
_NAME_MAX = _MARK_SIZE - _MARK.size
_STANDALONE = "_nanlayers_caffe_pb2"
# A child checking a run of an HDF5 list starts in about a quarter of a second, the time to open
# about 800 small files: a run of fewer files than this is not worth a child of its own.
MIN_FILES_PER_SURVEY_PART = 512
MAX_LISTED = 3  # bad records named in the one line; the count says how many there are


class _Mark:
    """The child's side: where it is, in a shared page the parent reads if the child dies."""

    def __init__(self, path: str):
        with open(path, "r+b") as f:
            self._map = mmap.mmap(f.fileno(), _MARK_SIZE)

    def passed(self, position: int, name: bytes) -> None:
        name = name[:_NAME_MAX]
        self._map[_MARK.size : _MARK.size + len(name)] = name
        _MARK.pack_into(self._map, 0, position, len(name))


def _read_mark(path: str) -> tuple[int, bytes] | None:
    with open(path, "rb") as f:
        data = f.read(_MARK_SIZE)
    position, length = _MARK.unpack_from(data, 0)
    return None if position < 0 else (position, data[_MARK.size : _MARK.size + length])


def _guarded(function, label: str, unit: str, *args, worker: IsolatedWorker | None = None):
    """Run ``function(report, mark_path, *args)`` in a child; a crash is a UserError naming where.

    ``unit`` is what the child walks: "record" (a database's) or "file" (an HDF5 list's). The
    child is ``worker``'s when given (its caller may kill it), else one of its own.
    """
    fd, mark_path = tempfile.mkstemp(prefix="nanlayers-mark-")
    try:
        os.write(fd, _MARK.pack(-1, 0).ljust(_MARK_SIZE, b"\0"))
        os.close(fd)
        try:
            if worker is not None:
                return worker.run(function, mark_path, *args)
            return run_isolated(function, mark_path, *args)
        except CaffeStopped as exc:  # the reader died: no Caffe was involved, whatever the class says
            where = _where(_read_mark(mark_path), unit)
            raise UserError(
                f"{label}: the reader crashed ({_how(exc.exitcode)}) {where}: the file is corrupt"
            ) from None
    finally:
        os.unlink(mark_path)


def _how(exitcode: int | None) -> str:
    if exitcode is None:
        return "exit code unknown"
    return signal_name(exitcode) if exitcode < 0 else f"exit code {exitcode}"


def _where(mark: tuple[int, bytes] | None, unit: str) -> str:
    """What the child was reading when it died: a record is marked once read, a file before it is opened."""
    if mark is None:
        return f"reading its first {unit}"
    position, name = mark
    text = name.decode("utf-8", "backslashreplace")
    if unit == "file":
        return f"reading {text!r} (file {position + 1} of the list)"
    return f"reading record {position + 1}, the one after key {text!r}"


def datum_class():
    """Caffe's Datum message, without importing pycaffe (whose import starts Caffe).

    The generated module is loaded once a process: protobuf refuses to build caffe.proto twice.
    """
    loaded = sys.modules.get("caffe.proto.caffe_pb2") or sys.modules.get(_STANDALONE)
    if loaded is not None:
        return loaded.Datum
    spec = importlib.util.find_spec("caffe")
    if spec is None or spec.origin is None:
        raise UserError("pycaffe is not installed: no caffe package to read Datum records with")
    path = Path(spec.origin).parent / "proto" / "caffe_pb2.py"
    module_spec = importlib.util.spec_from_file_location(_STANDALONE, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    sys.modules[_STANDALONE] = module
    return module.Datum


# --- databases -------------------------------------------------------------------------------------


def survey_database(view: Path, backend: str, label: str, limit: int | None) -> int:
    """The records of one pass; a UserError naming those Caffe would misread (``databases.check_records``)."""
    records, broken = _guarded(_survey_in_child, label, "record", view, backend, label, limit)
    if broken:
        raise broken_records_error(label, broken)
    return records


def broken_records_error(label: str, broken: list[str]) -> UserError:
    """The one line for the records Caffe cannot read whole, each described as ``record N (key K) why``."""
    listed = "; ".join(broken[:MAX_LISTED])
    more = f" (and {len(broken) - MAX_LISTED} more)" if len(broken) > MAX_LISTED else ""
    what = f"{len(broken)} records" if len(broken) > 1 else "a record"
    return UserError(f"{label}: {what} that Caffe cannot read whole: {listed}{more}")


def count_database(view: Path, backend: str, label: str) -> int:
    """The records of one pass, none read: for a parallel scan, whose workers check each record.

    An LMDB is counted here, in this process: its count is in the meta page, the one page read,
    which ``databases.check_database_dir`` has found whole. A LevelDB is counted by a walk, in a child.
    """
    if backend == "LMDB":
        return databases.count_records(view, backend, label)
    return _guarded(_count_in_child, label, "record", view, backend, label)


def _count_in_child(report, mark_path, view, backend, label):
    return databases.count_records(view, backend, label)


def _survey_in_child(report, mark_path, view, backend, label, limit):
    return databases.check_records(view, backend, label, limit, datum_class(), _Mark(mark_path).passed)


def is_empty(view: Path, backend: str, label: str) -> bool:
    """``databases.is_empty``, for ``locate``'s check of the datasets it is about to train on."""
    return _guarded(_is_empty_in_child, label, "record", view, backend, label)


def _is_empty_in_child(report, mark_path, view, backend, label):
    return databases.is_empty(view, backend, label)


def keys_at(view: Path, backend: str, label: str, positions) -> dict[int, bytes]:
    if not positions:
        return {}
    return _guarded(_keys_in_child, label, "record", view, backend, label, sorted(set(positions)))


def range_starts(view: Path, backend: str, label: str, positions) -> tuple[dict[int, bytes], bytes]:
    """The keys at ``positions`` and the first record's value: what a parallel scan's plan reads."""
    return _guarded(_starts_in_child, label, "record", view, backend, label, sorted(set(positions)))


def _starts_in_child(report, mark_path, view, backend, label, positions):
    keys = databases.keys_at(view, backend, label, positions, _Mark(mark_path).passed)
    first = next(databases.iter_items(view, backend, label), (None, b""))[1]
    return keys, bytes(first)


def _keys_in_child(report, mark_path, view, backend, label, positions):
    return databases.keys_at(view, backend, label, positions, _Mark(mark_path).passed)


def first_broken_record(view: Path, backend: str, label: str, start: int, batch_size: int) -> str | None:
    return _guarded(_broken_in_child, label, "record", view, backend, label, start, batch_size)


def _broken_in_child(report, mark_path, view, backend, label, start, batch_size):
    return databases.first_broken_record(
        view, backend, label, start, batch_size, datum_class(), _Mark(mark_path).passed
    )


# --- HDF5 ------------------------------------------------------------------------------------------


def inspect_hdf5(source: str, tops: list[str], label: str, parts: int = 1) -> list[hdf5_lists.Hdf5File]:
    """``hdf5_lists.inspect_files`` in a child: a damaged header that crashes HDF5 is named by file.

    With ``parts`` > 1 a long list is cut into runs of files checked by as many children at
    once: opening every file is a pass of its own before the scan, and on many cores it would
    bound the scan by one. The answer is the whole list's: the files in order, or the error of
    the first file that fails (each file's check is its own, so the earliest failing run's first
    error is the list's first).
    """
    entries = hdf5_lists.read_list(source, label) if parts > 1 else []
    parts = max(1, min(parts, len(entries) // MIN_FILES_PER_SURVEY_PART))
    if parts == 1:
        return _guarded(_inspect_in_child, label, "file", source, tops, label)
    bounds = [len(entries) * i // parts for i in range(parts + 1)]
    answers: list = [None] * parts
    children = [IsolatedWorker() for _ in range(parts)]

    def check(part: int) -> None:
        first, end = bounds[part], bounds[part + 1]
        try:
            answers[part] = _guarded(
                _inspect_in_child,
                label,
                "file",
                source,
                tops,
                label,
                entries[first:end],
                first,
                worker=children[part],
            )
        except UserError as error:
            answers[part] = error

    threads = [threading.Thread(target=check, args=(part,), daemon=True) for part in range(parts)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.1)  # a timed join lets Ctrl-C through
    except BaseException:
        for child in children:
            child._kill()  # the children ignore Ctrl-C: the command decides, and leaves none behind
        raise
    finally:
        for child in children:
            child.close()
    files = []
    for answer in answers:
        if isinstance(answer, UserError):
            raise answer
        files.extend(answer)
    return files


def inspect_hdf5_entries(source: str, tops: list[str], label: str, entries: list) -> list:
    """``inspect_hdf5`` of the first ``entries`` of the list only (``hdf5_lists.read_list``'s)."""
    return _guarded(_inspect_in_child, label, "file", source, tops, label, entries, 0)


def _inspect_in_child(report, mark_path, source, tops, label, entries=None, first_index=0):
    on_file = _Mark(mark_path).passed
    return hdf5_lists.inspect_files(source, tops, label, on_file, entries, first_index)


def check_hdf5(source: str, tops: list[str], label: str) -> None:
    """``hdf5_lists.check_files`` in a child, for ``locate``'s check before training."""
    _guarded(_check_in_child, label, "file", source, tops, label)


def _check_in_child(report, mark_path, source, tops, label):
    hdf5_lists.check_files(source, tops, label, on_file=_Mark(mark_path).passed)


def first_unreadable_hdf5(files: list, tops: list[str], label: str) -> str | None:
    """After Caffe aborted: the first listed file whose datasets cannot be read whole, and why."""
    return _guarded(_unreadable_in_child, label, "file", files, tops)


def _unreadable_in_child(report, mark_path, files, tops):
    return hdf5_lists.first_unreadable(files, tops, on_file=_Mark(mark_path).passed)
