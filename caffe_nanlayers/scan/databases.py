"""LMDB and LevelDB sources of a Data layer: a read-only view, their size, their keys, their broken records.

Opening a database "read-only" still writes to its directory: LMDB creates
``lock.mdb`` when it is absent, LevelDB writes ``LOCK``, ``LOG`` and a new
``MANIFEST``. The scan promises never to touch the user's dataset, so Caffe
and this module open a *view*: a private temporary directory whose entries
are symbolic links to the database's files. Both libraries only ever read
existing data files (LMDB opens ``data.mdb`` read-only; LevelDB's tables and
logs are immutable and recovery writes new files), so whatever they create,
rename or delete happens to the view, never to the dataset.

Keys come from the ``lmdb`` and ``plyvel`` packages (Caffe cannot list
them); they are needed only to count LevelDB records and to name bad
records, and a clear error says how to install them when missing.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from caffe_nanlayers.errors import UserError

LMDB_DATA_FILE = "data.mdb"
LEVELDB_MARKER = "CURRENT"
# Files LevelDB writes on open: the view gets its own.
LEVELDB_WRITTEN_ON_OPEN = {"LOCK", "LOG", "LOG.old"}


def _need(module: str, package: str, what: str):
    try:
        return __import__(module)
    except ImportError:
        raise UserError(
            f"scanning {what} needs the Python package '{package}': pip install {package}"
        ) from None


def check_database_dir(path: Path, backend: str, label: str) -> None:
    """Refuse a missing directory or one of the other backend, with the fix."""
    if not path.exists():
        raise UserError(f"{label}: no such directory (Caffe resolves it against the working directory)")
    if not path.is_dir():
        kind = "an LMDB" if backend == "LMDB" else "a LevelDB"
        raise UserError(f"{label}: is a file, expected a directory ({kind} database)")
    is_lmdb = (path / LMDB_DATA_FILE).is_file()
    is_leveldb = (path / LEVELDB_MARKER).is_file()
    if backend == "LMDB" and not is_lmdb:
        hint = " (it is a LevelDB: set backend: LEVELDB)" if is_leveldb else ""
        raise UserError(f"{label}: not an LMDB, no {LMDB_DATA_FILE} in it{hint}")
    if backend == "LMDB" and (path / LMDB_DATA_FILE).stat().st_size == 0:
        raise UserError(f"{label}: not an LMDB, its {LMDB_DATA_FILE} is empty")
    if backend == "LEVELDB" and not is_leveldb:
        hint = (
            " (it is an LMDB: add backend: LMDB to data_param, LEVELDB is Caffe's default)" if is_lmdb else ""
        )
        raise UserError(f"{label}: not a LevelDB, no {LEVELDB_MARKER} file in it{hint}")


def make_view(database: Path, view: Path, backend: str) -> Path:
    """A directory of symbolic links to ``database``'s files, for Caffe to open and lock."""
    view.mkdir(parents=True)
    database = database.resolve()
    if backend == "LMDB":
        names = [LMDB_DATA_FILE]
    else:
        names = [p.name for p in database.iterdir() if p.is_file() and p.name not in LEVELDB_WRITTEN_ON_OPEN]
    for name in names:
        os.symlink(database / name, view / name)
    return view


def count_records(view: Path, backend: str, label: str) -> int:
    if backend == "LMDB":
        lmdb = _need("lmdb", "lmdb", "an LMDB")
        with _open_lmdb(lmdb, view, label) as env:
            return int(env.stat()["entries"])
    return sum(1 for _ in iter_keys(view, backend, label))


def is_empty(view: Path, backend: str, label: str) -> bool:
    """Whether the database holds no record; False when its reader (lmdb, plyvel) is not installed."""
    if importlib.util.find_spec("lmdb" if backend == "LMDB" else "plyvel") is None:
        return False
    return next(iter_keys(view, backend, label), None) is None


def _open_lmdb(lmdb, view: Path, label: str):
    try:
        return lmdb.open(str(view), readonly=True, lock=False, subdir=True, max_readers=1)
    except lmdb.Error as exc:
        # py-lmdb prefixes the path it opened: the private view, which means nothing to the user.
        why = str(exc).removeprefix(f"{view}: ")
        raise UserError(f"{label}: cannot open the LMDB: {why}") from None


def iter_items(view: Path, backend: str, label: str, values: bool = True):
    """(key, value) pairs in key order, the order of Caffe's cursor (value None when not asked)."""
    if backend == "LMDB":
        lmdb = _need("lmdb", "lmdb", "an LMDB")
        with _open_lmdb(lmdb, view, label) as env, env.begin(buffers=False) as txn:
            cursor = txn.cursor()
            if values:
                yield from cursor.iternext(keys=True, values=True)
            else:
                for key in cursor.iternext(keys=True, values=False):
                    yield key, None
        return
    plyvel = _need("plyvel", "plyvel", "a LevelDB")
    try:
        db = plyvel.DB(str(view), create_if_missing=False)
    except plyvel.Error as exc:
        raise UserError(f"{label}: cannot open the LevelDB: {exc}") from None
    try:
        if values:
            yield from db.iterator()
        else:
            for key in db.iterator(include_value=False):
                yield key, None
    finally:
        db.close()


def iter_keys(view: Path, backend: str, label: str):
    for key, _ in iter_items(view, backend, label, values=False):
        yield key


def keys_at(view: Path, backend: str, label: str, positions) -> dict[int, bytes]:
    """The keys at the given positions of the key order (one walk over the keys, stopping at the last)."""
    wanted = set(positions)
    if not wanted:
        return {}
    last = max(wanted)
    found = {}
    for position, key in enumerate(iter_keys(view, backend, label)):
        if position in wanted:
            found[position] = key
        if position >= last:
            break
    return found


def datum_problem(value: bytes, datum_class, expected_shape: tuple[int, int, int] | None) -> str | None:
    """Why Caffe's DataTransformer would reject this record, or None if it would take it."""
    datum = datum_class()
    try:
        datum.ParseFromString(value)
    except Exception as exc:  # protobuf's DecodeError differs between its implementations
        return f"is not a Datum ({exc})"
    shape = (datum.channels, datum.height, datum.width)
    if datum.channels <= 0 or datum.height <= 0 or datum.width <= 0:
        return f"is not a valid Datum (channels, height, width = {shape})"
    if datum.encoded:
        return None  # decoded by OpenCV inside Caffe; its size is known only then
    size = datum.channels * datum.height * datum.width
    if datum.data and len(datum.data) != size:
        return f"holds {len(datum.data)} bytes of data for shape {shape} ({size} expected)"
    if not datum.data and len(datum.float_data) != size:
        return f"holds {len(datum.float_data)} float_data values for shape {shape} ({size} expected)"
    if expected_shape is not None and shape != expected_shape:
        return f"has shape {shape} while the first record of its batch has {expected_shape}"
    return None


def _shape(value: bytes, datum_class):
    datum = datum_class()
    try:
        datum.ParseFromString(value)
    except Exception:
        return None
    return (datum.channels, datum.height, datum.width)


def first_broken_record(
    view: Path, backend: str, label: str, start: int, batch_size: int, datum_class
) -> str | None:
    """Describe the first record at or after position ``start`` that Caffe cannot read, if any.

    Caffe shapes each batch after its first record, so a record must match the
    shape of the first record of its own batch.
    """
    batch_shape = None
    for position, (key, value) in enumerate(iter_items(view, backend, label)):
        if position % batch_size == 0:
            batch_shape = _shape(value, datum_class)
        if position < start:
            continue
        problem = datum_problem(value, datum_class, batch_shape)
        if problem:
            return f"record {position} (key {format_key(key)}) {problem}"
    return None


def key_text(key: bytes) -> str:
    """A key as text: itself when it is UTF-8 (Caffe's convert_imageset keys are), escaped otherwise."""
    return key.decode("utf-8", "backslashreplace")


def format_key(key: bytes) -> str:
    return repr(key_text(key))
