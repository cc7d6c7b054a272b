"""Datasets broken the way disks and copies break them: one line and exit 2, never a crash, never a change.

Each test builds its broken dataset and runs ``caffe-nan`` as a user does,
in a process of its own: a reader that dies of a signal (SIGBUS on a
truncated LMDB) fails the test instead of taking pytest down with it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
from conftest import REPO
from scan_datasets import float_datum, float_records, key, snapshot, write_lmdb

from caffe_nanlayers.errors import UserError
from caffe_nanlayers.scan import databases, guarded_reads, leveldb_manifest

pytestmark = pytest.mark.caffe

LMDB_NET = (
    'layer { name: "data" type: "Data" top: "data" top: "label"\n'
    '  data_param { source: "db" backend: LMDB batch_size: 4 } }\n'
)
LEVELDB_NET = LMDB_NET.replace("LMDB", "LEVELDB")
HDF5_NET = (
    'layer { name: "h5" type: "HDF5Data" top: "data" top: "label"\n'
    '  hdf5_data_param { source: "list.txt" batch_size: 2 } }\n'
)
CLASSIFIER = (
    'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"\n'
    '  inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }\n'
    'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }\n'
)


def caffe_nan(*argv, cwd, prefix=()):
    """``caffe-nan ARGV`` in ``cwd``, as a user runs it: its own process, its own output."""
    return subprocess.run(
        [*prefix, sys.executable, "-m", "caffe_nanlayers.cli", *argv],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_exit_2(result, *expected):
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    for part in expected:
        assert part in result.stderr, result.stderr


def write_lmdb_records(path, count=40):
    write_lmdb(path, [float_datum(r) for r in float_records(count)])
    (path / "lock.mdb").unlink()
    return path


def truncate(path, fraction=0.5):
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(int(size * fraction) // 4096 * 4096)


def test_truncated_lmdb_is_one_line_in_scan_and_locate_not_a_sigbus(caffe, tmp_path):
    db = write_lmdb_records(tmp_path / "db", count=300)
    truncate(db / "data.mdb")
    before = snapshot(db)
    (tmp_path / "net.prototxt").write_text(LMDB_NET + CLASSIFIER)
    (tmp_path / "solver.prototxt").write_text('net: "net.prototxt"\nbase_lr: 0.01\nmax_iter: 2\n')

    scanned = caffe_nan("scan", "net.prototxt", cwd=tmp_path)
    located = caffe_nan("locate", "solver.prototxt", "--out", "out", cwd=tmp_path)

    message = (
        "LMDB source 'db' (layer 'data'): data.mdb is truncated: 24576 bytes, its last page ends at byte"
    )
    assert_one_line_exit_2(scanned, message)
    assert_one_line_exit_2(located, message)
    assert snapshot(db) == before


def test_lmdb_truncation_reads_the_newer_meta_page(caffe, tmp_path):
    db = write_lmdb_records(tmp_path / "db", count=300)
    data = db / "data.mdb"
    head, size = data.read_bytes()[: databases.LMDB_META_READ], data.stat().st_size
    assert databases.lmdb_truncation(head, size) is None
    assert databases.lmdb_truncation(head, size - 4096).startswith(f"is truncated: {size - 4096} bytes")
    assert databases.lmdb_truncation(b"\x17" * 8192, 8192) is None  # no LMDB: LMDB's own error says so


def test_a_reader_that_crashes_names_the_record_it_was_reading(caffe, tmp_path):
    # Past the truncation check (a view made by hand), LMDB maps the short file and dies of SIGBUS:
    # in the reading child, which the parent outlives to say where.
    db = write_lmdb_records(tmp_path / "db", count=300)
    truncate(db / "data.mdb")
    view = databases.make_view(db, tmp_path / "view", "LMDB")

    with pytest.raises(UserError) as err:
        guarded_reads.keys_at(view, "LMDB", "LMDB source 'db'", range(300))

    message = str(err.value)
    assert message.startswith("LMDB source 'db': the reader crashed (SIGBUS) reading record ")
    position = int(message.split("reading record ")[1].split(",")[0])
    assert 0 < position < 300
    assert f"the one after key {key(position - 1).decode()!r}: the file is corrupt" in message


def test_leveldb_with_a_corrupt_table_names_the_record_after_the_last_good_key(caffe, tmp_path):
    import plyvel

    db = plyvel.DB(str(tmp_path / "db"), create_if_missing=True)
    for index, record in enumerate(float_records(300)):
        db.put(key(index), float_datum(record))
    db.compact_range()  # into a table (.ldb), where blocks carry checksums
    db.close()
    (table,) = (tmp_path / "db").glob("*.ldb")
    data = bytearray(table.read_bytes())
    data[5000:5100] = bytes(b ^ 0xFF for b in data[5000:5100])
    table.write_bytes(bytes(data))
    before = snapshot(tmp_path / "db")
    (tmp_path / "net.prototxt").write_text(LEVELDB_NET)

    result = caffe_nan("scan", "net.prototxt", cwd=tmp_path)

    assert_one_line_exit_2(
        result,
        "LevelDB source 'db' (layer 'data'): the LevelDB is corrupt: record ",
        "cannot be read (the record after key '000000",
        "CorruptionError: Corruption:",
    )
    assert snapshot(tmp_path / "db") == before


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        (h5py.SoftLink("/nowhere"), "'label' is a link to '/nowhere', which cannot be opened"),
        (
            h5py.ExternalLink("gone.h5", "/label"),
            "'label' is a link to 'gone.h5:/label', which cannot be opened",
        ),
    ],
    ids=["soft", "external"],
)
def test_hdf5_dataset_that_links_to_nothing_is_one_line_in_scan_and_locate(caffe, tmp_path, link, expected):
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["data"] = np.zeros((4, 3), np.float32)
        f["label"] = link
    (tmp_path / "list.txt").write_text("a.h5\n")
    (tmp_path / "net.prototxt").write_text(HDF5_NET + CLASSIFIER)
    (tmp_path / "solver.prototxt").write_text('net: "net.prototxt"\nbase_lr: 0.01\nmax_iter: 2\n')

    scanned = caffe_nan("scan", "net.prototxt", cwd=tmp_path)
    located = caffe_nan("locate", "solver.prototxt", "--out", "out", cwd=tmp_path)

    assert_one_line_exit_2(scanned, "list.txt:1: 'a.h5': " + expected)
    assert_one_line_exit_2(located, "list.txt:1: 'a.h5': " + expected)


def _without_read_permission(path):
    """Make ``path`` unreadable to the command; the prefix that runs it so (root reads everything)."""
    if os.geteuid() != 0:
        path.chmod(0)
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("running as root, the test needs setpriv (util-linux) to drop root's read override")
    for entry in [path, *path.rglob("*")]:
        os.chown(entry, 65534, 65534)
    path.chmod(0o700)
    return (setpriv, "--bounding-set", "-dac_override,-dac_read_search")


def test_a_dataset_directory_the_user_may_not_read_is_one_line(caffe, tmp_path):
    write_lmdb_records(tmp_path / "db")
    (tmp_path / "net.prototxt").write_text(LMDB_NET)
    prefix = _without_read_permission(tmp_path / "db")
    try:
        result = caffe_nan("scan", "net.prototxt", cwd=tmp_path, prefix=prefix)
    finally:
        (tmp_path / "db").chmod(0o755)

    assert_one_line_exit_2(
        result, "caffe-nan scan: LMDB source 'db' (layer 'data'): cannot read: Permission denied"
    )


def test_an_unreadable_file_no_check_foresaw_is_still_one_line(caffe, tmp_path):
    # The HDF5 list names a file inside a directory the user may not enter: whatever reads it first,
    # the command's one place for errors words it.
    (tmp_path / "private").mkdir()
    with h5py.File(tmp_path / "private" / "a.h5", "w") as f:
        f["data"], f["label"] = np.zeros((4, 3), np.float32), np.zeros(4, np.float32)
    (tmp_path / "list.txt").write_text("private/a.h5\n")
    (tmp_path / "net.prototxt").write_text(HDF5_NET)
    prefix = _without_read_permission(tmp_path / "private")
    try:
        result = caffe_nan("scan", "net.prototxt", cwd=tmp_path, prefix=prefix)
    finally:
        (tmp_path / "private").chmod(0o755)

    assert_one_line_exit_2(result, "private/a.h5", "Permission denied")


def _leveldb_half_in_a_table(path):
    """6 records compacted into a table, 6 more in the log: LevelDB's own two places for records."""
    import plyvel

    db = plyvel.DB(str(path), create_if_missing=True)
    records = [float_datum(r) for r in float_records(12)]
    for index in range(6):
        db.put(key(index), records[index])
    db.compact_range()
    for index in range(6, 12):
        db.put(key(index), records[index])
    db.close()
    return path


def test_a_leveldb_whose_manifest_forgot_a_table_is_never_written_over(caffe, tmp_path):
    # Cut short, the MANIFEST forgets the table and the next file number: LevelDB, replaying its
    # log on open, writes a new table under the forgotten one's number. Through a link to the
    # user's file, that destroyed their table; the view links only what the MANIFEST lists.
    db = _leveldb_half_in_a_table(tmp_path / "db")
    (manifest,) = db.glob("MANIFEST-*")
    (table,) = db.glob("*.ldb")
    manifest.write_bytes(manifest.read_bytes()[:80])
    before = snapshot(db)
    (tmp_path / "net.prototxt").write_text(LEVELDB_NET)

    result = caffe_nan("scan", "net.prototxt", "--json", "-q", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert snapshot(db) == before
    notes = json.loads(result.stdout)["notes"]
    assert f"LevelDB source 'db' (layer 'data'): its MANIFEST does not list {table.name}; LevelDB" in notes[0]


def test_manifest_reading_lists_the_live_table_and_the_log_to_replay(tmp_path):
    db = _leveldb_half_in_a_table(tmp_path / "db")
    (table,) = db.glob("*.ldb")
    (log,) = db.glob("*.log")
    manifest = leveldb_manifest.read_manifest(db)
    assert manifest.tables == {int(table.stem)} and manifest.log_number == int(log.stem)
    assert manifest.next_file > max(manifest.tables)
    kept, left_out = leveldb_manifest.view_names(db)
    assert sorted(kept) == sorted([table.name, log.name, "CURRENT", manifest.name]) and left_out == []
    (db / "000099.ldb").write_bytes(b"")  # a table no MANIFEST lists: never linked, said
    assert leveldb_manifest.view_names(db)[1] == ["000099.ldb"]


def test_hdf5_data_caffe_cannot_read_is_named_by_file_and_rows(caffe, tmp_path):
    # The header is whole, a compressed chunk of the data is not: h5py opens the file, the rows
    # are counted, and Caffe's read of the dataset fails a CHECK.
    with h5py.File(tmp_path / "a.h5", "w") as f:
        rows = np.random.default_rng(0).uniform(size=(3000, 8)).astype(np.float32)
        f.create_dataset("data", data=rows, chunks=(100, 8), compression="gzip")
        f["label"] = np.zeros(3000, np.float32)
    data = bytearray((tmp_path / "a.h5").read_bytes())
    middle = len(data) // 2
    data[middle : middle + 400] = bytes(b ^ 0x5A for b in data[middle : middle + 400])
    (tmp_path / "a.h5").write_bytes(bytes(data))
    (tmp_path / "list.txt").write_text("a.h5\n")
    (tmp_path / "net.prototxt").write_text(HDF5_NET.replace("batch_size: 2", "batch_size: 100"))

    result = caffe_nan("scan", "net.prototxt", cwd=tmp_path)

    assert_one_line_exit_2(
        result,
        "Caffe stopped: Check failed",
        "Failed to read float dataset data",
        "HDF5 source 'list.txt' (layer 'h5'): a.h5: rows ",
        "of 'data' cannot be read (",
    )
