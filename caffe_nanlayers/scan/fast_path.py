"""A Data layer's records read and transformed here, in numpy, exactly as Caffe's Data layer delivers them.

Caffe's Data layer reads one record after the other on one thread, and it
cannot start at a given key: a scan through it uses one core, whatever the
machine has. A worker of the parallel scan (``workers``) instead opens the
database itself, seeks to the first key of its range, parses each ``Datum``
and applies ``DataTransformer::Transform`` in numpy: the centre crop,
``mean_file`` or ``mean_value``, then ``scale``, in float32 and in Caffe's
order, so the values are Caffe's bit for bit (a test holds this against real
Caffe, which stays the oracle). The label is ``datum.label`` as a float, as
Caffe copies it into the label top.

A uint8 record cannot itself hold NaN or Inf: only the transform can make
one. ``(v - mean) * scale`` rounds monotonically in ``v``, so if the
transform of 0 and of 255 is finite at every position of the crop, every
uint8 record of that shape comes out finite and is not transformed at all;
only its size and label are checked. This is what lets a scan read raw
ImageNet-sized records at the speed of parsing them. A mean file holding a
NaN, or a scale of inf, fails that proof: then each record is measured
by ``uint8_measure`` (its few positions outside the proof transformed, its
extremes from one subtraction) or, where that cannot answer, transformed
whole, as Caffe would deliver it.

An encoded record (a JPEG or PNG) is decoded here with the OpenCV Caffe
links (``encoded_records``) and then judged as a raw record of the decoded
shape: a decoded image is uint8 too.

Whatever Caffe would refuse (a record that does not parse, a size that does
not match its shape, a shape that does not fit its batch, an image that
does not decode, a mean file of another shape) is not judged here: the
worker stops and says where, and the scan hands the whole pass to Caffe's own layer, whose answer
(usually the CHECK that stops it) is the scan's answer too.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from caffe_nanlayers.scan import databases, encoded_records, findings, guarded_reads
from caffe_nanlayers.scan.datum_wire import read_header
from caffe_nanlayers.scan.uint8_measure import Uint8Measure

PROGRESS_INTERVAL_S = 0.2
# Findings wait for the next progress message up to this many: one message a finding would cost
# more than measuring the record when every record is bad (a mean file holding a NaN).
FINDINGS_PER_MESSAGE = 256
UINT8_EXTREMES = (0.0, 255.0)


class HandOver(Exception):
    """A record or an HDF5 file a worker of ours does not judge: Caffe's own layer reads the pass."""

    def __init__(self, record: int, why: str):
        super().__init__(f"record {record} {why}")
        self.record = record
        self.why = why


def unsupported(layer) -> str | None:
    """Why the fast path cannot stand in for this Data layer's transform, or None if it can."""
    transform = layer.transform_param
    data = layer.data_param
    if layer.type != "Data":
        return f"{layer.type} layers are read by Caffe"
    if data.scale != 1 or data.mean_file or data.crop_size or data.mirror:
        return "it sets the deprecated transform fields of data_param"
    if transform.mean_file and len(transform.mean_value):
        return "it sets both mean_file and mean_value, which Caffe refuses"
    if transform.mirror:
        return "mirror is on"
    return None


@dataclasses.dataclass(frozen=True)
class Transform:
    """The parts of a TransformationParameter that shape and scale a raw Datum, in float32."""

    scale: np.float32
    crop_size: int
    mean_values: tuple  # float32 each; empty when none
    mean: np.ndarray | None  # the mean file's blob, shape (C, H, W), float32

    @classmethod
    def of(cls, transform_param, pb2) -> Transform:
        mean = None
        if transform_param.mean_file:
            mean = read_mean_file(transform_param.mean_file, pb2)
        return cls(
            scale=np.float32(transform_param.scale),
            crop_size=int(transform_param.crop_size),
            mean_values=tuple(np.float32(v) for v in transform_param.mean_value),
            mean=mean,
        )

    def window(self, height: int, width: int) -> tuple[slice, slice]:
        """Caffe's crop in TEST: the centre, offsets rounded down."""
        if not self.crop_size:
            return slice(0, height), slice(0, width)
        top, left = (height - self.crop_size) // 2, (width - self.crop_size) // 2
        return slice(top, top + self.crop_size), slice(left, left + self.crop_size)

    def apply(self, values: np.ndarray) -> np.ndarray:
        """A record (C, H, W, uint8 or float32, uncropped) as the net sees it: cropped, less the mean, scaled.

        Only the crop is converted to float32, and the arithmetic is done in place: the same float32
        operations in the same order as Caffe's, so the same values, with one copy of the crop.
        """
        rows, cols = self.window(values.shape[1], values.shape[2])
        seen = values[:, rows, cols].astype(np.float32)
        if self.mean is not None:
            np.subtract(seen, self.mean[:, rows, cols], out=seen)
        elif self.mean_values:
            means = np.array(self.means_for(values.shape[0]), dtype=np.float32).reshape(-1, 1, 1)
            np.subtract(seen, means, out=seen)
        np.multiply(seen, self.scale, out=seen)
        return seen

    def means_for(self, channels: int) -> tuple:
        return self.mean_values * channels if len(self.mean_values) == 1 else self.mean_values

    def uint8_always_finite(self, shape: tuple[int, int, int]) -> bool:
        """Whether every uint8 record of ``shape`` comes out finite: the transform of 0 and 255 is."""
        for extreme in UINT8_EXTREMES:
            with np.errstate(all="ignore"):
                out = self.apply(np.full(shape, extreme, dtype=np.float32))
            if not np.isfinite(out).all():
                return False
        return True

    def refusal(self, shape: tuple[int, int, int], first_channels: int) -> str | None:
        """What Caffe's transformer CHECKs about a record of ``shape``, as the reason it would stop."""
        channels, height, width = shape
        if channels <= 0 or height <= 0 or width <= 0:
            return f"is not a valid Datum (channels, height, width = {shape})"
        if height < self.crop_size or width < self.crop_size:
            return f"of shape {shape} is smaller than crop_size {self.crop_size}"
        if self.mean is not None and shape != self.mean.shape:
            return f"has shape {shape}, the mean file {self.mean.shape}"
        if self.mean_values and len(self.mean_values) not in (1, channels):
            return f"has {channels} channels for {len(self.mean_values)} mean_value"
        if len(self.mean_values) == 1 and channels != first_channels:
            # Caffe replicates a single mean_value for the channels of the first record it sees.
            return f"has {channels} channels, the first record {first_channels}, under one mean_value"
        return None


def read_mean_file(path: str, pb2) -> np.ndarray:
    """The mean blob as Caffe's Blob::FromProto reads it: legacy num/channels/height/width or shape."""
    blob = pb2.BlobProto()
    blob.ParseFromString(Path(path).read_bytes())
    if blob.HasField("shape"):
        dims = tuple(int(d) for d in blob.shape.dim)
    else:
        dims = (blob.num, blob.channels, blob.height, blob.width)
    if len(dims) != 4:
        raise ValueError(f"a mean blob of shape {dims}, not (num, channels, height, width)")
    values = np.array(blob.double_data if len(blob.double_data) else blob.data, dtype=np.float32)
    # Caffe indexes the mean by the record's position: the first of its num images is the mean.
    return values[: dims[1] * dims[2] * dims[3]].reshape(dims[1:])


@dataclasses.dataclass(frozen=True)
class RangeSpec:
    """One worker's share of a Data layer: ``count`` records from ``start_key``, the first of a batch."""

    view: str  # a private view of the database
    backend: str  # "LMDB" | "LEVELDB"
    start_key: bytes
    count: int
    batch_size: int
    # The parent did not survey the records (``sources.Source.survey``): each is checked here as the
    # survey would, and ``check_past`` records after the range's are only checked so (a --limit's
    # last batch).
    first_channels: int  # of the first record of the whole pass (Caffe's mean_value replication)
    transform: Transform  # built by the parent, which read the mean file
    tops: tuple  # ((top name, label config or None), ...): data, then label when the layer has one
    survey: bool = False
    check_past: int = 0
    decoding: encoded_records.Decoding = dataclasses.field(default_factory=encoded_records.Decoding)


def _records(spec: RangeSpec):
    """(position, key, value) for the range and the records checked past it, from its first key on."""
    end = spec.count + spec.check_past
    if spec.backend == "LMDB":
        import lmdb

        env = lmdb.open(spec.view, readonly=True, lock=False, subdir=True, max_readers=1)
        try:
            # buffers: each key and value is a view of the memory map, valid until the cursor moves on.
            with env.begin(buffers=True) as txn:
                cursor = txn.cursor()
                if not cursor.set_range(spec.start_key):
                    return
                for offset, (key, value) in enumerate(cursor.iternext(keys=True, values=True)):
                    if offset >= end:
                        return
                    yield offset, key, value
        finally:
            env.close()
        return
    import plyvel

    db = plyvel.DB(spec.view, create_if_missing=False)
    try:
        for offset, (key, value) in enumerate(db.iterator(start=spec.start_key)):
            if offset >= end:
                return
            yield offset, key, value
    finally:
        db.close()


def scan_range(report, spec: RangeSpec) -> dict:
    """Check the records of ``spec`` in a worker: ``{"records", "handover", "broken"}``.

    ``handover`` is None or ``[record, why]``; ``broken`` lists ``[record, key, why]`` for each
    record Caffe cannot read whole (``databases.datum_problem``), when the worker surveys. Findings
    travel in ``("progress", None, records_done, findings)`` messages, the runner's form, with
    records counted from the range's start.
    """
    done, broken = [0], []
    try:
        _scan_range(report, spec, done, broken)
    except HandOver as stop:
        return {"records": done[0], "handover": [stop.record, stop.why], "broken": broken}
    return {"records": done[0], "handover": None, "broken": broken}


def _scan_range(report, spec: RangeSpec, done: list, broken: list) -> None:
    transform = spec.transform
    (data_top, data_label), *label_top = spec.tops
    label_name, label_config = label_top[0] if label_top else (None, None)
    datum = None  # protobuf's parser, only for a record the wire reader declines
    measures: dict = {}  # per shape: True when proven finite, else its Uint8Measure
    found: list[dict] = []
    batch_shape = None
    sent = 0
    last_report = time.monotonic()

    def add(finding: dict, record: int, top: str) -> None:
        batch, position = divmod(record, spec.batch_size)
        # The key of the record being read: the parent names the record without walking the keys again.
        finding.update(source=0, record=record, batch=batch, position=position, top=top, key=bytes(key))
        found.append(finding)

    for record, key, value in _records(spec):  # record: counted from the range's start, a batch's first
        header = read_header(value)
        if header is not None and header.encoded:
            if record >= spec.count:
                continue  # past the range, only checked whole: an encoded record always is
            start = header.data_offset
            shape, pixels = _decoded(spec, value[start : start + header.data_size], record)
            label, size, floats = header.label, pixels.size, None
        elif header is not None and header.data_size:
            # The common record, raw uint8: its pixels are a view of the record, read only if needed.
            shape, label, size = (
                (header.channels, header.height, header.width),
                header.label,
                header.data_size,
            )
            if spec.survey and (min(shape) <= 0 or size != shape[0] * shape[1] * shape[2]):
                problem = databases.datum_problem(bytes(value), guarded_reads.datum_class(), None)
                broken.append([record, bytes(key), problem])
                done[0] += record < spec.count
                continue
            if record >= spec.count:
                continue
            pixels = np.frombuffer(value, np.uint8, count=size, offset=header.data_offset)
            floats = None
        else:
            if datum is None:
                datum = guarded_reads.datum_class()()
            try:
                datum.ParseFromString(value)
            except Exception as exc:  # protobuf's DecodeError differs between its implementations
                if not spec.survey:
                    raise HandOver(record, f"is not a Datum ({exc})") from None
                problem = f"is not a Datum ({exc})"
            else:
                problem = databases.parsed_datum_problem(datum, None) if spec.survey else None
            if problem is not None:
                broken.append([record, bytes(key), problem])
                done[0] += record < spec.count
                continue
            if record >= spec.count:
                continue
            label = datum.label
            if datum.encoded:
                shape, pixels = _decoded(spec, datum.data, record)
                size, floats = pixels.size, None
            else:
                shape = (datum.channels, datum.height, datum.width)
                raw = datum.data  # Caffe reads data when it is not empty, float_data otherwise
                pixels = np.frombuffer(raw, np.uint8) if raw else None
                floats = None if raw else datum.float_data
                size = len(raw) if raw else len(floats)
        refusal = transform.refusal(shape, spec.first_channels)
        if refusal:
            raise HandOver(record, refusal)
        if record % spec.batch_size == 0:
            batch_shape = shape  # Caffe shapes each batch after its first record
        elif shape[0] != batch_shape[0] or (not transform.crop_size and shape != batch_shape):
            raise HandOver(record, f"has shape {shape}, the first record of its batch {batch_shape}")
        if size != shape[0] * shape[1] * shape[2]:
            what = "bytes of data" if floats is None else "float_data values"
            raise HandOver(record, f"holds {size} {what} for shape {shape}")
        if floats is None:
            measure = measures.get(shape)
            if measure is None:
                measure = measures[shape] = _uint8_measure(transform, shape)
            if measure is not True and measure.usable and data_label is None:
                finding = measure.finding(pixels.reshape(shape))
                if finding is not None:
                    add(finding, record, data_top)
            elif measure is not True or data_label is not None:
                _check(transform, pixels.reshape(shape), data_label, record, data_top, add)
        else:
            values = np.array(floats, dtype=np.float32).reshape(shape)
            _check(transform, values, data_label, record, data_top, add)
        if label_config is not None and label_is_bad(label, label_config):
            add(
                findings.label_finding(np.array([label], dtype=np.float32), label_config),
                record,
                label_name,
            )
        done[0] += 1
        now = time.monotonic()
        if len(found) - sent >= FINDINGS_PER_MESSAGE or now - last_report >= PROGRESS_INTERVAL_S:
            report(("progress", None, done[0], found[sent:]))
            sent, last_report = len(found), now
    report(("progress", None, done[0], found[sent:]))


def _decoded(spec: RangeSpec, data, record: int):
    """An encoded record's shape and CHW pixels, decoded as Caffe decodes it, or the hand-over."""
    try:
        return encoded_records.decode(data, spec.decoding, spec.transform)
    except encoded_records.Refused as refused:
        raise HandOver(record, str(refused)) from None


def label_is_bad(label: int, config: dict) -> bool:
    """``bad_label_rows`` for the one int32 label of a Datum, without numpy (it runs once a record).

    Caffe stores the label as a float32, and the scan layer compares that float32 with the class
    count and ignore_label made float32 too: beyond 2**24, where float32 skips integers, so does this.
    """
    classes, ignore = config["num_classes"], config["ignore_label"]
    if max(abs(label), abs(classes or 0), abs(ignore or 0)) > 1 << 24:
        label = float(np.float32(label))
        classes = None if classes is None else float(np.float32(classes))
        ignore = None if ignore is None else float(np.float32(ignore))
    if ignore is not None and label == ignore:
        return False
    return label < 0 or (classes is not None and label >= classes)


def _uint8_measure(transform, shape: tuple[int, int, int]):
    """True when every uint8 record of ``shape`` comes out finite, else the measure of those records."""
    return True if transform.uint8_always_finite(shape) else Uint8Measure(transform, shape)


def _check(transform, values, label_config, record, top, add) -> None:
    with np.errstate(all="ignore"):  # inf * 0 and the like are what the scan is looking for
        seen = transform.apply(values)
    # The scan layer's own measures: the findings are word for word Caffe's path's.
    finding = findings.nonfinite_finding(seen)
    if finding is not None:
        add(finding, record, top)
    if label_config is not None:
        rows = seen.reshape(1, -1)
        if len(findings.bad_label_rows(rows, label_config["num_classes"], label_config["ignore_label"])):
            add(findings.label_finding(seen, label_config), record, top)
