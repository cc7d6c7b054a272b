"""Split a scan's sources into the ranges its workers read: by key range (LMDB, LevelDB) or by file (HDF5).

Every range starts at the first record of a batch, because Caffe shapes
each batch after its first record and a worker must judge a record against
the same first record Caffe would. A Data layer's range is read by the fast
path (``fast_path``) from its first key; an HDF5 list is split into runs of
whole files, each read by Caffe's own HDF5Data layer from a list of its own
(Caffe cannot start inside a file). A range knows where it starts in its
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
from caffe_nanlayers.scan import databases, encoded_records, fast_path
from caffe_nanlayers.scan.scan_net import build_scan_net

# Below this many records a range is not worth a worker (each imports pycaffe, about a second).
MIN_RECORDS_PER_TASK = 2048


@dataclasses.dataclass(frozen=True)
class Task:
    """One worker's job: ``count`` records of source ``source`` from position ``start`` of its pass."""

    source: int
    start: int
    count: int
    kind: str  # "fast": fast_path.scan_range(spec); "caffe": runner.run_scan_net(net text, phase, forwards)
    args: tuple
    label: str = ""  # the source, as error messages name it

    def describe(self) -> str:
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
    keys = databases.keys_at(source.view, backend, source.label, [start for start, _ in ranges])
    first_value = next(databases.iter_items(source.view, backend, source.label), (None, b""))[1]
    first = pb2.Datum()
    try:
        first.ParseFromString(first_value)
    except Exception:
        pass  # the worker that meets it hands the pass to Caffe
    tops = tuple((top, label_of.get(top)) for top in layer.top)
    transform = fast_path.Transform.of(layer.transform_param, pb2)
    decoding = encoded_records.Decoding.of(layer.transform_param)
    tasks = []
    for number, (start, length) in enumerate(ranges):
        # LevelDB allows one process at a time in a directory: each worker has a view of its own.
        view = databases.make_view(Path(source.source), workdir / f"{index}-range{number}", backend)
        spec = fast_path.RangeSpec(
            view=str(view),
            backend=backend,
            start_key=keys[start],
            count=length,
            batch_size=source.batch_size,
            first_channels=encoded_records.first_channels(first, decoding),
            transform=transform,
            tops=tops,
            decoding=decoding,
        )
        tasks.append(Task(index, start, length, "fast", (spec,), source.label))
    return tasks


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
    import h5py

    shapes = set()
    for entry in files:
        with h5py.File(entry.name, "r") as handle:
            shapes.add(tuple(handle[top].shape[1:] for top in tops))
    return len(shapes) <= 1


def _hdf5_tasks(index, layer, source, count, label_of, workers, workdir, pb2, phase_name) -> list[Task]:
    rows = [entry.rows for entry in source.hdf5_files]
    runs = file_runs(rows, count, workers, MIN_RECORDS_PER_TASK)
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
