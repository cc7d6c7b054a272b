"""The parallel scan on encoded Datums: its JSON is Caffe's own single pass's, whatever the workers.

The workers decode JPEGs and PNGs with the OpenCV Caffe links; the
reference is ``--no-fast-path`` (Caffe's Data layer decodes every record in
one process). Bad records are spread over several small ranges: float
records holding NaN among the JPEGs, labels out of range, a mean file with
a NaN. Records Caffe stops on are handed to Caffe, and the answer is its.
"""

from __future__ import annotations

import numpy as np
import pytest
from scan_datasets import float_datum, write_leveldb, write_lmdb
from test_scan_encoded import encode, encoded_datum, smooth, write_mean
from test_scan_workers import CLASSIFIER, scan_json, small_ranges

from caffe_nanlayers.scan import opencv_decode

pytestmark = pytest.mark.caffe


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    return small_ranges(tmp_path, monkeypatch)


def net(transform: str = "", backend: str = "LMDB", source: str = "db") -> str:
    return (
        f'layer {{ name: "data" type: "Data" top: "data" top: "label" include {{ phase: TRAIN }}\n'
        f'  data_param {{ source: "{source}" backend: {backend} batch_size: 4 }}\n'
        f"  transform_param {{ {transform} }} }}\n" + CLASSIFIER
    )


def jpeg_records(count: int, size=(12, 12), sizes=None) -> list[bytes]:
    """JPEG and PNG records; every 11th a float record with NaN or Inf, every 7th a label out of range."""
    values = []
    for index in range(count):
        label = 5 + index % 2 if index % 7 == 6 else index % 5
        height, width = sizes[index % len(sizes)] if sizes else size
        if index % 11 == 3:
            record = np.full((3, height, width), 100, np.float32)
            record[index % 3, height // 2, width // 2] = (np.nan, np.inf, -np.inf)[index % 3]
            values.append(float_datum(record, label=label))
            continue
        pixels = smooth(height, width, 3, index)
        data = encode(pixels, "PNG") if index % 5 == 0 else encode(pixels, "JPEG", subsampling=index % 3)
        values.append(encoded_datum(data, (3, height, width), label))
    return values


def same_as_caffe(capsys, workers=("2",)) -> tuple:
    """--no-fast-path and --workers N answer alike (exit code and JSON); that answer.

    Caffe's own layer also logs an ERROR line per raw record under force_color: stderr may differ.
    """
    expected = scan_json(capsys, "net.prototxt", "--no-fast-path")
    for count in workers:
        assert scan_json(capsys, "net.prototxt", "--workers", count)[:2] == expected[:2], count
    return expected


@pytest.mark.parametrize(
    "transform",
    [
        "",
        "scale: 0.00390625 mean_value: 104 mean_value: 117 mean_value: 123",
        "force_color: true mean_value: 1",
    ],
)
def test_jpegs_with_bad_records_in_every_range(caffe, workdir, capsys, transform):
    write_lmdb(workdir / "db", jpeg_records(45))
    (workdir / "net.prototxt").write_text(net(transform))

    code, report, _ = same_as_caffe(capsys, workers=("1", "2") if not transform else ("2",))

    assert code == 1
    assert report["records_scanned"] == 45
    bad = {entry["record"] for entry in report["bad"]}
    assert bad == {i for i in range(45) if i % 11 == 3 or i % 7 == 6}


def test_centre_crop_of_jpegs_of_several_sizes_in_leveldb(caffe, workdir, capsys):
    sizes = [(12, 12), (9, 14), (15, 10), (11, 11)]
    write_leveldb(workdir / "db", jpeg_records(36, sizes=sizes))
    (workdir / "net.prototxt").write_text(net("crop_size: 8 mean_value: 120", backend="LEVELDB"))

    code, report, _ = same_as_caffe(capsys)

    assert code == 1 and report["records_scanned"] == 36


def test_a_mean_file_holding_nan_makes_every_jpeg_bad(caffe, workdir, capsys):
    mean = np.full((3, 12, 12), 90, np.float32)
    mean[2, 5, 5] = np.nan
    write_mean(workdir / "mean.binaryproto", mean)
    write_lmdb(workdir / "db", jpeg_records(24))
    (workdir / "net.prototxt").write_text(net("mean_file: 'mean.binaryproto'"))

    code, report, _ = same_as_caffe(capsys)

    assert code == 1 and {entry["record"] for entry in report["bad"]} == set(range(24))


@pytest.mark.parametrize(
    "planted, transform",
    [
        (b"\xff\xd8\xff\xe0 a JPEG cut short", ""),
        (encode((smooth(12, 12, 1, 0).astype(np.uint16) * 257), "PNG"), ""),  # 16-bit: Caffe CHECKs the depth
        (None, "mean_file: 'mean.binaryproto' crop_size: 8"),  # this Caffe's image path CHECKs the crop
    ],
)
def test_records_caffe_stops_on_get_caffes_own_answer(caffe, workdir, capsys, planted, transform):
    write_mean(workdir / "mean.binaryproto", np.full((3, 12, 12), 90, np.float32))
    values = jpeg_records(40)
    if planted is not None:
        values[26] = encoded_datum(planted, (3, 12, 12), 1)
    write_lmdb(workdir / "db", values)
    (workdir / "net.prototxt").write_text(net(transform))

    code, report, err = same_as_caffe(capsys)

    assert code == 2 and report is None and err


def test_without_the_decoder_caffe_reads_the_jpegs_and_a_note_says_why(caffe, workdir, capsys, monkeypatch):
    write_lmdb(workdir / "db", jpeg_records(30))
    (workdir / "net.prototxt").write_text(net())
    _, reference, _ = scan_json(capsys, "net.prototxt", "--no-fast-path")
    missing = workdir / "no-decoder.so"
    monkeypatch.setenv(opencv_decode.LIBRARY_ENV, str(missing))  # the workers are fresh processes

    code, report, _ = scan_json(capsys, "net.prototxt", "--workers", "2")

    assert code == 1
    notes = [n for n in report["notes"] if n not in reference["notes"]]
    assert len(notes) == 1 and "encoded images" in notes[0] and str(missing) in notes[0]
    assert {**report, "notes": reference["notes"]} == reference


def test_encoded_records_without_a_shape_in_their_header_are_read_as_caffe_reads_them(caffe, workdir, capsys):
    """Caffe takes an encoded Datum's shape from the image: a header left at 0x0x0 is no error."""
    values = [
        encoded_datum(encode(smooth(12, 12, 3, i), "JPEG"), (0, 0, 0), 7 if i == 13 else i % 5)
        for i in range(24)
    ]
    write_lmdb(workdir / "db", values)
    (workdir / "net.prototxt").write_text(net())

    code, report, err = same_as_caffe(capsys)

    assert (code, [entry["record"] for entry in report["bad"]]) == (1, [13]), err
