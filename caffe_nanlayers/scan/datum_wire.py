"""A Datum's shape, label and where its pixels are, read from its protobuf bytes without copying the pixels.

A raw ImageNet record is 196 KB of pixels behind a dozen bytes of header.
Parsing it with protobuf copies the pixels twice (into the message, then
out as ``bytes``) although, when the transform is proven finite for every
uint8 value (``fast_path``), the scan needs only the shape, the label and
the number of pixel bytes. This reads those few fields straight from the
wire format, and the pixels, when they are wanted, are a numpy view of the
record in place.

It understands the raw Datum that Caffe's tools write: the fields of
``caffe.proto``'s ``message Datum`` but ``float_data`` (a float record is
transformed value by value anyway, and its floats, unpacked as proto2
writes them, are one field each: protobuf's C parser reads them far faster
than a loop here). Any other byte (float_data, an unknown field, a wire
type that does not match, a truncation, a varint too long) makes it answer
None, and the caller parses the record with protobuf as before: this
reader may decline, never differ.
"""

from __future__ import annotations

import dataclasses

# Field numbers of caffe.proto's Datum.
CHANNELS, HEIGHT, WIDTH, DATA, LABEL, FLOAT_DATA, ENCODED = range(1, 8)
VARINT, LENGTH = 0, 2
_INT32_FIELDS = (CHANNELS, HEIGHT, WIDTH, LABEL)


@dataclasses.dataclass(frozen=True)
class DatumHeader:
    channels: int
    height: int
    width: int
    label: int
    encoded: bool
    data_offset: int  # where the last ``data`` field's bytes start in the record
    data_size: int  # 0: no data field (or an empty one)


def _int32(value: int) -> int:
    """A varint as protobuf reads it into an int32: its low 32 bits, signed."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def read_header(record) -> DatumHeader | None:
    """The header of a serialized Datum (bytes or memoryview), or None when only protobuf should read it."""
    fields = {CHANNELS: 0, HEIGHT: 0, WIDTH: 0, LABEL: 0, ENCODED: 0}
    data_offset = data_size = 0
    end = len(record)
    position = 0
    while position < end:
        key, position = _varint(record, position, end)
        if key is None:
            return None
        number, wire = key >> 3, key & 7
        if number in fields and wire == VARINT:
            value, position = _varint(record, position, end)
            if value is None:
                return None
            fields[number] = value
        elif number == DATA and wire == LENGTH:
            length, position = _varint(record, position, end)
            if length is None or position + length > end:
                return None
            data_offset, data_size = position, length
            position += length
        else:
            return None
    return DatumHeader(
        channels=_int32(fields[CHANNELS]),
        height=_int32(fields[HEIGHT]),
        width=_int32(fields[WIDTH]),
        label=_int32(fields[LABEL]),
        encoded=fields[ENCODED] != 0,
        data_offset=data_offset,
        data_size=data_size,
    )


def _varint(record, position: int, end: int) -> tuple[int | None, int]:
    """A base-128 varint at ``position``: (value, next position), or (None, position) if malformed."""
    value = shift = 0
    while position < end and shift < 70:
        byte = record[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (value if value < 1 << 64 else None), position
        shift += 7
    return None, position
