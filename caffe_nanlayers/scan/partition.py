"""Split a scan's sources into the ranges its workers read: by key range (LMDB, LevelDB) or by file (HDF5).

Every range starts at the first record of a batch, because Caffe shapes
each batch after its first record and a worker must judge a record against
the same first record Caffe would. A Data layer's range is read by the fast
path (``fast_path``) from its first key; an HDF5 list is split into runs of
whole files, each read with h5py (``hdf5_range``) or, for what only Caffe is
trusted to read (a stored type whose conversion was not held against
Caffe, a transform_param), by Caffe's own HDF5Data layer from a list of its
own (Caffe cannot start inside a file). A range knows where it starts in its
source's pass, so the parent turns each worker's positions back into the
pass's, and the report is the one a single process would write.

Which layers can be split, and how, is decided here; ``workers`` runs the
tasks.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from caffe_nanlayers.proto_io import net_to_text
from caffe_nanlayers.scan import databases, encoded_records, fast_path, guarded_reads, hdf5_range
from caffe_nanlayers.scan.scan_net import build_scan_net

# Below this many records a range is not worth a worker (a fresh interpreter, a few tenths of a second).
MIN_RECORDS_PER_TASK = 2048
# The same for raw uint8 records whose transform is proven finite: read at about 100,000 a second a core.
MIN_PROVEN_RECORDS_PER_TASK = 32768


@dataclasses.dataclass(frozen=True)
class Task:
    """One worker's job: ``count`` records of source ``source`` from position ``start`` of its pass."""

    source: int
    start: int
    count: int
    # "fast": fast_path.scan_range(spec); "hdf5": hdf5_range.scan_range(spec);
    # "caffe": runner.run_scan_net(net text, phase, forwards)
    kind: str
    args: tuple
    label: str = ""  # the source, as error messages name it
    # A run of an HDF5 list whose rows were not counted before the scan: ``start`` and ``count``
    # are known once the workers have read (``workers.run_tasks``); ``files`` is the run's files.
    files: range | None = None

    def describe(self) -> str:
        if self.files is not None:
            return f"{self.label}: files {self.files.start + 1} to {self.files.stop} of the list"
        return f"{self.label}: records {self.start} to {self.start + self.count - 1}"


def batch_ranges(total: int, batch_size: int, parts: int, min_records: int) -> list[tuple[int, int]]:
    """(start, count) of at most ``parts`` consecutive ranges of ``total`` records, each starting a batch."""
    batches = math.ceil(total / batch_size)
    parts = max(1, min(parts, batches, total // max(1, min_records)))
    bounds = [batches * i // parts for i in range(parts + 1)]
    return [
        (first * batch_size, min(total, last * batch_size) - first * batch_size)
        for first, last in zip(bounds, bounds[1:])
        if last > first
    ]


def file_runs(rows: list[int], total: int, parts: int, min_records: int) -> list[tuple[int, int, int]]:
    """(first file, end file, first record) of at most ``parts`` runs of whole files, balanced by rows.

    Only the first ``total`` records count (``--limit``): files past them are left out.
    """
    parts = max(1, min(parts, total // max(1, min_records)))
    runs, first_file, first_record, seen = [], 0, 0, 0
    for index, count in enumerate(rows):
        if seen >= total:
            break
        seen += count
        wanted_end = total * (len(runs) + 1) / parts
        if seen >= wanted_end or seen >= total or index == len(rows) - 1:
            runs.append((first_file, index + 1, first_record))
            first_file, first_record = index + 1, seen
    return runs


def why_not_split(layer, source, pb2) -> str | None:
    """Why this source must be read in one pass by Caffe's own layer, or None if it can be split."""
    if source.kind in ("LMDB", "LevelDB"):
        return fast_path.unsupported(layer) or _unreadable_mean_file(layer, pb2)
    if source.kind == "HDF5":
        if not _same_row_shapes(source.hdf5_files, list(layer.top)):
            # Caffe shapes its tops after the first file it opens: a worker starting at another file
            # would see other shapes than one process reading the list from its start.
            return "its files hold rows of different shapes"
        return None
    return f"{source.kind} sources are read by Caffe's own layer in one process"


def plan(sources, copies, planned, label_of, workers: int, workdir: Path, pb2, phase_name: str):
    """The tasks that scan every source in ``workers`` processes, or None when one source cannot be split.

    ``copies`` are the deterministic copies of the data layers (pointed at their views), ``planned``
    the records to scan per source, ``label_of`` the label configuration of each checked top.
    """
    if any(why_not_split(layer, source, pb2) for layer, source in zip(copies, sources)):
        return None
    tasks = []
    for index, (layer, source, count) in enumerate(zip(copies, sources, planned)):
        if source.kind == "HDF5" and not source.surveyed:
            runs = _unsurveyed_hdf5_tasks(index, layer, source, label_of, workers)
            if runs is not None:
                tasks.extend(runs)
                continue
            # Caffe's own layer reads the runs: their rows are needed first.
            source.survey(parts=workers)
            count = source.records
        if source.kind == "HDF5":
            tasks.extend(
                _hdf5_tasks(index, layer, source, count, label_of, workers, workdir, pb2, phase_name)
            )
        else:
            tasks.extend(_database_tasks(index, layer, source, count, label_of, workers, workdir, pb2))
    return tasks


def _database_tasks(index, layer, source, count, label_of, workers, workdir, pb2) -> list[Task]:
    backend = "LMDB" if source.kind == "LMDB" else "LEVELDB"
    ranges = batch_ranges(count, source.batch_size, workers, MIN_RECORDS_PER_TASK)
    keys, first_value = guarded_reads.range_starts(
        source.view, backend, source.label, [start for start, _ in ranges]
    )
    # Records Caffe reads past the pass (a --limit rounded up to whole batches) are only checked
    # whole, as the survey of the records does, by the last range.
    past = 0 if source.surveyed else _checked(source) - count
    first = pb2.Datum()
    try:
        first.ParseFromString(first_value)
    except Exception:
        pass  # the worker that meets it hands the pass to Caffe
    tops = tuple((top, label_of.get(top)) for top in layer.top)
    transform = fast_path.Transform.of(layer.transform_param, pb2)
    decoding = encoded_records.Decoding.of(layer.transform_param)
    if _proven_raw(first, transform):
        ranges = coalesce(ranges, count // MIN_PROVEN_RECORDS_PER_TASK)
    tasks = []
    for number, (start, length) in enumerate(ranges):
        # LevelDB allows one process at a time in a directory: each worker has a view of its own.
        view = databases.make_view(Path(source.source), workdir / f"{index}-range{number}", backend)
        spec = fast_path.RangeSpec(
            view=str(view),
            backend=backend,
            start_key=keys[start],
            count=length,
            check_past=past if number == len(ranges) - 1 else 0,
            survey=not source.surveyed,
            batch_size=source.batch_size,
            first_channels=encoded_records.first_channels(first, decoding),
            transform=transform,
            tops=tops,
            decoding=decoding,
        )
        tasks.append(Task(index, start, length, "fast", (spec,), source.label))
    return tasks


def coalesce(ranges: list[tuple[int, int]], parts: int) -> list[tuple[int, int]]:
    """At most ``parts`` (at least one) ranges, each a run of consecutive ``ranges``, balanced by count."""
    parts = max(1, min(parts, len(ranges)))
    bounds = [len(ranges) * i // parts for i in range(parts + 1)]
    return [
        (ranges[first][0], sum(count for _, count in ranges[first:last]))
        for first, last in zip(bounds, bounds[1:])
    ]


def _proven_raw(first, transform) -> bool:
    """Whether the first record is raw uint8 of a shape whose transform is proven finite (read fast)."""
    shape = (first.channels, first.height, first.width)
    if first.encoded or not first.data or min(shape) <= 0 or transform.refusal(shape, shape[0]):
        return False
    return transform.uint8_always_finite(shape)


def _checked(source) -> int:
    """The records of a database Caffe reads for the scan: a --limit rounded up to batches, or all."""
    return source.records if source.checked is None else min(source.records, source.checked)


def _unreadable_mean_file(layer, pb2) -> str | None:
    """Caffe reads the mean file or stops: a file the fast path cannot read is Caffe's to report."""
    mean_file = layer.transform_param.mean_file
    if not mean_file:
        return None
    try:
        fast_path.read_mean_file(mean_file, pb2)
    except Exception as exc:  # missing, not a BlobProto, another shape: Caffe's own words are wanted
        return f"its mean_file {mean_file!r} is not one the fast path reads ({exc})"
    return None


def _same_row_shapes(files, tops: list[str]) -> bool:
    # The survey of the list (hdf5_lists.inspect_files) noted each file's row shapes: no second pass.
    return len({tuple(shape for shape, _ in entry.layout) for entry in files}) <= 1


def _why_caffe_reads(layer, files) -> str | None:
    """Why Caffe's own HDF5Data layer, not h5py in a worker, must read this list's runs; None if h5py may."""
    if layer.HasField("transform_param"):
        return "it sets a transform_param, which Caffe refuses for HDF5Data"
    for entry in files:
        for shape, dtype in entry.layout:
            if not hdf5_range.type_is_checked(dtype):
                return (
                    f"{entry.name!r} stores {dtype}, whose conversion to float only Caffe's layer is held to"
                )
            if 0 in shape:
                return f"{entry.name!r} has empty rows"
    return None


def _unsurveyed_hdf5_tasks(index, layer, source, label_of, workers) -> list[Task] | None:
    """Runs of an HDF5 list whose files were not checked before the scan: each worker checks its own.

    The runs are balanced by files (their rows are counted as they are read), each at least as many
    files as the first file's rows make a task worth a worker. None when Caffe's own layer must read
    the list.
    """
    first = source.hdf5_files[0]
    if _why_caffe_reads(layer, [first]) is not None:
        return None
    files = len(source.hdf5_entries)
    runs = file_runs([1] * files, files, workers, max(1, MIN_RECORDS_PER_TASK // max(1, first.rows)))
    tops = tuple((top, label_of.get(top)) for top in layer.top)
    row_shapes = tuple(shape for shape, _ in first.layout)
    tasks = []
    for first_file, end_file, _ in runs:
        entries = tuple(source.hdf5_entries[first_file:end_file])
        spec = hdf5_range.Hdf5RangeSpec(
            files=tuple(str(Path(name).absolute()) for _, name in entries),
            count=None,
            batch_size=source.batch_size,
            first_record=0,
            tops=tops,
            row_shapes=row_shapes,
            source=source.source,
            entries=entries,
        )
        run = range(first_file, end_file)
        tasks.append(Task(index, 0, 0, "hdf5", (spec,), source.label, files=run))
    return tasks


def _hdf5_tasks(index, layer, source, count, label_of, workers, workdir, pb2, phase_name) -> list[Task]:
    rows = [entry.rows for entry in source.hdf5_files]
    runs = file_runs(rows, count, workers, MIN_RECORDS_PER_TASK)
    if _why_caffe_reads(layer, source.hdf5_files) is None:
        tops = tuple((top, label_of.get(top)) for top in layer.top)
        row_shapes = tuple(shape for shape, _ in source.hdf5_files[0].layout)
        tasks = []
        for first_file, end_file, start in runs:
            spec = hdf5_range.Hdf5RangeSpec(
                files=tuple(str(Path(e.name).absolute()) for e in source.hdf5_files[first_file:end_file]),
                count=min(sum(rows[first_file:end_file]), count - start),
                batch_size=source.batch_size,
                first_record=start,
                tops=tops,
                row_shapes=row_shapes,
            )
            tasks.append(Task(index, start, spec.count, "hdf5", (spec,), source.label))
        return tasks
    tasks = []
    for number, (first_file, end_file, start) in enumerate(runs):
        names = [entry.name for entry in source.hdf5_files[first_file:end_file]]
        length = min(sum(rows[first_file:end_file]), count - start)
        listing = workdir / f"{index}-files{number}.txt"
        listing.write_text("".join(f"{Path(name).absolute()}\n" for name in names))
        copy = pb2.LayerParameter()
        copy.CopyFrom(layer)
        copy.hdf5_data_param.source = str(listing)
        config = {
            "sources": [{"batch_size": source.batch_size, "records": length}],
            "bottoms": [{"source": 0, "top": top, "label": label_of.get(top)} for top in copy.top],
        }
        net_text = net_to_text(build_scan_net([copy], config, pb2))
        forwards = math.ceil(length / source.batch_size)
        tasks.append(Task(index, start, length, "caffe", (net_text, phase_name, forwards), source.label))
    return tasks
