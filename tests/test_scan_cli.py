"""End to end: ``caffe-nan scan`` on datasets written here, run through real Caffe.

Each scan starts one Caffe child process (about a second), so each test
plants several kinds of trouble in one dataset and checks them all at once:
every planted record is named with its exact key or file and row, and
nothing else is.
"""

from __future__ import annotations

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
from conftest import REPO
from scan_datasets import (
    float_datum,
    float_records,
    snapshot,
    uint8_datum,
    write_leveldb,
    write_lmdb,
)

from caffe_nanlayers.commands.scan import main
from caffe_nanlayers.proto_io import caffe_pb2

pytestmark = pytest.mark.caffe

CLASSIFIER = """
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 4 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def strict_json(text: str):
    """JSON as other languages read it: NaN and Infinity are not JSON."""

    def refuse(constant):
        raise ValueError(f"{constant} in the JSON output")

    return json.loads(text, parse_constant=refuse)


def run_scan(capsys, *argv):
    code = main([*argv, "--json", "-q"])
    captured = capsys.readouterr()
    return code, (strict_json(captured.out) if captured.out else None), captured.err


def found(report) -> set:
    """(where, top, problem) of every bad record, where being the key or (file, row)."""
    return {(b.get("key") or (b.get("file"), b.get("row")), b["top"], b["problem"]) for b in report["bad"]}


def data_layer(source: str, batch_size: int, backend="LMDB", transform: str = "", extra: str = "") -> str:
    return (
        f'layer {{ name: "data" type: "Data" top: "data" top: "label" {extra}\n'
        f'  data_param {{ source: "{source}" backend: {backend} batch_size: {batch_size} }}\n'
        f"  {transform} }}\n"
    )


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run in tmp_path: Caffe resolves sources against the working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_float_lmdb_every_planted_record_once_and_nothing_else(caffe, workdir, capsys):
    # 10 records, batch 4: the third batch wraps around to records 0 and 1, which must not count twice.
    planted = {
        0: [(0, np.nan)],
        3: [(1, np.inf), (2, -np.inf)],
        4: [(17, np.nan), (16, np.nan)],
        9: [(5, -np.inf)],
    }
    records = float_records(10, planted=planted)
    labels = [0, 1, 2, 3, 4, 0, -1, 1, 2, 3]  # 4 >= num_output, -1 negative
    write_lmdb(workdir / "train_lmdb", [float_datum(r, label=y) for r, y in zip(records, labels)])
    (workdir / "train_lmdb" / "lock.mdb").unlink()
    before = snapshot(workdir / "train_lmdb")
    (workdir / "net.prototxt").write_text(
        data_layer("train_lmdb", 4, "LMDB", "transform_param { mirror: true }", "include { phase: TRAIN }")
        + CLASSIFIER
    )

    code, report, _ = run_scan(capsys, "net.prototxt")

    assert code == 1
    assert report["records_scanned"] == 10
    assert found(report) == {
        ("00000000", "data", "nonfinite"),
        ("00000003", "data", "nonfinite"),
        ("00000004", "data", "nonfinite"),
        ("00000009", "data", "nonfinite"),
        ("00000004", "label", "label"),
        ("00000006", "label", "label"),
    }
    by_key = {(b["key"], b["top"]): b for b in report["bad"]}
    assert [by_key["00000003", "data"][k] for k in ("nan", "posinf", "neginf")] == [0, 1, 1]
    assert [by_key["00000004", "data"][k] for k in ("nan", "posinf", "neginf")] == [2, 0, 0]
    clean = records[3].reshape(-1)[3:]
    assert by_key["00000003", "data"]["min"] == pytest.approx(float(clean.min()))
    assert by_key["00000003", "data"]["max"] == pytest.approx(float(clean.max()))
    assert by_key["00000004", "label"]["label"] == 4
    assert by_key["00000006", "label"]["label"] == -1
    assert all(b["source"] == "train_lmdb" for b in report["bad"])
    assert report["bad_records"] == 5
    assert any("mirror turned off" in note for note in report["notes"])
    # Read-only: no lock.mdb created, nothing changed.
    assert snapshot(workdir / "train_lmdb") == before


def test_uint8_lmdb_is_scaled_as_in_training_and_float_records_among_them_are_checked(caffe, workdir, capsys):
    rng = np.random.default_rng(1)
    values = [uint8_datum(rng.integers(0, 256, (3, 4, 4)), label=1) for _ in range(7)]
    bad = np.full((3, 4, 4), 128.0, dtype=np.float32)
    bad[0, 0, 0] = np.nan
    values[5] = float_datum(bad, label=1)  # a converter wrote one record as float_data
    write_lmdb(workdir / "u8_lmdb", values)
    (workdir / "net.prototxt").write_text(
        data_layer("u8_lmdb", 3, transform="transform_param { scale: 0.00390625 mean_value: 0 }")
    )

    code, report, _ = run_scan(capsys, "net.prototxt")

    assert code == 1
    assert found(report) == {("00000005", "data", "nonfinite")}
    (record,) = report["bad"]
    assert (record["nan"], record["min"], record["max"]) == (1, 0.5, 0.5)  # 128 * 1/256: the scale applied
    assert report["records_scanned"] == 7


def test_hdf5_list_of_two_files_names_file_and_row(caffe, workdir, capsys):
    data_a = np.zeros((5, 2, 3), np.float32)
    data_b = np.ones((4, 2, 3), np.float32)
    data_a[2, 1, 1] = np.nan
    data_b[0, 0, 0] = np.inf
    data_b[3, :, :] = -np.inf
    label_a = np.array([0, 1, 2, 3, 0], np.float32)
    label_b = np.array([1, 2.5, 3, 0], np.float32)  # 2.5 is no class index
    for name, data, label in (("a.h5", data_a, label_a), ("b.h5", data_b, label_b)):
        with h5py.File(workdir / name, "w") as f:
            f["data"], f["label"] = data, label
    (workdir / "list.txt").write_text("a.h5\nb.h5\n")
    before = snapshot(workdir)
    (workdir / "net.prototxt").write_text(
        'layer { name: "h5" type: "HDF5Data" top: "data" top: "label"\n'
        '  hdf5_data_param { source: "list.txt" batch_size: 4 shuffle: true } }\n' + CLASSIFIER
    )
    before = {k: v for k, v in snapshot(workdir).items() if k != "net.prototxt"}

    code, report, _ = run_scan(capsys, "net.prototxt")

    assert code == 1
    assert report["records_scanned"] == 9
    assert found(report) == {
        (("a.h5", 2), "data", "nonfinite"),
        (("b.h5", 0), "data", "nonfinite"),
        (("b.h5", 3), "data", "nonfinite"),
        (("b.h5", 1), "label", "label"),
    }
    row3 = next(b for b in report["bad"] if b.get("row") == 3)
    assert (row3["neginf"], row3["min"], row3["max"]) == (6, None, None)
    assert {k: v for k, v in snapshot(workdir).items() if k != "net.prototxt"} == before


def test_non_finite_labels_are_non_finite_findings_in_valid_json(caffe, workdir, capsys):
    with h5py.File(workdir / "a.h5", "w") as f:
        f["data"] = np.zeros((4, 3), np.float32)
        f["label"] = np.array([1, np.nan, np.inf, -np.inf], np.float32)
    (workdir / "list.txt").write_text("a.h5\n")
    (workdir / "net.prototxt").write_text(
        'layer { name: "h5" type: "HDF5Data" top: "data" top: "label"\n'
        '  hdf5_data_param { source: "list.txt" batch_size: 4 } }\n' + CLASSIFIER
    )

    code, report, err = run_scan(capsys, "net.prototxt")

    assert code == 1, err
    assert found(report) == {(("a.h5", row), "label", "nonfinite") for row in (1, 2, 3)}
    assert [(b["nan"], b["posinf"], b["neginf"], b["min"]) for b in report["bad"]] == [
        (1, 0, 0, None),
        (0, 1, 0, None),
        (0, 0, 1, None),
    ]


def test_leveldb_is_read_through_a_private_view(caffe, workdir, capsys):
    records = float_records(6, planted={2: [(3, np.nan)]})
    write_leveldb(workdir / "train_leveldb", [float_datum(r) for r in records])
    before = snapshot(workdir / "train_leveldb")
    (workdir / "net.prototxt").write_text(data_layer("train_leveldb", 4, backend="LEVELDB"))

    code, report, _ = run_scan(capsys, "net.prototxt")

    assert code == 1
    assert found(report) == {("00000002", "data", "nonfinite")}
    assert snapshot(workdir / "train_leveldb") == before


def test_limit_scans_the_first_records_only(caffe, workdir, capsys):
    records = float_records(12, planted={1: [(0, np.nan)], 8: [(0, np.nan)]})
    write_lmdb(workdir / "db", [float_datum(r) for r in records])
    (workdir / "net.prototxt").write_text(data_layer("db", 4))

    code, report, _ = run_scan(capsys, "net.prototxt", "--limit", "5")

    assert code == 1
    assert report["records_scanned"] == 5
    assert found(report) == {("00000001", "data", "nonfinite")}


def test_the_crop_stays_and_is_the_centre_crop_in_train_and_test(caffe, workdir, capsys):
    # Records larger than crop_size, of two sizes: Caffe shapes the batch by the crop, so without the
    # crop the 5x6 records would not fit a batch shaped after the first, 4x4, record (a CHECK abort).
    # TRAIN crops at a random offset: the scan takes TEST's centre crop, rows 1-2 and columns 1-2
    # of a 4x4 record, columns 2-3 of a 5x6 one. A NaN in a corner is outside every centre crop.
    shapes = [(1, 4, 4), (1, 5, 6)] * 3
    records = [np.arange(h * w, dtype=np.float32).reshape(c, h, w) for c, h, w in shapes]
    records[1][0, 2, 3] = np.nan  # inside the 5x6 centre crop
    records[2][0, 0, 0] = np.inf  # a corner: no centre crop holds it
    records[4][0, 1, 1] = -np.inf  # inside the 4x4 centre crop
    write_lmdb(workdir / "db", [float_datum(r) for r in records])
    crop = "transform_param { crop_size: 2 }"
    net = data_layer("db", 2, transform=crop, extra="include { phase: TRAIN }") + data_layer(
        "db", 2, transform=crop, extra="include { phase: TEST }"
    )
    (workdir / "net.prototxt").write_text(net)
    (workdir / "solver.prototxt").write_text('net: "net.prototxt"\nbase_lr: 0.01\nmax_iter: 1\n')

    train_code, train, _ = run_scan(capsys, "solver.prototxt")
    test_code, test, _ = run_scan(capsys, "solver.prototxt", "--phase", "test")

    expected = {("00000001", "data", "nonfinite"), ("00000004", "data", "nonfinite")}
    assert (train_code, found(train), train["records_scanned"]) == (1, expected, 6)
    assert (test_code, found(test), test["records_scanned"]) == (1, expected, 6)
    assert any("random crop made the centre crop" in note for note in train["notes"])
    by_key = {b["key"]: b for b in train["bad"]}
    # The values of the crop only: record 1's centre holds 8, 9, 14 (and the NaN at 15).
    assert (by_key["00000001"]["nan"], by_key["00000001"]["min"], by_key["00000001"]["max"]) == (1, 8, 14)
    assert (by_key["00000004"]["neginf"], by_key["00000004"]["min"], by_key["00000004"]["max"]) == (1, 6, 10)


def test_corrupt_record_is_named_in_one_line(caffe, workdir, capsys):
    values = [float_datum(r) for r in float_records(8)]
    values[5] = b"\xff\xfe not a datum"
    write_lmdb(workdir / "db", values)
    (workdir / "net.prototxt").write_text(data_layer("db", 2))

    code, report, err = run_scan(capsys, "net.prototxt")

    assert (code, report) == (2, None)
    assert err.count("\n") == 1
    assert "LMDB source 'db' (layer 'data'): a record that Caffe cannot read whole: " in err
    assert "record 5 (key '00000005') is not a Datum" in err


def test_datum_short_of_its_shape_is_named_not_scanned_as_clean(caffe, workdir, capsys):
    # Caffe reads past the end of a float_data field shorter than its shape, and no CHECK stops it.
    values = [float_datum(r) for r in float_records(9)]
    for index, kept in ((2, 5), (7, 0)):
        datum = caffe_pb2().Datum.FromString(values[index])
        del datum.float_data[kept:]
        values[index] = datum.SerializeToString()
    write_lmdb(workdir / "db", values)
    (workdir / "net.prototxt").write_text(data_layer("db", 3))

    code, report, err = run_scan(capsys, "net.prototxt")

    assert (code, report) == (2, None)
    assert err == (
        "caffe-nan scan: LMDB source 'db' (layer 'data'): 2 records that Caffe cannot read whole: "
        "record 2 (key '00000002') holds 5 float_data values for shape (2, 3, 3) (18 expected); "
        "record 7 (key '00000007') holds 0 float_data values for shape (2, 3, 3) (18 expected)\n"
    )
    # --limit checks the records of the batches it scans: records 0-2 here.
    code, report, err = run_scan(capsys, "net.prototxt", "--limit", "2")
    assert (code, report) == (2, None)
    assert err.endswith(
        "a record that Caffe cannot read whole: record 2 (key '00000002') holds 5 float_data "
        "values for shape (2, 3, 3) (18 expected)\n"
    )


def test_record_caffe_stops_on_is_named_after_the_abort(caffe, workdir, capsys):
    # Each record is whole, but record 5 is shaped unlike record 4, the first of its batch: a Caffe CHECK.
    records = float_records(6)
    records[5] = np.zeros((1, 3, 3), np.float32)
    write_lmdb(workdir / "db", [float_datum(r) for r in records])
    (workdir / "net.prototxt").write_text(data_layer("db", 2))

    code, report, err = run_scan(capsys, "net.prototxt")

    assert (code, report) == (2, None)
    assert err.count("\n") == 1
    assert "Caffe stopped: Check failed" in err
    assert (
        "record 5 (key '00000005') has shape (1, 3, 3) while the first record of its batch has (2, 3, 3)"
        in err
    )


@pytest.mark.parametrize(
    "setup, expected",
    [
        ("empty", "the database is empty"),
        ("missing", "'nowhere_lmdb' (layer 'data'): no such directory"),
        ("leveldb_default", "it is an LMDB: add backend: LMDB"),
        ("hdf5_names", "has no dataset 'label' (datasets: 'data', 'labels')"),
        ("a_file", "LMDB source 'db' (layer 'data'): is a file, expected a directory (an LMDB database)"),
        ("empty_data_mdb", "LMDB source 'db' (layer 'data'): not an LMDB, its data.mdb is empty"),
        # The private view's path is the library's, not the user's: the message names only theirs.
        (
            "garbage_data_mdb",
            "LMDB source 'db' (layer 'data'): cannot open the LMDB: MDB_INVALID: File is not",
        ),
        ("hdf5_list_binary", "list.txt: not a text file (byte 0 is not UTF-8), expected a list of .h5 files"),
        ("hdf5_entry_dir", "list.txt:1: HDF5 file 'a.h5' is a directory, expected an HDF5 file"),
    ],
)
def test_dataset_mistakes_are_one_line_errors(caffe, workdir, capsys, setup, expected):
    net = data_layer("db", 2)
    hdf5_net = (
        'layer { name: "h5" type: "HDF5Data" top: "data" top: "label"\n'
        '  hdf5_data_param { source: "list.txt" batch_size: 2 } }\n'
    )
    if setup == "empty":
        write_lmdb(workdir / "db", [])
    elif setup == "a_file":
        (workdir / "db").write_text("")
    elif setup in ("empty_data_mdb", "garbage_data_mdb"):
        (workdir / "db").mkdir()
        (workdir / "db" / "data.mdb").write_bytes(b"" if setup == "empty_data_mdb" else b"\x17" * 8192)
    elif setup == "hdf5_list_binary":
        (workdir / "list.txt").write_bytes(b"\xff\xfe\x00a.h5\n")
        net = hdf5_net
    elif setup == "hdf5_entry_dir":
        (workdir / "a.h5").mkdir()
        (workdir / "list.txt").write_text("a.h5\n")
        net = hdf5_net
    elif setup == "missing":
        net = data_layer("nowhere_lmdb", 2)
    elif setup == "leveldb_default":
        write_lmdb(workdir / "db", [float_datum(r) for r in float_records(2)])
        net = net.replace(" backend: LMDB", "")
    else:
        with h5py.File(workdir / "a.h5", "w") as f:
            f["data"], f["labels"] = np.zeros((2, 3), np.float32), np.zeros(2, np.float32)
        (workdir / "list.txt").write_text("a.h5\n")
        net = hdf5_net
    (workdir / "net.prototxt").write_text(net)

    code, report, err = run_scan(capsys, "net.prototxt")

    assert (code, report) == (2, None)
    assert err.count("\n") == 1 and expected in err, err


def test_usage_errors_exit_2_in_one_line(capsys):
    assert main(["net.prototxt", "--limit", "0"]) == 2
    assert main(["no_such.prototxt"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert "--limit: expected a positive integer" in err[0]
    assert "no_such.prototxt: no such file" in err[1]


def test_script_runs_the_same_command_with_text_output(caffe, workdir):
    records = float_records(5, planted={4: [(0, np.nan)]})
    write_lmdb(workdir / "db", [float_datum(r) for r in records])
    (workdir / "net.prototxt").write_text(data_layer("db", 2))

    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "scan_inputs.py"), "net.prototxt"],
        capture_output=True,
        text=True,
        cwd=workdir,
    )

    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("db: key '00000004': top 'data': 1 NaN, 0 +Inf, 0 -Inf")
    assert lines[-1] == "1 bad record in 5 scanned"
    assert "100% 5/5 records" in result.stderr  # plain progress lines when stderr is no terminal


PYTHON_DATA_LAYER = '''
import caffe
import numpy as np


class Batches(caffe.Layer):
    """Three items per batch, counting up; batch 1 item 2 holds a NaN."""

    def setup(self, bottom, top):
        self.batch = 0

    def reshape(self, bottom, top):
        top[0].reshape(3, 2)

    def forward(self, bottom, top):
        top[0].data[...] = self.batch
        if self.batch == 1:
            top[0].data[2, 1] = np.nan
        self.batch += 1

    def backward(self, top, propagate_down, bottom):
        pass
'''


def test_python_data_layer_is_scanned_batch_by_batch(caffe, workdir, capsys, monkeypatch):
    (workdir / "my_batches.py").write_text(PYTHON_DATA_LAYER)
    monkeypatch.syspath_prepend(str(workdir))  # the Caffe child takes this process's sys.path
    (workdir / "net.prototxt").write_text(
        'layer { name: "py" type: "Python" top: "data"\n'
        '  python_param { module: "my_batches" layer: "Batches" } }\n'
    )

    code, report, _ = run_scan(capsys, "net.prototxt", "--python-batches", "3")

    assert code == 1
    assert report["records_scanned"] == 9
    (bad,) = report["bad"]
    assert (bad["batch"], bad["item"], bad["nan"], bad["min"], bad["max"]) == (1, 2, 1, 1.0, 1.0)
    assert any("scanned batch by batch" in note for note in report["notes"])


def test_limit_counts_the_records_of_a_python_data_layer(caffe, workdir, capsys, monkeypatch):
    (workdir / "my_batches.py").write_text(PYTHON_DATA_LAYER)
    monkeypatch.syspath_prepend(str(workdir))
    (workdir / "net.prototxt").write_text(
        'layer { name: "py" type: "Python" top: "data"\n'
        '  python_param { module: "my_batches" layer: "Batches" } }\n'
    )

    # Batches of 3: records 0-2, then 3-4 of the second batch; its NaN is item 2, record 5.
    code, report, _ = run_scan(capsys, "net.prototxt", "--limit", "5")
    assert (code, report["records_scanned"], report["bad"]) == (0, 5, [])
    code, report, _ = run_scan(capsys, "net.prototxt", "--limit", "6")
    assert (code, report["records_scanned"], len(report["bad"])) == (1, 6, 1)


def test_image_data_is_scanned_by_this_caffe_built_with_opencv(caffe, workdir, capsys):
    # The set-up builds Caffe with OpenCV: an image list is scanned like any source.
    # (Caffe without OpenCV has no ImageData; scan then says so in one line.)
    assert {"ImageData", "WindowData"} <= set(caffe.layer_type_list())
    (workdir / "images").mkdir()
    for i in range(3):  # binary PPM: OpenCV reads it, no image library needed to write it
        pixels = bytes((i * 37 + k * 11) % 256 for k in range(5 * 4 * 3))
        (workdir / "images" / f"img{i}.ppm").write_bytes(b"P6 5 4 255\n" + pixels)
    (workdir / "list.txt").write_text("".join(f"img{i}.ppm {i}\n" for i in range(3)))
    (workdir / "net.prototxt").write_text(
        'layer { name: "img" type: "ImageData" top: "data" top: "label"\n'
        '  image_data_param { source: "list.txt" root_folder: "images/" batch_size: 2 } }\n'
    )

    code, report, _ = run_scan(capsys, "net.prototxt")

    assert (code, report["records_scanned"], report["bad"]) == (0, 3, [])
    assert report["sources"][0]["kind"] == "ImageData"


@pytest.mark.parametrize(
    ("module", "layer", "expected"),
    [
        (
            "my_missing_batches",
            "Batches",
            "layer 'py': cannot import its Python module 'my_missing_batches': ModuleNotFoundError",
        ),
        (
            "my_batches",
            "Broken",
            "layer 'py' (my_batches.Broken): forward() raised RuntimeError: reader closed",
        ),
    ],
)
def test_a_python_data_layer_that_fails_is_the_users_mistake_in_one_line(
    caffe, workdir, capsys, monkeypatch, module, layer, expected
):
    broken = (
        "\n\nclass Broken(Batches):\n"
        "    def forward(self, bottom, top):\n"
        "        raise RuntimeError('reader closed')\n"
    )
    (workdir / "my_batches.py").write_text(PYTHON_DATA_LAYER + broken)
    monkeypatch.syspath_prepend(str(workdir))
    (workdir / "net.prototxt").write_text(
        f'layer {{ name: "py" type: "Python" top: "data"\n'
        f'  python_param {{ module: "{module}" layer: "{layer}" }} }}\n'
    )

    code, report, err = run_scan(capsys, "net.prototxt", "--python-batches", "2")

    assert (code, report) == (2, None)
    assert err.count("\n") == 1 and expected in err, err


SLOW_DATA_LAYER = '''
import os
import time

import caffe


class Slow(caffe.Layer):
    """Tells the test it is running (its process id in a file), then takes its time."""

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(1, 2)

    def forward(self, bottom, top):
        with open("scanning.pid", "w") as f:
            f.write(str(os.getpid()))
        time.sleep(0.01)

    def backward(self, top, propagate_down, bottom):
        pass
'''


def test_ctrl_c_ends_the_scan_and_its_caffe_child_in_one_line(caffe, workdir):
    import os
    import signal
    import time

    (workdir / "slow_batches.py").write_text(SLOW_DATA_LAYER)
    (workdir / "net.prototxt").write_text(
        'layer { name: "py" type: "Python" top: "data"\n'
        '  python_param { module: "slow_batches" layer: "Slow" } }\n'
    )
    scan = subprocess.Popen(
        [sys.executable, "-m", "caffe_nanlayers.cli", "scan", "net.prototxt", "--python-batches", "100000"],
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": f"{workdir}{os.pathsep}{REPO}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, as a shell gives a command
        # A runner started in the background (`cmd &`) ignores SIGINT, and so would the scan,
        # which Python then leaves ignored: restore the default, as an interactive shell has it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    pid_file = workdir / "scanning.pid"
    deadline = time.monotonic() + 60
    while not pid_file.is_file() or not pid_file.read_text():  # the Caffe child is running the layer
        assert scan.poll() is None and time.monotonic() < deadline, scan.stderr.read()
        time.sleep(0.05)
    child = int(pid_file.read_text())

    os.killpg(scan.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group, parent and child
    out, err = scan.communicate(timeout=30)

    assert (scan.returncode, out, err) == (130, "", "caffe-nan scan: interrupted\n")
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
