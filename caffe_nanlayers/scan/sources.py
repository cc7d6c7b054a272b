"""What each data layer of the scan reads: its size in records, how a record is named, how Caffe opens it.

One ``Source`` per scanned layer answers the three questions the scan asks
of a dataset whatever its kind: how many records make one pass, what to
tell the user about the record at position ``i`` of that pass (an LMDB or
LevelDB key, an HDF5 file and row, an image list line, a batch and item),
and which source Caffe should open so that the user's directory is never
written to.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from caffe_nanlayers.errors import UserError
from caffe_nanlayers.scan import databases, guarded_reads, hdf5_lists, image_lists, image_probe
from caffe_nanlayers.scan.scan_net import is_python_data_layer

BACKENDS = {0: "LEVELDB", 1: "LMDB"}  # DataParameter.DB


@dataclasses.dataclass
class Source:
    layer: str
    kind: str  # "LMDB", "LevelDB", "HDF5", "ImageData", "Python"
    source: str  # as written in the prototxt ("" for Python layers)
    records: int | None  # one pass; None when unknown (Python layers)
    batch_size: int | None  # None when the layer decides at run time (Python layers)
    view: Path | None = None  # what Caffe opens instead of the database (LMDB, LevelDB) or the image list
    hdf5_files: list = dataclasses.field(default_factory=list)
    images: list = dataclasses.field(default_factory=list)  # image_lists.ImageEntry, in list order
    image_param: object = None  # the layer's image_data_param, for the probe after an abort
    damaged: list = dataclasses.field(default_factory=list)  # image_lists.ImageProblem Caffe trains on
    tops: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)  # what the user should know about this source
    # A database's records are checked as Caffe will read them (``survey``) when it is opened, or, in a
    # parallel scan, by the workers; ``checked`` is how many: a --limit rounded up to whole batches.
    surveyed: bool = True
    checked: int | None = None
    hdf5_entries: list = dataclasses.field(default_factory=list)  # (line, name): an unchecked list's

    @property
    def label(self) -> str:
        what = f"{self.kind} source {self.source!r}" if self.source else f"{self.kind} layer"
        return f"{what} (layer {self.layer!r})"

    def point_caffe_at_view(self, layer) -> None:
        """Make the scan net's copy of the layer read the private view of the database or image list."""
        if self.view is None:
            return
        if self.kind == "ImageData":
            layer.image_data_param.source = str(self.view)
        else:
            layer.data_param.source = str(self.view)

    def locate(self, findings: list[dict]) -> list[dict]:
        """Where each finding's record is, as plain fields: key, file+row, file+line+image, or batch+item."""
        if self.kind in ("LMDB", "LevelDB"):
            # A worker that read the record gave its key; Caffe's layer gives positions only.
            keys = guarded_reads.keys_at(
                self.view, self._backend, self.label, {f["record"] for f in findings if "key" not in f}
            )
            named = [f["key"] if "key" in f else keys[f["record"]] for f in findings]
            return [{"key": databases.key_text(key)} for key in named]
        if self.kind == "HDF5":
            return [
                dict(zip(("file", "row"), hdf5_lists.locate_row(self.hdf5_files, f["record"])))
                for f in findings
            ]
        if self.kind == "ImageData":
            return [image_location(self.source, self.images[f["record"]]) for f in findings]
        return [{"batch": f["batch"], "item": f["position"]} for f in findings]

    def explain_abort(self, start: int) -> str | None:
        """After Caffe aborted: the first record from ``start`` on that Caffe cannot read, if one is found."""
        if self.kind == "HDF5":
            found = guarded_reads.first_unreadable_hdf5(self.hdf5_files, self.tops, self.label)
        elif self.kind in ("LMDB", "LevelDB"):
            found = guarded_reads.first_broken_record(
                self.view, self._backend, self.label, start, self.batch_size
            )
        elif self.kind == "ImageData":
            entry = image_probe.first_unreadable_image(
                self.images, start, self.batch_size, self.image_param.root_folder, self.image_param
            )
            found = entry and (
                f"{self.source}:{entry.line}: image {entry.path!r} ({entry.resolved}): "
                "OpenCV cannot decode it (Caffe's own reader, run on the list, skips it)"
            )
        else:
            return None
        return f"{self.label}: {found}" if found else None

    def survey(self, parts: int = 1) -> None:
        """Check the records Caffe will read of a source opened with ``survey=False``, as opening does."""
        if self.surveyed:
            return
        if self.kind == "HDF5":
            label = hdf5_label(self.source, self.layer)
            self.checked_hdf5(guarded_reads.inspect_hdf5(self.source, self.tops, label, parts))
        else:
            guarded_reads.survey_database(self.view, self._backend, self.label, self.checked)
        self.surveyed = True

    def checked_hdf5(self, files: list) -> None:
        """The files of an HDF5 list, checked and counted (by the survey, or by the scan's workers)."""
        self.hdf5_files, self.records, self.surveyed = files, sum(f.rows for f in files), True

    @property
    def _backend(self) -> str:
        return "LMDB" if self.kind == "LMDB" else "LEVELDB"


def open_source(
    layer, workdir: Path, limit: int | None = None, survey: bool = True, parts: int = 1
) -> Source:
    """Check the layer's dataset the way Caffe will read it, count one pass, and prepare a view if needed.

    ``survey=False`` leaves a database's records unread (only counted): the caller's workers check
    them, or the caller calls ``Source.survey`` before Caffe reads them. ``parts`` children may
    check an HDF5 list's files at once (``guarded_reads.inspect_hdf5``).
    """
    if layer.type == "Data":
        return _database(layer, workdir, limit, survey)
    if layer.type == "HDF5Data":
        param = layer.hdf5_data_param
        label = hdf5_label(param.source, layer.name)
        if not param.source:
            raise UserError(f"layer {layer.name!r}: hdf5_data_param has no source")
        source = Source(layer.name, "HDF5", param.source, None, param.batch_size, tops=list(layer.top))
        if survey or limit is not None:  # a --limit needs the rows of each file before the scan
            source.surveyed = False
            source.survey(parts)
            return source
        # The scan's workers check each file as they read it; only the first is checked now (its
        # rows' shapes are the tops' shapes), and the list's size is estimated from it until then.
        source.hdf5_entries = hdf5_lists.read_list(param.source, label)
        first = guarded_reads.inspect_hdf5_entries(param.source, source.tops, label, source.hdf5_entries[:1])
        source.hdf5_files, source.surveyed = first, False
        source.records = first[0].rows * len(source.hdf5_entries)
        return source
    if layer.type == "ImageData":
        return _image_list(layer, limit, workdir)
    if is_python_data_layer(layer):
        return Source(layer.name, "Python", "", None, None)
    raise UserError(f"layer {layer.name!r}: {layer.type} layers cannot be scanned")


def hdf5_label(source: str, layer: str) -> str:
    """How messages name an HDF5Data layer's list."""
    return f"HDF5Data source {source!r} (layer {layer!r})"


def check_for_training(layers, workdir: Path) -> None:
    """Check the datasets of a net about to be trained, as the scan does, and keep Caffe out of them.

    For ``locate``, which runs the user's own net: a missing, empty or
    mismatched dataset is one line naming it instead of a Caffe CHECK that
    names nothing, and each LMDB or LevelDB layer is pointed at a private view
    in ``workdir`` (which must outlive the training), so that Caffe's lock
    files never land in the dataset. Nothing is counted, and the optional
    readers (lmdb, plyvel, h5py) are used only where installed.
    """
    for layer in layers:
        if layer.bottom:
            continue
        if layer.type == "Data":
            backend, _, label, view = _database_view(layer, workdir)
            if guarded_reads.is_empty(view, backend, label):
                raise UserError(_empty(label))
            layer.data_param.source = str(view)
        elif layer.type == "HDF5Data":
            param = layer.hdf5_data_param
            if not param.source:
                raise UserError(f"layer {layer.name!r}: hdf5_data_param has no source")
            label = hdf5_label(param.source, layer.name)
            guarded_reads.check_hdf5(param.source, list(layer.top), label)
        elif layer.type == "ImageData":  # its lines only: reading every image is the scan's work
            param = layer.image_data_param
            label = f"ImageData source {param.source!r} (layer {layer.name!r})"
            image_lists.parse_list(param.source, param.root_folder, label)


def _database_view(layer, workdir: Path) -> tuple[str, str, str, Path]:
    """Backend, kind, label for messages, and a private view of a Data layer's checked database."""
    param = layer.data_param
    backend = BACKENDS.get(param.backend, "LEVELDB")
    kind = "LMDB" if backend == "LMDB" else "LevelDB"
    label = f"{kind} source {param.source!r} (layer {layer.name!r})"
    if not param.source:
        raise UserError(f"layer {layer.name!r}: data_param has no source")
    if param.batch_size <= 0:
        raise UserError(f"layer {layer.name!r}: data_param.batch_size must be set (> 0)")
    database = Path(param.source)
    databases.check_database_dir(database, backend, label)
    try:
        view = databases.make_view(
            database, workdir / f"{len(list(workdir.iterdir()))}-{layer.name}", backend
        )
    except ValueError as exc:
        raise UserError(f"{label}: {exc}") from None
    return backend, kind, label, view


def _database(layer, workdir: Path, limit: int | None, survey: bool) -> Source:
    backend, kind, label, view = _database_view(layer, workdir)
    param = layer.data_param
    # Caffe reads whole batches: the records it reads for a --limit are all checked.
    checked = None if limit is None else math.ceil(limit / param.batch_size) * param.batch_size
    if survey:
        records = guarded_reads.survey_database(view, backend, label, checked)
    else:
        records = guarded_reads.count_database(view, backend, label)
    if records == 0:
        raise UserError(_empty(label))
    notes = []
    left_out = databases.left_out_of_view(Path(param.source), backend)
    if left_out:
        notes.append(
            f"{label}: its MANIFEST does not list {', '.join(left_out)}; LevelDB (and Caffe) "
            "do not read them, so their records, if any, are not scanned"
        )
    return Source(
        layer.name,
        kind,
        param.source,
        records,
        param.batch_size,
        view=view,
        notes=notes,
        surveyed=survey,
        checked=checked,
    )


def _empty(label: str) -> str:
    return f"{label}: the database is empty; Caffe cannot fill a batch from it"


def image_location(source: str, entry) -> dict:
    """Where an image record is: the list's line, the image as written and as Caffe opens it."""
    return {"file": source, "line": entry.line, "image": entry.path, "resolved": entry.resolved}


def _image_list(layer, limit: int | None, workdir: Path) -> Source:
    """The parsed list and the damage of the images Caffe will read; in ``workdir``, the list Caffe reads.

    Caffe reads whole batches, and reads a few ahead of the net: with a ``--limit`` it is given a
    private copy of the list holding only the lines of the checked batches, so that it never opens
    an image past them. (Images are opened as ``root_folder`` + path, whatever list names them.)
    """
    param = layer.image_data_param
    label = f"ImageData source {param.source!r} (layer {layer.name!r})"
    entries = image_lists.parse_list(param.source, param.root_folder, label)
    checked = entries if limit is None else entries[: math.ceil(limit / param.batch_size) * param.batch_size]
    damaged = image_lists.check_images(checked, label, param.source)
    view = workdir / f"{len(list(workdir.iterdir()))}-{layer.name}.txt"
    view.write_text("".join(f"{entry.path} {entry.label}\n" for entry in checked), encoding="utf-8")
    return Source(
        layer.name,
        "ImageData",
        param.source,
        len(entries),
        param.batch_size,
        view=view,
        images=entries,
        image_param=param,
        damaged=damaged,
        tops=list(layer.top),
    )
