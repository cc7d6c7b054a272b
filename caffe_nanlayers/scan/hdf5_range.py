"""Read a run of an HDF5Data layer's files in a worker with h5py, as Caffe's HDF5Data layer delivers them.

Caffe's HDF5Data layer (``hdf5_data_layer.cpp``, ``util/hdf5.cpp``) loads
each listed file whole: for every top, the dataset of that name, read by
``H5LTread_dataset_float``, which is ``H5Dread`` into native float32. The
conversion from the stored type (float64, float16, any integer, either byte
order) is HDF5's own, and HDF5's rules are not numpy's: a float64 just above
float32's largest value becomes +inf in HDF5's conversion of little-endian
doubles where numpy rounds it down to the largest float32, and HDF5's
conversion of big-endian data rounds differently again. So this module never
converts in numpy: h5py's low-level read into a float32 array calls
``H5Dread`` with a float32 memory type, HDF5's own path, and a test holds
the values against Caffe's top blobs, Caffe being the oracle.

A row is what Caffe copies into one item of the batch: the dataset's
trailing dimensions (a 1-D dataset gives one value per row, a 4-D one an
image). Rows come in file order and files in list order, with no transform
(Caffe refuses a transform_param on this layer). Each row is measured with
the scan layer's own functions (``findings``), so the findings are word
for word those of a pass through Caffe.

The files are read in chunks of rows, so a worker's memory is bounded
whatever the size of a file. Whatever Caffe would refuse, or this module
is not sure it reads the same way (another type class, another row shape
than the first file's, an empty row, a compression filter that h5py has
and Caffe's HDF5 may not), is not judged here: the worker stops
and says where, and the scan hands the pass to Caffe's own layer. Nothing
here imports pycaffe.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from caffe_nanlayers.errors import UserError
from caffe_nanlayers.finite import all_finite
from caffe_nanlayers.scan import hdf5_lists

# A worker of either reader speaks alike: the same hand-over, the same progress messages.
from caffe_nanlayers.scan.fast_path import FINDINGS_PER_MESSAGE, PROGRESS_INTERVAL_S, HandOver
from caffe_nanlayers.scan.findings import bad_label_rows, label_finding, nonfinite_finding

CHUNK_BYTES = 8 << 20  # of float32 rows, per top: what a worker holds of a file at once
# The stored types whose conversion to float32 by HDF5 was held against Caffe's HDF5Data layer
# (numpy kind and item size; either byte order), within the classes Caffe reads (H5T_FLOAT,
# H5T_INTEGER). Others (long double; bool and other enums, which Caffe refuses) go to Caffe's layer.
CHECKED_TYPES = frozenset(
    [("f", 2), ("f", 4), ("f", 8)] + [(kind, size) for kind in "iu" for size in (1, 2, 4, 8)]
)
# H5Z_FILTER_DEFLATE, _SHUFFLE and _FLETCHER32: part of every HDF5 library (deflate with zlib, which
# Debian's and h5py's both have). Any other filter goes to Caffe's own layer.
PLAIN_FILTERS = frozenset({1, 2, 3})


def type_is_checked(dtype) -> bool:
    """Whether HDF5's conversion of this stored type to float32 is the one held against Caffe."""
    # h5py gives an enum its base integer type, with the members as metadata: Caffe refuses enums.
    plain = dtype.metadata is None and not dtype.fields and dtype.shape == ()
    return plain and (dtype.kind, dtype.itemsize) in CHECKED_TYPES


@dataclasses.dataclass(frozen=True)
class Hdf5RangeSpec:
    """One worker's share of an HDF5Data layer: the first ``count`` rows of a run of whole files."""

    files: tuple  # paths as Caffe opens them (absolute: the worker may run elsewhere)
    count: int | None  # None: every row of the files
    batch_size: int
    first_record: int  # the run's first row in the pass (batch and position of a finding)
    tops: tuple  # ((top name, label config or None), ...), in the layer's order
    row_shapes: tuple  # per top, the trailing dimensions of the list's first file: Caffe's top shape
    # When the command did not check the list's files before the scan (``hdf5_lists.inspect_files``),
    # the worker checks each of its files so, just before reading it: ``source`` is the list, and
    # ``entries`` its (line, name as written) of each file.
    source: str = ""
    entries: tuple = ()


def scan_range(report, spec: Hdf5RangeSpec) -> dict:
    """Check the rows of ``spec`` in a worker: ``{"records": checked, "handover": None or [record, why]}``.

    Findings travel in ``("progress", files_done, records_done, findings)`` messages, the runner's
    form, with records counted from the range's start (the parent shifts them to the pass's).
    """
    done, checked = [0], []
    try:
        _scan_range(report, spec, done, checked)
    except HandOver as stop:
        return {"records": done[0], "handover": [stop.record, stop.why]}
    except UserError as refused:  # a file's check: the list's first such error is the scan's
        return {"records": done[0], "handover": None, "refused": [len(checked), str(refused)]}
    if spec.entries:
        return {"records": done[0], "handover": None, "files": checked}
    return {"records": done[0], "handover": None}


def _scan_range(report, spec: Hdf5RangeSpec, done: list, checked: list) -> None:
    findings: list[dict] = []
    sent, last_report = 0, time.monotonic()
    for first, values in read_chunks(spec, checked):
        for (top, label), top_values in zip(spec.tops, values):
            _measure(top_values, label, top, spec, first, findings)
        done[0] = first + len(values[0])
        now = time.monotonic()
        if len(findings) - sent >= FINDINGS_PER_MESSAGE or now - last_report >= PROGRESS_INTERVAL_S:
            report(("progress", len(checked), done[0], findings[sent:]))
            sent, last_report = len(findings), now
    report(("progress", len(checked), done[0], findings[sent:]))


def read_chunks(spec: Hdf5RangeSpec, checked: list | None = None):
    """(first record, [rows of each top as float32]) for consecutive chunks of the range's rows.

    With ``spec.entries``, each file is first checked as the list's check before a scan does
    (``hdf5_lists.inspect_file``: its UserError goes through), and its ``Hdf5File`` appended
    to ``checked``.

    The arrays are reused from one chunk to the next: use them before asking for the next.
    h5py's low-level calls, not its File and Dataset objects: a list of many small files is
    read at the cost of HDF5's own opens and reads, not of h5py's bookkeeping around them.
    """
    import h5py
    from h5py import h5f

    row_sizes = [int(np.prod(shape, dtype=np.int64)) for shape in spec.row_shapes]
    if 0 in row_sizes:
        raise HandOver(0, "has a top with empty rows")
    chunk_rows = max(1, CHUNK_BYTES // (4 * max(row_sizes)))
    access = hdf5_lists.file_access(h5py)  # closing the file closes its datasets
    buffers: list = [None] * len(spec.tops)
    record = 0
    count = math.inf if spec.count is None else spec.count
    tops = [top for top, _ in spec.tops]
    for index, name in enumerate(spec.files):
        if record >= count:
            break
        if spec.entries:
            line, written = spec.entries[index]
            hdf5_lists.require_file(spec.source, line, written)
        try:
            fid = h5f.open(name.encode(), h5f.ACC_RDONLY, fapl=access)
        except Exception as exc:  # Caffe's own layer, run on the list, says what it makes of the file
            if spec.entries:  # unless the list's check refuses it first, as it would before a scan
                hdf5_lists.inspect_file(h5py, access, spec.source, line, written, tops)
            raise HandOver(record, f"({name}) cannot be opened by h5py ({exc})") from None
        try:
            try:
                datasets = _datasets(fid, name, spec, record)
            except HandOver:
                if spec.entries:  # the list's check refuses the file first, as it would before a scan
                    hdf5_lists.inspect_file(h5py, access, spec.source, line, written, tops)
                raise
            if spec.entries:  # what the list's check would have found: these datasets pass it
                layout = tuple((tuple(dataset.shape[1:]), dataset.dtype) for dataset in datasets)
                checked.append(hdf5_lists.Hdf5File(written, int(datasets[0].shape[0]), layout))
            stored = datasets[0].shape[0]
            rows = int(min(stored, count - record))
            for start in range(0, rows, chunk_rows):
                end = min(rows, start + chunk_rows)
                chunk = []
                for index, (dataset, shape) in enumerate(zip(datasets, spec.row_shapes)):
                    if buffers[index] is None or buffers[index].shape[0] < end - start:
                        buffers[index] = np.empty((min(chunk_rows, rows), *shape), np.float32)
                    values = buffers[index][: end - start]
                    try:
                        _read_rows(dataset, start, values, whole=end - start == stored)
                    except Exception as exc:  # a damaged chunk: Caffe's own layer decides
                        top = spec.tops[index][0]
                        raise HandOver(
                            record + start, f"({name}) rows of {top!r} cannot be read ({exc})"
                        ) from None
                    chunk.append(values)
                yield record + start, chunk
        finally:
            fid.close()
        record += rows


def _read_rows(dataset, start: int, values: np.ndarray, whole: bool) -> None:
    """Rows ``start`` on of ``dataset`` into ``values``: H5Dread into float32, as H5LTread_dataset_float.

    The memory type is the array's float32, so HDF5 converts the stored type itself, as it does
    for Caffe (h5py's ``Dataset.read_direct`` makes the same call, with more Python around it).
    """
    from h5py import h5s

    if whole:
        dataset.read(h5s.ALL, h5s.ALL, values)
        return
    selected = dataset.get_space()
    selected.select_hyperslab((start,) + (0,) * (values.ndim - 1), values.shape)
    dataset.read(h5s.create_simple(values.shape), selected, values)


def _datasets(fid, name: str, spec: Hdf5RangeSpec, record: int) -> list:
    """Each top's dataset of one file, or a HandOver where Caffe would read it otherwise or stop."""
    from h5py import h5d, h5l, h5t

    datasets = []
    for (top, _), shape in zip(spec.tops, spec.row_shapes):
        if "/" in top:
            # Caffe's H5LTfind_dataset looks for the name among the links of the root group only,
            # where h5py would follow the path into a group.
            raise HandOver(record, f"({name}) top {top!r} names a path, which Caffe looks up otherwise")
        try:
            link = fid.links.get_info(top.encode()).type
            dataset = h5d.open(fid, top.encode())
        except Exception:  # no such name, a group, a link to nothing, a damaged header
            raise HandOver(record, f"({name}) has no dataset {top!r} that h5py can open") from None
        if link not in (h5l.TYPE_HARD, h5l.TYPE_SOFT):
            # An external link is resolved against directories that differ between HDF5 versions.
            raise HandOver(record, f"({name}) {top!r} is a link to another file")
        dtype, stored_shape = dataset.dtype, dataset.shape
        storage = _unplain_storage(dataset)
        if storage:
            raise HandOver(record, f"({name}) stores {top!r} {storage}, which Caffe's HDF5 may not read")
        if dataset.get_type().get_class() not in (h5t.INTEGER, h5t.FLOAT) or not type_is_checked(dtype):
            raise HandOver(record, f"({name}) stores {top!r} as {dtype}, read by Caffe's own layer")
        if len(stored_shape) < 1 or stored_shape[1:] != tuple(shape):
            raise HandOver(record, f"({name}) has rows of {top!r} of shape {stored_shape[1:]}, not {shape}")
        if datasets and stored_shape[0] != datasets[0].shape[0]:
            raise HandOver(record, f"({name}) has datasets of different row counts")
        datasets.append(dataset)
    if datasets[0].shape[0] == 0:
        raise HandOver(record, f"({name}) holds no row")
    return datasets


def _unplain_storage(dataset) -> str | None:
    """How a dataset's storage differs from what every HDF5 library reads, or None.

    h5py brings filters of its own (LZF) that the HDF5 Caffe links does not have: Caffe's read of
    such a dataset fails a CHECK where h5py's succeeds, so the worker must not read it for Caffe.
    """
    from h5py import h5d

    plist = dataset.get_create_plist()
    if plist.get_layout() not in (h5d.CONTIGUOUS, h5d.CHUNKED, h5d.COMPACT):
        return "as a virtual dataset"
    if plist.get_external_count():
        return "in external files"
    for index in range(plist.get_nfilters()):
        code = plist.get_filter(index)[0]
        if code not in PLAIN_FILTERS:
            return f"through filter {code}"
    return None


def _measure(values: np.ndarray, label, top: str, spec: Hdf5RangeSpec, first: int, findings: list) -> None:
    """The scan layer's findings for a chunk of rows of one top, row by row as it makes them."""
    if not all_finite(values):
        flat = values.reshape(values.shape[0], -1)
        for row in np.nonzero(~np.isfinite(flat).all(axis=1))[0]:
            finding = nonfinite_finding(values[row])
            if finding is not None:
                findings.append(_placed(finding, spec, first + int(row), top))
    if label is not None:
        for row in bad_label_rows(values, label["num_classes"], label["ignore_label"]):
            findings.append(_placed(label_finding(values[row], label), spec, first + int(row), top))


def _placed(finding: dict, spec: Hdf5RangeSpec, record: int, top: str) -> dict:
    batch, position = divmod(spec.first_record + record, spec.batch_size)
    finding.update(source=0, record=record, batch=batch, position=position, top=top)
    return finding
