"""What a scan found, as plain values, and the text and JSON forms of it.

A ``BadRecord`` is everything a user needs to find and fix one record: the
source, where the record is in it (key, or file and row, ...), the top it
was read into, the counts of NaN, +Inf and -Inf and the finite min/max, or
the label that is no class index. The formatters only print these values.
"""

from __future__ import annotations

import dataclasses
import json

LOCATION_FIELDS = ("key", "file", "row", "line", "image", "resolved", "batch", "item")


@dataclasses.dataclass(frozen=True)
class BadRecord:
    source: str  # as written in the prototxt
    kind: str  # the source's kind: LMDB, LevelDB, HDF5, ImageData, Python
    layer: str
    top: str
    record: int  # position in the scan's single pass of the source
    location: dict  # key | file+row | file+line+image+resolved | batch+item
    problem: str  # "nonfinite" | "label" | "image" (an image Caffe reads although it is damaged)
    nan: int
    posinf: int
    neginf: int
    size: int
    min: float | None  # of the finite values of the record's top
    max: float | None
    label: float | None = None  # the first bad label value, for problem "label"
    num_classes: int | None = None
    detail: str | None = None  # what is wrong with the image, for problem "image"

    def where(self) -> str:
        loc = self.location
        if "key" in loc:
            return f"{self.source}: key {loc['key']!r}"
        if "row" in loc:
            return f"{loc['file']}: row {loc['row']}"
        if "line" in loc:
            resolved = f" ({loc['resolved']})" if loc.get("resolved", loc["image"]) != loc["image"] else ""
            return f"{loc['file']}:{loc['line']}: {loc['image']}{resolved}"
        return f"layer {self.layer!r}: batch {loc['batch']} item {loc['item']}"

    def describe(self) -> str:
        if self.problem == "image":
            return f"the image {self.detail}"
        if self.problem == "label":
            if self.num_classes is not None and self.label >= self.num_classes:
                why = f"is >= num_output {self.num_classes} of the classifier"
            elif self.label < 0:
                why = "is negative"
            else:
                why = "is not an integer"
            return f"label {self.label:g} {why}"
        finite = "no finite values" if self.min is None else f"finite min {self.min:.6g}, max {self.max:.6g}"
        count = self.nan + self.posinf + self.neginf
        return (
            f"{self.nan} NaN, {self.posinf} +Inf, {self.neginf} -Inf "
            f"({count} of {self.size} values), {finite}"
        )

    def line(self) -> str:
        return f"{self.where()}: top {self.top!r}: {self.describe()}"

    def as_dict(self) -> dict:
        out = {"source": self.source, "kind": self.kind, "layer": self.layer}
        out.update({name: self.location[name] for name in LOCATION_FIELDS if name in self.location})
        out.update(
            {
                "record": self.record,
                "top": self.top,
                "problem": self.problem,
                "nan": self.nan,
                "posinf": self.posinf,
                "neginf": self.neginf,
                "size": self.size,
                "min": self.min,
                "max": self.max,
            }
        )
        if self.problem == "label":
            out.update({"label": self.label, "num_classes": self.num_classes})
        out["message"] = self.describe()
        return out


@dataclasses.dataclass(frozen=True)
class SourceSummary:
    layer: str
    kind: str
    source: str
    records: int  # records scanned (one pass, or up to --limit)
    total: int | None  # records in one pass; None when unknown


@dataclasses.dataclass(frozen=True)
class ScanReport:
    net: str
    phase: str
    sources: list[SourceSummary]
    bad: list[BadRecord]
    notes: list[str]  # what the scan changed or skipped, and why

    @property
    def records_scanned(self) -> int:
        return sum(s.records for s in self.sources)

    @property
    def bad_records(self) -> int:
        """Distinct records with a problem (one record may have several bad tops)."""
        return len({(b.layer, b.record) for b in self.bad})

    def as_dict(self) -> dict:
        return {
            "net": self.net,
            "phase": self.phase,
            "records_scanned": self.records_scanned,
            "bad_records": self.bad_records,
            "bad": [b.as_dict() for b in self.bad],
            "sources": [dataclasses.asdict(s) for s in self.sources],
            "notes": list(self.notes),
        }


def format_json(report: ScanReport) -> str:
    return json.dumps(report.as_dict(), indent=2) + "\n"


def format_text(report: ScanReport) -> str:
    lines = [b.line() for b in report.bad]
    lines.extend(f"note: {note}" for note in report.notes)
    for s in report.sources:
        of = f" of {s.total}" if s.total is not None and s.total != s.records else ""
        lines.append(
            f"scanned {s.records}{of} records of {s.kind} source {s.source or s.layer!r} ({s.layer})"
        )
    verdict = (
        f"{report.bad_records} bad record{'s' if report.bad_records != 1 else ''} "
        f"in {report.records_scanned} scanned"
        if report.bad
        else f"all {report.records_scanned} records clean"
    )
    lines.append(verdict)
    return "\n".join(lines) + "\n"
