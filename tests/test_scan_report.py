"""report: a bad record in text and JSON carries source, key or file+row, top, counts and min/max."""

from __future__ import annotations

import json

from caffe_nanlayers.scan.report import BadRecord, ScanReport, SourceSummary, format_json, format_text


def record(**changes):
    fields = dict(
        source="train_lmdb",
        kind="LMDB",
        layer="data",
        top="data",
        record=7,
        location={"key": "00000007"},
        problem="nonfinite",
        nan=2,
        posinf=1,
        neginf=0,
        size=12,
        min=-0.5,
        max=3.0,
    )
    fields.update(changes)
    return BadRecord(**fields)


def report(bad):
    return ScanReport("net.prototxt", "TRAIN", [SourceSummary("data", "LMDB", "train_lmdb", 10, 10)], bad, [])


def test_text_lines_name_where_what_and_how_much():
    text = format_text(
        report(
            [
                record(),
                record(
                    top="label",
                    problem="label",
                    label=12.0,
                    num_classes=10,
                    nan=0,
                    posinf=0,
                    size=1,
                    min=12.0,
                    max=12.0,
                ),
            ]
        )
    )
    assert text.splitlines() == [
        "train_lmdb: key '00000007': top 'data': 2 NaN, 1 +Inf, 0 -Inf (3 of 12 values), "
        "finite min -0.5, max 3",
        "train_lmdb: key '00000007': top 'label': label 12 is >= num_output 10 of the classifier",
        "scanned 10 records of LMDB source 'train_lmdb' (data)",
        "1 bad record in 10 scanned",
    ]


def test_hdf5_records_are_named_by_file_and_row_and_clean_scans_say_so():
    hdf5 = record(source="list.txt", kind="HDF5", location={"file": "b.h5", "row": 3}, min=None, max=None)
    assert hdf5.line() == "b.h5: row 3: top 'data': 2 NaN, 1 +Inf, 0 -Inf (3 of 12 values), no finite values"
    assert format_text(report([])).splitlines()[-1] == "all 10 records clean"


def test_json_has_records_scanned_and_bad_with_the_issue_fields():
    data = json.loads(format_json(report([record(), record(location={"file": "b.h5", "row": 3}, record=8)])))
    assert data["records_scanned"] == 10 and data["bad_records"] == 2
    first, second = data["bad"]
    assert {k: first[k] for k in ("source", "key", "top", "nan", "posinf", "neginf", "min", "max")} == {
        "source": "train_lmdb",
        "key": "00000007",
        "top": "data",
        "nan": 2,
        "posinf": 1,
        "neginf": 0,
        "min": -0.5,
        "max": 3.0,
    }
    assert (second["file"], second["row"]) == ("b.h5", 3) and "key" not in second
    assert data["sources"] == [
        {"layer": "data", "kind": "LMDB", "source": "train_lmdb", "records": 10, "total": 10}
    ]
