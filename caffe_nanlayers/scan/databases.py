"""LMDB and LevelDB sources of a Data layer: a read-only view, their size, their keys, their broken records.

Opening a database "read-only" still writes to its directory: LMDB creates
``lock.mdb`` when it is absent, LevelDB writes ``LOCK``, ``LOG`` and a new
``MANIFEST``. The scan promises never to touch the user's dataset, so Caffe
and this module open a *view*: a private temporary directory whose entries
are symbolic links to the database's files. Both libraries only ever read
existing data files (LMDB opens ``data.mdb`` read-only; LevelDB's tables and
logs are immutable and recovery writes new files), so whatever they create,
rename or delete happens to the view, never to the dataset. That holds
while LevelDB writes no file the view links to, which a damaged MANIFEST
can break: the view links only what the MANIFEST lists (``leveldb_manifest``).

Keys come from the ``lmdb`` and ``plyvel`` packages (Caffe cannot list
them); they are needed only to count LevelDB records and to name bad
records, and a clear error says how to install them when missing.
"""

from __future__ import annotations

import importlib.util
import os
import struct
from pathlib import Path

from caffe_nanlayers.errors import UserError, missing_extra
from caffe_nanlayers.scan import leveldb_manifest

LMDB_DATA_FILE = "data.mdb"
LEVELDB_MARKER = "CURRENT"


def _need(module: str, package: str, what: str):
    try:
        return __import__(module)
    except ImportError:
        raise missing_extra(f"scanning {what}", package, "scan") from None


def check_database_dir(path: Path, backend: str, label: str) -> None:
    """Refuse a missing, unreadable or truncated database, or one of the other backend, with the fix."""
    try:
        _check_database_dir(path, backend, label)
    except OSError as exc:  # a directory the user may not read (or list): said before any library opens it
        where = (
            "" if exc.filename is None or Path(os.fsdecode(exc.filename)) == path else f" ({exc.filename})"
        )
        raise UserError(f"{label}: cannot read: {exc.strerror}{where}") from None


def _check_database_dir(path: Path, backend: str, label: str) -> None:
    if not path.exists():
        raise UserError(f"{label}: no such directory (Caffe resolves it against the working directory)")
    if not path.is_dir():
        kind = "an LMDB" if backend == "LMDB" else "a LevelDB"
        raise UserError(f"{label}: is a file, expected a directory ({kind} database)")
    names = {entry.name for entry in path.iterdir()}  # listing it is what an unreadable directory refuses
    is_lmdb = LMDB_DATA_FILE in names and (path / LMDB_DATA_FILE).is_file()
    is_leveldb = LEVELDB_MARKER in names and (path / LEVELDB_MARKER).is_file()
    if backend == "LMDB" and not is_lmdb:
        hint = " (it is a LevelDB: set backend: LEVELDB)" if is_leveldb else ""
        raise UserError(f"{label}: not an LMDB, no {LMDB_DATA_FILE} in it{hint}")
    if backend == "LMDB":
        data_file = path / LMDB_DATA_FILE
        if data_file.stat().st_size == 0:
            raise UserError(f"{label}: not an LMDB, its {LMDB_DATA_FILE} is empty")
        with open(data_file, "rb") as f:
            truncated = lmdb_truncation(f.read(LMDB_META_READ), data_file.stat().st_size)
        if truncated:
            raise UserError(f"{label}: {LMDB_DATA_FILE} {truncated}")
    if backend == "LEVELDB" and not is_leveldb:
        hint = (
            " (it is an LMDB: add backend: LMDB to data_param, LEVELDB is Caffe's default)" if is_lmdb else ""
        )
        raise UserError(f"{label}: not a LevelDB, no {LEVELDB_MARKER} file in it{hint}")


# LMDB's two meta pages (mdb.c, 64-bit): after a 16-byte page header, MDB_meta holds the magic and
# version, the map address and size, two 48-byte MDB_db records (the first one's md_pad is the page
# size), then the last page used and the transaction id. The newer of the two metas is the database.
_LMDB_MAGIC = 0xBEEFC0DE
_LMDB_META = struct.Struct("<16xII16xI92xQQ")  # magic, version, page size, last page, txnid
_LMDB_PAGE_SIZES = frozenset(2**k for k in range(9, 17))
LMDB_META_READ = 2 * 65536  # enough for both metas at the largest page size LMDB uses


def lmdb_truncation(head: bytes, file_size: int) -> str | None:
    """Why a ``data.mdb`` (its first bytes ``head``, its size) is cut short, or None.

    LMDB maps the file and reads whatever page a record lives on: a page past
    the end of a truncated file (an interrupted copy) is a SIGBUS, in Caffe
    and in any reader, with nothing said. The meta page says how far the
    database reaches; a file shorter than that is refused before anyone maps it.
    Files that are no LMDB at all are left to LMDB's own error.
    """
    metas = []
    for offset in (0, None):
        if offset is None:  # the second meta sits one page further, at the page size the first names
            if not metas:
                return None
            offset = metas[0][2]
            if offset not in _LMDB_PAGE_SIZES:
                return None
        if len(head) < offset + _LMDB_META.size:
            break
        magic, version, page_size, last_page, txnid = _LMDB_META.unpack_from(head, offset)
        # A meta that does not look like one written here (another word size, a damaged page) is
        # LMDB's to judge: no truncation is claimed from it.
        if magic == _LMDB_MAGIC and version == 1 and page_size in _LMDB_PAGE_SIZES:
            metas.append((txnid, last_page, page_size))
    if not metas:
        return None
    _, last_page, page_size = max(metas)
    needed = (last_page + 1) * page_size
    if file_size < needed:
        return (
            f"is truncated: {file_size} bytes, its last page ends at byte {needed} "
            "(an interrupted copy?); copy the database again"
        )
    return None


def make_view(database: Path, view: Path, backend: str) -> Path:
    """A directory of symbolic links to ``database``'s files, for Caffe to open and lock.

    Only the files the library reads are linked: LevelDB's MANIFEST says which (a file LevelDB
    would write, e.g. a table its damaged MANIFEST forgot, must not be a link to the user's file).
    Raises ``ValueError`` when no view is safe.
    """
    database = database.resolve()
    names = [LMDB_DATA_FILE] if backend == "LMDB" else leveldb_manifest.view_names(database)[0]
    view.mkdir(parents=True)
    for name in names:
        os.symlink(database / name, view / name)
    return view


def left_out_of_view(database: Path, backend: str) -> list[str]:
    """The files of a LevelDB that LevelDB itself will not read: the records they hold are not scanned."""
    if backend == "LMDB":
        return []
    try:
        return leveldb_manifest.view_names(database.resolve())[1]
    except ValueError:
        return []


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
        why = library_words(exc, view)
        raise UserError(f"{label}: cannot open the LMDB: {why}") from None


def iter_items(view: Path, backend: str, label: str, values: bool = True, on_record=None):
    """(key, value) pairs in key order, the order of Caffe's cursor (value None when not asked).

    A database the library finds corrupt on the way is a UserError naming the
    record it could not read and the last key read before it. ``on_record(position, key)``
    is called as each record has been read whole (``guarded_reads`` keeps it where a
    crash cannot erase it).
    """
    position, last_key = 0, None
    try:
        for key, value in _raw_items(view, backend, label, values):
            if on_record is not None:
                on_record(position, key)
            yield key, value
            position, last_key = position + 1, key
    except UserError:
        raise
    except Exception as exc:
        if not _is_library_error(exc, backend):
            raise
        kind = "LMDB" if backend == "LMDB" else "LevelDB"
        after = "its first record" if last_key is None else f"the record after key {format_key(last_key)}"
        why = library_words(exc, view)
        raise UserError(
            f"{label}: the {kind} is corrupt: record {position} cannot be read ({after}): "
            f"{type(exc).__name__}: {why}"
        ) from None


def library_words(exc: Exception, view: Path) -> str:
    """What lmdb or plyvel said, in one line, about the user's database rather than the private view.

    The libraries name the path they opened (the view, a temporary directory that means nothing
    to the user); plyvel's messages are bytes.
    """
    said = exc.args[0] if exc.args else ""
    said = said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said)
    said = said.removeprefix(f"{view}: ")
    return " ".join(said.replace(f"{view}/", f"{_database_of(view)}/").split())


def _database_of(view: Path) -> Path:
    """The database a view links to (the view itself if it links to nothing)."""
    for entry in view.iterdir():
        if entry.is_symlink():
            return Path(os.readlink(entry)).parent
    return view


def _is_library_error(exc: Exception, backend: str) -> bool:
    module = importlib.import_module("lmdb" if backend == "LMDB" else "plyvel")
    return isinstance(exc, module.Error)


def _raw_items(view: Path, backend: str, label: str, values: bool):
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
        raise UserError(f"{label}: cannot open the LevelDB: {library_words(exc, view)}") from None
    try:
        if values:
            yield from db.iterator()
        else:
            for key in db.iterator(include_value=False):
                yield key, None
    finally:
        db.close()


def iter_keys(view: Path, backend: str, label: str, on_record=None):
    for key, _ in iter_items(view, backend, label, values=False, on_record=on_record):
        yield key


def keys_at(view: Path, backend: str, label: str, positions, on_record=None) -> dict[int, bytes]:
    """The keys at the given positions of the key order (one walk over the keys, stopping at the last)."""
    wanted = set(positions)
    if not wanted:
        return {}
    last = max(wanted)
    found = {}
    for position, key in enumerate(iter_keys(view, backend, label, on_record)):
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
    return parsed_datum_problem(datum, expected_shape)


def parsed_datum_problem(datum, expected_shape: tuple[int, int, int] | None) -> str | None:
    """``datum_problem`` of a Datum already parsed."""
    if datum.encoded:
        # Decoded by OpenCV inside Caffe, which reads its shape from the image, never from the
        # header: scripts that write encoded Datums often leave channels, height and width unset.
        return None
    shape = (datum.channels, datum.height, datum.width)
    if datum.channels <= 0 or datum.height <= 0 or datum.width <= 0:
        return f"is not a valid Datum (channels, height, width = {shape})"
    size = datum.channels * datum.height * datum.width
    if datum.data and len(datum.data) != size:
        return f"holds {len(datum.data)} bytes of data for shape {shape} ({size} expected)"
    if not datum.data and len(datum.float_data) != size:
        return f"holds {len(datum.float_data)} float_data values for shape {shape} ({size} expected)"
    if expected_shape is not None and shape != expected_shape:
        return f"has shape {shape} while the first record of its batch has {expected_shape}"
    return None


def datum_shape(value: bytes, datum_class):
    datum = datum_class()
    try:
        datum.ParseFromString(value)
    except Exception:
        return None
    return (datum.channels, datum.height, datum.width)


def check_records(
    view: Path, backend: str, label: str, limit: int | None, datum_class, on_record=None
) -> tuple[int, list[str]]:
    """The records of one pass, and why Caffe would misread any of the first ``limit`` (all).

    A Datum whose data does not fill its shape (5 of the 18 ``float_data``
    values its shape needs) is no Caffe CHECK: Caffe reads past the end of
    the field and the record looks clean. Each record is checked alone here
    (a batch of records of other shapes may be fine: a crop makes them fit).
    """
    broken, checked = [], 0
    records = iter_items(view, backend, label, on_record=on_record)
    for checked, (key, value) in enumerate(records, 1):
        problem = datum_problem(value, datum_class, None)
        if problem:
            broken.append(f"record {checked - 1} (key {format_key(key)}) {problem}")
        if checked == limit:
            break
    else:
        return checked, broken
    records.close()  # before the count opens the database again
    return count_records(view, backend, label), broken


def first_broken_record(
    view: Path, backend: str, label: str, start: int, batch_size: int, datum_class, on_record=None
) -> str | None:
    """Describe the first record at or after position ``start`` that Caffe cannot read, if any.

    Caffe shapes each batch after its first record, so a record must match the
    shape of the first record of its own batch.
    """
    batch_shape = None
    for position, (key, value) in enumerate(iter_items(view, backend, label, on_record=on_record)):
        if position % batch_size == 0:
            batch_shape = datum_shape(value, datum_class)
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
