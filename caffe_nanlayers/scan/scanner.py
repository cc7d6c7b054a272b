"""The scan from start to end: the user's net in, the report of every bad record out.

It reads the net (or the solver's net), keeps the data layers of the phase,
checks and counts their datasets, builds the scan net, runs exactly one
pass of every source through real Caffe in a child process, and names each
bad record by its key or file and row. When Caffe aborts on a record it
cannot read, the error also names that record.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from caffe_nanlayers.caffe_net import import_caffe
from caffe_nanlayers.errors import UserError
from caffe_nanlayers.isolate import CaffeStopped, IsolatedWorker
from caffe_nanlayers.proto_io import caffe_pb2, net_to_text, read_net_or_solver
from caffe_nanlayers.scan.databases import format_key
from caffe_nanlayers.scan.encoded_records import missing_decoder_notes
from caffe_nanlayers.scan.guarded_reads import broken_records_error
from caffe_nanlayers.scan.label_ranges import label_ranges
from caffe_nanlayers.scan.report import BadRecord, ScanReport, SourceSummary
from caffe_nanlayers.scan.runner import run_scan_net
from caffe_nanlayers.scan.scan_net import (
    build_scan_net,
    choose_data_layers,
    deterministic_copy,
    is_python_data_layer,
    layers_in_phase,
)
from caffe_nanlayers.scan.sources import Source, open_source
from caffe_nanlayers.scan.workers import scan_in_parallel

DEFAULT_PYTHON_BATCHES = 100


def _phase_name(phase: str) -> str:
    name = str(phase).upper()
    if name not in ("TRAIN", "TEST"):
        raise UserError(f"phase must be TRAIN or TEST, not {phase!r}")
    return name


def _net_state(resolved, phase_name: str):
    """The level and stages a solver gives its train or first test net (None: the net's own)."""
    solver = resolved.solver
    if solver is None:
        return None
    if phase_name == "TRAIN" and solver.HasField("train_state"):
        return solver.train_state
    if phase_name == "TEST" and len(solver.test_state):
        return solver.test_state[0]
    return None


def plan_forwards(sources: list[Source], planned: list[int | None], python_batches: int) -> int:
    """Forward passes for one pass of every source of known size (Python layers alone: ``python_batches``).

    A Python layer given ``--limit`` has a known count but a batch size that only its blob tells:
    the plan then bounds it by one record per batch, and the runner stops as soon as every
    source has given its records.
    """
    known = [math.ceil(n / (s.batch_size or 1)) for s, n in zip(sources, planned) if n is not None]
    return max(known) if known else python_batches


def scan(
    path,
    phase: str = "TRAIN",
    limit: int | None = None,
    python_batches: int = DEFAULT_PYTHON_BATCHES,
    on_progress=None,
    workers: int | None = None,
) -> ScanReport:
    """Scan the datasets read by ``path``'s data layers in ``phase``; progress to ``on_progress``.

    ``workers`` processes split the sources that can be split (``workers``, ``partition``);
    None (the default here; the command defaults to the cores) reads every source through
    Caffe's own data layers in one process.
    """
    phase_name = _phase_name(phase)
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1, not {limit}")
    # The Caffe child imports pycaffe (about a second) while this process reads and checks the datasets;
    # not when workers may scan instead: leaving it would wait for an import that nothing uses.
    with IsolatedWorker(warm_up=(import_caffe,) if workers is None else ()) as worker:
        return _scan(worker, path, phase_name, limit, python_batches, on_progress, workers)


def _scan(worker, path, phase_name, limit, python_batches, on_progress, workers=None) -> ScanReport:
    resolved = read_net_or_solver(path, which="train" if phase_name == "TRAIN" else "test")
    pb2 = caffe_pb2()
    phase_value = pb2.TRAIN if phase_name == "TRAIN" else pb2.TEST
    layers = layers_in_phase(resolved.net, phase_value, _net_state(resolved, phase_name))
    choice = choose_data_layers(layers)
    notes = [f"layer {name!r} skipped: {why}" for name, why in choice.skipped]
    if resolved.note:
        notes.append(resolved.note)
    if not choice.scanned:
        skipped = "; ".join(notes) or "the net has no layer without bottoms"
        raise UserError(f"{path}: no data layer of phase {phase_name} reads a dataset ({skipped})")
    _check_layer_types_available(choice.scanned, path)
    data_tops = {top for layer in choice.scanned for top in layer.top}
    ranges = label_ranges(layers, data_tops)
    for label_range in ranges.values():
        notes.append(f"top {label_range.top!r} checked as a label {label_range.describe()}")

    with tempfile.TemporaryDirectory(prefix="nanlayers-scan-") as workdir:
        # With workers, a database's records are checked by the workers that read them, not first
        # in one pass here (which would bound the scan by one core): see ``Source.survey``.
        sources = [
            open_source(layer, Path(workdir), limit, survey=workers is None, parts=workers or 1)
            for layer in choice.scanned
        ]
        copies = []
        for layer, source in zip(choice.scanned, sources):
            copy, changed = deterministic_copy(layer, pb2, phase_value)
            source.point_caffe_at_view(copy)
            copies.append(copy)
            notes.extend(changed)
            notes.extend(source.notes)
            if source.kind == "Python":
                notes.append(
                    f"layer {layer.name!r} is a Python data layer: its size is unknown, so it is scanned "
                    "batch by batch and its records are named by batch and item"
                )
        planned, forwards, config, scan_net = _plan_pass(sources, copies, ranges, limit, python_batches, pb2)
        parallel = None
        estimated = not all(source.surveyed for source in sources)  # an HDF5 list's rows, not counted
        if workers is not None:
            notes.extend(missing_decoder_notes(choice.scanned, sources))
            parallel = scan_in_parallel(
                sources, copies, planned, config, workers, Path(workdir), pb2, phase_name, on_progress
            )
        if parallel is None:
            if estimated:
                for source in sources:
                    source.survey(parts=workers or 1)
                planned, forwards, config, scan_net = _plan_pass(
                    sources, copies, ranges, limit, python_batches, pb2
                )
            findings, scanned = _run(
                worker, scan_net, phase_name, forwards, sources, planned, path, on_progress
            )
        else:
            findings, scanned, broken, checked_lists = parallel
            _refuse_what_the_workers_refused(sources, broken, checked_lists)
            for index, checked in checked_lists.items():
                sources[index].checked_hdf5(checked["files"])
        bad = _bad_records(findings + _damaged_images(sources, planned), sources)
    summaries = [
        SourceSummary(layer.name, s.kind, s.source, count, s.records)
        for layer, s, count in zip(choice.scanned, sources, scanned)
    ]
    return ScanReport(str(path), phase_name, summaries, bad, notes)


def _plan_pass(sources, copies, ranges, limit, python_batches, pb2):
    """The records of one pass per source, the forward passes reading them, the scan net's config and net."""
    # A Python layer's size is unknown: --limit is its count, else --python-batches decides.
    planned = [limit if s.records is None else min(s.records, limit or s.records) for s in sources]
    forwards = plan_forwards(sources, planned, python_batches)
    config = {
        "sources": [{"batch_size": s.batch_size, "records": n} for s, n in zip(sources, planned)],
        "bottoms": [
            {
                "source": index,
                "top": top,
                "label": ranges[top].as_config() if top in ranges else None,
            }
            for index, layer in enumerate(copies)
            for top in layer.top
        ],
    }
    return planned, forwards, config, build_scan_net(copies, config, pb2)


def _refuse_what_the_workers_refused(sources: list[Source], broken: list[list], checked: dict) -> None:
    """The error of the check before one Caffe pass, for the first source whose workers met one.

    A database's records Caffe cannot read whole, or an HDF5 list's first file that fails its check:
    in source order, as the sources are checked when they are opened for one pass.
    """
    for index, (source, records) in enumerate(zip(sources, broken)):
        if records:
            described = [f"record {at} (key {format_key(key)}) {why}" for at, key, why in records]
            raise broken_records_error(source.label, described)
        if "refused" in checked.get(index, {}):
            raise UserError(checked[index]["refused"])


def _check_layer_types_available(layers, path) -> None:
    available = set(import_caffe().layer_type_list())
    for layer in layers:
        kind = "Python" if is_python_data_layer(layer) else layer.type
        if kind not in available:
            why = " (Caffe builds it only with OpenCV)" if kind == "ImageData" else ""
            raise UserError(f"{path}: layer {layer.name!r}: this Caffe has no {kind} layer{why}")


def _run(worker, scan_net, phase_name, forwards, sources, planned, path, on_progress):
    findings: list[dict] = []
    progress = {"forwards": 0}
    known_total = None if None in planned else sum(planned)

    def receive(message):
        _, forwards_done, records_done, new_findings = message
        progress["forwards"] = forwards_done
        findings.extend(new_findings)
        if on_progress is not None:
            if known_total is not None:
                on_progress(records_done, known_total, "records")
            else:
                on_progress(forwards_done, forwards, "batches")

    try:
        scanned = worker.run(
            run_scan_net, net_to_text(scan_net), phase_name, forwards, on_message=receive, context=str(path)
        )
    except CaffeStopped as exc:
        explanation = _explain_abort(sources, progress["forwards"])
        raise CaffeStopped(f"{exc}; {explanation}" if explanation else str(exc)) from None
    return findings, scanned


def _explain_abort(sources: list[Source], forwards_done: int) -> str | None:
    """Name the record Caffe could not read: the first broken one after the last batch known to be done."""
    for source in sources:
        if source.batch_size:
            start = forwards_done * source.batch_size
            if source.records is not None and start >= source.records:
                continue
            found = source.explain_abort(start)
            if found:
                return found
    return None


def _damaged_images(sources: list[Source], planned: list[int | None]) -> list[dict]:
    """Findings for the images Caffe reads without a word although they are damaged (a JPEG cut short)."""
    return [
        {
            "source": index,
            "record": problem.entry.line - 1,
            "top": source.tops[0],
            "kind": "image",
            "detail": problem.what,
            **dict.fromkeys(("nan", "posinf", "neginf", "size"), 0),
            "min": None,
            "max": None,
        }
        for index, (source, count) in enumerate(zip(sources, planned))
        for problem in source.damaged
        if count is None or problem.entry.line <= count
    ]


def _bad_records(findings: list[dict], sources: list[Source]) -> list[BadRecord]:
    bad = []
    for index, source in enumerate(sources):
        mine = sorted((f for f in findings if f["source"] == index), key=lambda f: f["record"])
        if not mine:
            continue
        for finding, location in zip(mine, source.locate(mine)):
            bad.append(
                BadRecord(
                    source=source.source,
                    kind=source.kind,
                    layer=source.layer,
                    top=finding["top"],
                    record=finding["record"],
                    location=location,
                    problem=finding["kind"],
                    nan=finding["nan"],
                    posinf=finding["posinf"],
                    neginf=finding["neginf"],
                    size=finding["size"],
                    min=finding["min"],
                    max=finding["max"],
                    label=finding.get("label"),
                    num_classes=finding.get("num_classes"),
                    detail=finding.get("detail"),
                )
            )
    return bad
