"""The parallel scan: its JSON is the single Caffe pass's, whatever the workers; Ctrl-C stops them all.

The reference is the scan with ``--no-fast-path``: every record through
Caffe's own data layers in one process. Ranges are made small here (a few
batches) so that bad records fall in every range, at their edges too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import REPO
from scan_datasets import float_datum, uint8_datum, write_leveldb, write_lmdb

from caffe_nanlayers.commands.scan import main
from caffe_nanlayers.scan import partition

pytestmark = pytest.mark.caffe

CLASSIFIER = """
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 5 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    return small_ranges(tmp_path, monkeypatch)


def small_ranges(tmp_path, monkeypatch):
    """Work in ``tmp_path``, with ranges of a few records, so that bad records fall in every range."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(partition, "MIN_RECORDS_PER_TASK", 8)
    monkeypatch.setattr(partition, "MIN_PROVEN_RECORDS_PER_TASK", 8)
    return tmp_path


def scan_json(capsys, *argv):
    code = main([*argv, "--json", "-q"])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out else None), captured.err


def same_as_one_caffe_pass(capsys, net: str, *workers: int) -> dict:
    """Scan with Caffe alone and with each number of workers; all the JSON must be equal."""
    code, reference, err = scan_json(capsys, net, "--no-fast-path")
    assert code == 1, err
    for count in workers:
        assert scan_json(capsys, net, "--workers", str(count)) == (code, reference, ""), count
    return reference


def planted_records(count: int, shape=(3, 6, 7)) -> list[bytes]:
    """uint8 records; every 13th a float record with a NaN or Inf, every 17th a label out of range."""
    rng = np.random.default_rng(5)
    values = []
    for index in range(count):
        label = 5 + index % 3 if index % 17 == 16 else index % 5
        if index % 13 == 0:
            record = rng.uniform(0, 255, shape).astype(np.float32)
            record[index % shape[0], 3, 3] = (np.nan, np.inf, -np.inf)[index % 3]  # in every centre crop
            values.append(float_datum(record, label=label))
        else:
            values.append(uint8_datum(rng.integers(0, 256, shape), label=label))
    return values


def data_layer(source: str, backend: str = "LMDB", transform: str = "", batch: int = 4) -> str:
    return (
        f'layer {{ name: "data" type: "Data" top: "data" top: "label" include {{ phase: TRAIN }}\n'
        f'  data_param {{ source: "{source}" backend: {backend} batch_size: {batch} }}\n'
        f"  transform_param {{ {transform} }} }}\n"
    )


@pytest.mark.parametrize(
    "transform, workers",
    [
        (
            "scale: 0.00390625 mean_value: 104 mean_value: 117 mean_value: 123 crop_size: 5 mirror: true",
            (4,),
        ),
        ("", (3,)),
    ],
)
def test_lmdb_in_key_ranges_reports_what_one_caffe_pass_reports(caffe, workdir, capsys, transform, workers):
    write_lmdb(workdir / "db", planted_records(70))  # batch 4: 18 batches, ranges of 4 to 6
    (workdir / "net.prototxt").write_text(data_layer("db", transform=transform) + CLASSIFIER)

    report = same_as_one_caffe_pass(capsys, "net.prototxt", *workers)

    bad = {(b["record"], b["top"]) for b in report["bad"]}
    assert {r for r, top in bad if top == "data"} == set(range(0, 70, 13))
    assert {r for r, top in bad if top == "label"} == {16, 33, 50, 67}
    assert report["records_scanned"] == 70


def test_a_mean_file_holding_nan_makes_every_record_bad_in_every_worker(caffe, workdir, capsys):
    from test_scan_fast_path import write_mean

    mean = np.full((3, 6, 7), 100, np.float32)
    mean[2, 3, 3] = np.nan
    write_mean(workdir / "mean.binaryproto", mean)
    write_lmdb(workdir / "db", planted_records(30))
    (workdir / "net.prototxt").write_text(data_layer("db", transform="mean_file: 'mean.binaryproto'"))

    report = same_as_one_caffe_pass(capsys, "net.prototxt", 3)

    assert report["bad_records"] == 30
    assert {b["nan"] for b in report["bad"]} >= {1}


def test_leveldb_in_key_ranges_with_a_limit(caffe, workdir, capsys):
    write_leveldb(workdir / "ldb", planted_records(45))
    (workdir / "net.prototxt").write_text(data_layer("ldb", backend="LEVELDB") + CLASSIFIER)

    code, reference, _ = scan_json(capsys, "net.prototxt", "--no-fast-path", "--limit", "30")
    assert scan_json(capsys, "net.prototxt", "--workers", "3", "--limit", "30") == (code, reference, "")
    assert (code, reference["records_scanned"]) == (1, 30)


def test_hdf5_list_split_by_file_reports_what_one_caffe_pass_reports(caffe, workdir, capsys):
    rng = np.random.default_rng(2)
    names = []
    for number, rows in enumerate([7, 3, 12, 1, 9, 6, 5]):  # batches span files
        data = rng.uniform(-1, 1, (rows, 2, 3)).astype(np.float32)
        labels = rng.integers(0, 5, rows).astype(np.float32)
        data[rows // 2, 1, number % 3] = (np.nan, np.inf, -np.inf)[number % 3]
        labels[-1] = 5 if number % 2 else labels[-1]
        name = f"part{number}.h5"
        with h5py.File(workdir / name, "w") as f:
            f["data"], f["label"] = data, labels
        names.append(name)
    (workdir / "list.txt").write_text("\n".join(names) + "\n")
    (workdir / "net.prototxt").write_text(
        'layer { name: "h5" type: "HDF5Data" top: "data" top: "label"\n'
        '  hdf5_data_param { source: "list.txt" batch_size: 4 } }\n' + CLASSIFIER
    )

    report = same_as_one_caffe_pass(capsys, "net.prototxt", 3)

    assert report["records_scanned"] == 43
    assert {b["file"] for b in report["bad"]} == set(names)


def test_a_record_caffe_cannot_read_gets_caffes_own_answer(caffe, workdir, capsys):
    values = planted_records(40)
    values[29] = b"\xff\xfe not a datum"
    write_lmdb(workdir / "db", values)
    (workdir / "net.prototxt").write_text(data_layer("db"))

    expected = scan_json(capsys, "net.prototxt", "--no-fast-path")
    assert expected[0] == 2 and "record 29 (key '00000029')" in expected[2]
    assert scan_json(capsys, "net.prototxt", "--workers", "3") == expected


def test_batch_ranges_start_batches_and_cover_the_pass():
    assert partition.batch_ranges(10, 4, 2, 1) == [(0, 4), (4, 6)]
    assert partition.batch_ranges(10, 4, 8, 1) == [(0, 4), (4, 4), (8, 2)]
    assert partition.batch_ranges(100, 4, 4, 60) == [(0, 100)]
    for total, batch, parts in [(1, 3, 4), (1000, 7, 3), (64, 64, 2), (65, 64, 2)]:
        ranges = partition.batch_ranges(total, batch, parts, 1)
        assert all(start % batch == 0 for start, _ in ranges)
        assert sum(count for _, count in ranges) == total
        assert [s for s, _ in ranges] == sorted(s for s, _ in ranges)


def test_coalesced_ranges_are_runs_of_whole_ranges():
    ranges = partition.batch_ranges(1000, 8, 10, 1)
    assert partition.coalesce(ranges, 1) == [(0, 1000)]
    assert partition.coalesce(ranges, 0) == [(0, 1000)]
    assert partition.coalesce(ranges, 99) == ranges
    halves = partition.coalesce(ranges, 2)
    assert [start for start, _ in halves] == [0, ranges[5][0]]
    assert sum(count for _, count in halves) == 1000


def test_raw_records_proven_finite_take_a_worker_for_many_more_records(caffe, workdir, capsys, monkeypatch):
    # Read at the speed of parsing headers, a few thousand records are not worth a second worker.
    monkeypatch.setattr(partition, "MIN_PROVEN_RECORDS_PER_TASK", 64)
    planned = []
    plan = partition.plan
    monkeypatch.setattr(partition, "plan", lambda *a: planned.append(plan(*a)) or planned[-1])
    write_lmdb(workdir / "raw", [uint8_datum(np.zeros((3, 6, 7)), label=1) for _ in range(100)])
    write_lmdb(workdir / "floats", planted_records(100))
    for name, ranges in (("raw", 1), ("floats", 4)):
        (workdir / "net.prototxt").write_text(data_layer(name, transform="scale: 0.5") + CLASSIFIER)
        scan_json(capsys, "net.prototxt", "--workers", "4")
        assert len(planned[-1]) == ranges, name


def test_file_runs_are_whole_files_balanced_by_rows():
    assert partition.file_runs([5, 5, 5, 5], 20, 2, 1) == [(0, 2, 0), (2, 4, 10)]
    assert partition.file_runs([50, 1, 1], 52, 3, 1) == [(0, 1, 0), (1, 2, 50), (2, 3, 51)]
    assert partition.file_runs([5, 5, 5, 5], 7, 2, 1) == [(0, 1, 0), (1, 2, 5)]  # --limit 7
    assert partition.file_runs([5, 5], 10, 4, 100) == [(0, 2, 0)]


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid``, from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
def test_ctrl_c_stops_every_worker(caffe, workdir):
    pb2_datum = uint8_datum(np.zeros((1, 4, 4)), label=0)
    write_lmdb(workdir / "db", [pb2_datum] * 100_000)  # three ranges of proven-finite records
    (workdir / "net.prototxt").write_text(data_layer("db", batch=64))
    scan = subprocess.Popen(
        [sys.executable, "-m", "caffe_nanlayers.cli", "scan", "net.prototxt", "--workers", "3"],
        cwd=workdir,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    children: set[int] = set()
    while len(children) < 4:  # Caffe's own child and three workers
        assert scan.poll() is None and time.monotonic() < deadline, scan.stderr.read()
        children = _children(scan.pid)
        time.sleep(0.01)

    os.killpg(scan.pid, signal.SIGINT)
    out, err = scan.communicate(timeout=30)

    assert (scan.returncode, out, err) == (130, "", "caffe-nan scan: interrupted\n")
    for child in children:
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)


def test_progress_adds_up_every_worker_and_never_goes_back(caffe, workdir):
    from caffe_nanlayers.scan import scan

    write_lmdb(workdir / "db", planted_records(90))
    (workdir / "net.prototxt").write_text(data_layer("db"))
    seen = []

    report = scan(
        "net.prototxt", workers=3, on_progress=lambda done, total, unit: seen.append((done, total, unit))
    )

    assert report.records_scanned == 90
    assert {(total, unit) for _, total, unit in seen} == {(90, "records")}
    assert [done for done, _, _ in seen] == sorted(done for done, _, _ in seen)
    assert seen[-1][0] == 90


def test_a_worker_that_dies_is_named_with_its_range(caffe, workdir):
    from caffe_nanlayers.isolate import CaffeStopped
    from caffe_nanlayers.proto_io import caffe_pb2, net_to_text, parse_text
    from caffe_nanlayers.scan import workers
    from caffe_nanlayers.scan.scan_net import build_scan_net

    pb2 = caffe_pb2()
    (workdir / "list.txt").write_text("gone.h5\n")  # listed, not there: Caffe's CHECK ends the worker
    layer = parse_text(
        'name: "h5" type: "HDF5Data" top: "data" hdf5_data_param { source: "list.txt" batch_size: 2 }',
        pb2.LayerParameter(),
        "layer",
    )
    config = {
        "sources": [{"batch_size": 2, "records": 4}],
        "bottoms": [{"source": 0, "top": "data", "label": None}],
    }
    net_text = net_to_text(build_scan_net([layer], config, pb2))
    task = partition.Task(0, 10, 4, "caffe", (net_text, "TEST", 2), "HDF5Data source 'list.txt' (layer 'h5')")

    with pytest.raises(CaffeStopped) as stopped:
        workers.run_tasks([task], 1)

    assert str(stopped.value).startswith(
        "HDF5Data source 'list.txt' (layer 'h5'): records 10 to 13: Caffe stopped"
    )


def test_records_caffe_cannot_read_whole_are_named_by_the_workers_as_by_the_survey(
    caffe, workdir, capsys, monkeypatch
):
    from caffe_nanlayers.proto_io import caffe_pb2
    from caffe_nanlayers.scan import guarded_reads

    values = planted_records(70)
    values[3] = b"\xff\xfe not a datum"
    short = caffe_pb2().Datum.FromString(values[26])  # a float record (every 13th)
    del short.float_data[5:]
    values[26] = short.SerializeToString()
    values[41] = _cut_pixels(values[41])
    values[66] = caffe_pb2().Datum(channels=0, height=6, width=7, data=b"").SerializeToString()
    write_lmdb(workdir / "db", values)
    (workdir / "net.prototxt").write_text(data_layer("db") + CLASSIFIER)
    # A --limit checks the records of the batches it reads, past the limit too: record 66 for 65.
    runs = [(), ("--limit", "60"), ("--limit", "65")]
    references = [scan_json(capsys, "net.prototxt", "--no-fast-path", *run) for run in runs]
    assert [code for code, _, _ in references] == [2, 2, 2]
    assert "4 records that Caffe cannot read whole: record 3 (key '00000003')" in references[0][2]
    assert "(and 1 more)" in references[0][2]
    assert "3 records" in references[1][2] and "4 records" in references[2][2]

    monkeypatch.setattr(guarded_reads, "survey_database", None)  # the workers alone read the records
    for run, reference in zip(runs, references):
        for count in (1, 4):
            assert scan_json(capsys, "net.prototxt", "--workers", str(count), *run) == reference, run


def _cut_pixels(record: bytes) -> bytes:
    from caffe_nanlayers.proto_io import caffe_pb2

    datum = caffe_pb2().Datum.FromString(record)
    datum.data = datum.data[:-7]
    return datum.SerializeToString()


def test_a_parallel_scan_reads_each_record_once_in_the_workers(caffe, workdir, capsys, monkeypatch):
    from caffe_nanlayers.scan import guarded_reads

    def no_survey(*args):
        raise AssertionError("the parent surveyed the records")

    monkeypatch.setattr(guarded_reads, "survey_database", no_survey)
    write_lmdb(workdir / "db", planted_records(40))
    (workdir / "net.prototxt").write_text(data_layer("db") + CLASSIFIER)

    code, report, err = scan_json(capsys, "net.prototxt", "--workers", "3")

    assert (code, err, report["records_scanned"]) == (1, "", 40)


def write_hdf5_list(workdir, rows_per_file=(7, 3, 12, 1, 9, 6, 5, 4, 8, 2)) -> list[str]:
    """Files of uneven rows, a NaN, Inf or -Inf in the middle of each and a label 5 (out of range) in some."""
    rng = np.random.default_rng(9)
    names = []
    for number, rows in enumerate(rows_per_file):
        data = rng.uniform(-1, 1, (rows, 2, 3)).astype(np.float32)
        labels = rng.integers(0, 5, rows).astype(np.float32)
        data[rows // 2, 1, number % 3] = (np.nan, np.inf, -np.inf)[number % 3]
        labels[-1] = 5 if number % 2 else labels[-1]
        names.append(f"part{number}.h5")
        with h5py.File(workdir / names[-1], "w") as f:
            f["data"], f["label"] = data, labels
    (workdir / "list.txt").write_text("\n".join(names) + "\n")
    (workdir / "net.prototxt").write_text(
        'layer { name: "h5" type: "HDF5Data" top: "data" top: "label"\n'
        '  hdf5_data_param { source: "list.txt" batch_size: 4 } }\n' + CLASSIFIER
    )
    return names


def test_an_hdf5_lists_files_are_checked_by_the_workers_that_read_them(caffe, workdir, capsys, monkeypatch):
    from caffe_nanlayers.scan import guarded_reads

    write_hdf5_list(workdir)
    reference = scan_json(capsys, "net.prototxt", "--no-fast-path")
    assert reference[0] == 1 and reference[1]["records_scanned"] == 57

    def no_survey(*args, **kwargs):
        raise AssertionError("the command checked every file before the workers")

    monkeypatch.setattr(guarded_reads, "inspect_hdf5", no_survey)
    for count in (1, 3):
        assert scan_json(capsys, "net.prototxt", "--workers", str(count)) == reference, count


@pytest.mark.parametrize("broken", ["missing", "damaged", "both"])
def test_a_bad_file_in_an_hdf5_list_is_the_same_error_with_workers(
    caffe, workdir, capsys, monkeypatch, broken
):
    from caffe_nanlayers.scan import guarded_reads

    names = write_hdf5_list(workdir)
    if broken in ("missing", "both"):
        (workdir / names[7]).unlink()
    if broken in ("damaged", "both"):
        (workdir / names[4]).write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    reference = scan_json(capsys, "net.prototxt", "--no-fast-path")
    assert reference[0] == 2 and f"list.txt:{5 if broken != 'missing' else 8}:" in reference[2]
    monkeypatch.setattr(guarded_reads, "inspect_hdf5", None)  # the workers alone check the files
    for count in (1, 3):
        assert scan_json(capsys, "net.prototxt", "--workers", str(count)) == reference, count


def test_the_progress_total_of_an_uncounted_hdf5_list_converges_on_its_rows():
    from caffe_nanlayers.scan.workers import estimated_total

    tasks = [
        partition.Task(0, 0, 100, "fast", (), "db"),
        partition.Task(1, 0, 0, "hdf5", (), "list", files=range(0, 4)),
        partition.Task(1, 0, 0, "hdf5", (), "list", files=range(4, 10)),
    ]
    planned = [100, 70]  # the list's 10 files estimated at its first file's 7 rows
    assert estimated_total(tasks, planned, [0, 0, 0], [0, 0, 0]) == 170
    # 2 files of 30 rows read: the 8 others are counted at 15 rows.
    assert estimated_total(tasks, planned, [50, 30, 0], [0, 2, 0]) == 100 + 30 + 8 * 15
    # Every file read: the estimate is the count, whatever the first file said.
    assert estimated_total(tasks, planned, [100, 61, 7], [0, 4, 6]) == 168
