"""Which files of a LevelDB its MANIFEST says are live: the only ones a private view may link.

The scan opens a LevelDB through a view of symbolic links (see
``databases``), which is safe only while LevelDB writes new files and never
an existing one. A damaged MANIFEST breaks that: cut short, it forgets a
table and the next file number with it, and LevelDB, replaying its log on
open, writes a new table under the forgotten table's number, through the
link, over the user's data. So the view links only what the MANIFEST
lists (CURRENT, the MANIFEST, its live tables, the logs it will replay);
whatever LevelDB then writes lands in the view. A MANIFEST that lists a
table at or past its own next file number is refused: LevelDB could write
over that table too.

The format is LevelDB's (``db/log_format.h``, ``db/version_edit.cc``): a
log of 32 KiB blocks of checksummed fragments, each record a VersionEdit of
tagged varints. Checksums are LevelDB's to check: it refuses a MANIFEST
whose checksums fail, and writes nothing then.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

BLOCK = 32768
HEADER = 7  # checksum (4), length (2), type (1)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
# VersionEdit tags
COMPARATOR, LOG_NUMBER, NEXT_FILE, LAST_SEQUENCE, COMPACT_POINTER, DELETED_FILE, NEW_FILE = (
    1,
    2,
    3,
    4,
    5,
    6,
    7,
)
PREV_LOG_NUMBER = 9
NUMBERED = re.compile(r"^(\d+)\.(ldb|sst|log)$")


class Unreadable(ValueError):
    """The MANIFEST is not what LevelDB writes; LevelDB will say why when it opens it."""


@dataclasses.dataclass
class Manifest:
    name: str
    tables: set[int]
    log_number: int
    prev_log_number: int
    next_file: int

    def keeps(self, name: str) -> bool:
        """Whether LevelDB reads the file ``name`` when it opens the database."""
        if name in ("CURRENT", self.name):
            return True
        match = NUMBERED.match(name)
        if not match:
            return False
        number = int(match.group(1))
        if match.group(2) == "log":
            return number >= self.log_number or number == self.prev_log_number
        return number in self.tables


def read_manifest(directory: Path) -> Manifest:
    """The live files of the LevelDB in ``directory``; ``Unreadable`` when CURRENT or the MANIFEST is not."""
    try:
        name = (directory / "CURRENT").read_text(encoding="ascii").strip()
        if not re.fullmatch(r"MANIFEST-\d+", name):
            raise Unreadable(f"CURRENT names {name!r}")
        data = (directory / name).read_bytes()
    except (OSError, UnicodeDecodeError) as exc:
        raise Unreadable(str(exc)) from None
    tables: set[int] = set()
    numbers = {LOG_NUMBER: 0, PREV_LOG_NUMBER: 0, NEXT_FILE: 0}
    for record in _records(data):
        _apply(record, tables, numbers)
    return Manifest(name, tables, numbers[LOG_NUMBER], numbers[PREV_LOG_NUMBER], numbers[NEXT_FILE])


def _records(data: bytes):
    """The records of a LevelDB log, fragments joined; a cut-short tail ends it, as in LevelDB."""
    position, pending = 0, None
    while position + HEADER <= len(data):
        left_in_block = BLOCK - position % BLOCK
        if left_in_block < HEADER:  # the block's trailer is padding
            position += left_in_block
            continue
        length = int.from_bytes(data[position + 4 : position + 6], "little")
        kind = data[position + 6]
        start, position = position + HEADER, position + HEADER + length
        if kind == 0 and length == 0:  # zeroed space, as written by preallocation
            position += BLOCK - (start % BLOCK) if start % BLOCK else 0
            continue
        if position > len(data) or length > left_in_block - HEADER:
            return  # cut short: LevelDB drops the incomplete tail too
        fragment = data[start:position]
        if kind == FULL:
            yield fragment
        elif kind == FIRST:
            pending = fragment
        elif kind in (MIDDLE, LAST) and pending is not None:
            pending += fragment
            if kind == LAST:
                yield pending
                pending = None
        else:
            raise Unreadable(f"a record of type {kind}")


def _apply(record: bytes, tables: set[int], numbers: dict[int, int]) -> None:
    reader = _Reader(record)
    while not reader.done():
        tag = reader.varint()
        if tag in (LOG_NUMBER, PREV_LOG_NUMBER, NEXT_FILE):
            numbers[tag] = reader.varint()
        elif tag == LAST_SEQUENCE:
            reader.varint()
        elif tag == COMPARATOR:
            reader.slice()
        elif tag == COMPACT_POINTER:
            reader.varint()
            reader.slice()
        elif tag == DELETED_FILE:
            reader.varint()
            tables.discard(reader.varint())
        elif tag == NEW_FILE:
            reader.varint()  # level
            tables.add(reader.varint())
            reader.varint()  # size
            reader.slice()  # smallest key
            reader.slice()  # largest key
        else:
            raise Unreadable(f"an edit tagged {tag}")


class _Reader:
    def __init__(self, data: bytes):
        self._data, self._at = data, 0

    def done(self) -> bool:
        return self._at >= len(self._data)

    def varint(self) -> int:
        value = shift = 0
        while True:
            if self._at >= len(self._data) or shift > 63:
                raise Unreadable("a varint cut short")
            byte = self._data[self._at]
            self._at += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    def slice(self) -> bytes:
        length = self.varint()
        if self._at + length > len(self._data):
            raise Unreadable("a slice cut short")
        self._at += length
        return self._data[self._at - length : self._at]


def view_names(directory: Path) -> tuple[list[str], list[str]]:
    """The files of ``directory`` a view may link, and the files LevelDB would not read (left out).

    Raises ``ValueError`` (its message for the user) when the MANIFEST lists a table LevelDB may
    write over; a MANIFEST that cannot be read gives CURRENT and the MANIFEST alone, for LevelDB
    to refuse in its own words.
    """
    present = sorted(p.name for p in directory.iterdir() if p.is_file())
    try:
        manifest = read_manifest(directory)
    except Unreadable:
        kept = [name for name in present if name == "CURRENT" or name.startswith("MANIFEST-")]
        return kept, []
    risky = sorted(n for n in manifest.tables if n >= manifest.next_file)
    if risky:
        raise ValueError(
            f"its {manifest.name} lists table {risky[0]:06d} at or past its next file number "
            f"{manifest.next_file}: the MANIFEST is damaged, and LevelDB could write over that table"
        )
    kept = [name for name in present if manifest.keeps(name)]
    left_out = [name for name in present if not manifest.keeps(name) and NUMBERED.match(name)]
    return kept, left_out
