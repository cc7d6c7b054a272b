"""databases: backend checks, the read-only view, counting, keys, and the records Caffe cannot read."""

from __future__ import annotations

import numpy as np
import pytest
from scan_datasets import float_datum, float_records, key, snapshot, write_leveldb, write_lmdb

from caffe_nanlayers.errors import UserError
from caffe_nanlayers.proto_io import caffe_pb2
from caffe_nanlayers.scan import databases

pytestmark = pytest.mark.caffe


@pytest.fixture
def lmdb_dir(tmp_path, caffe):
    values = [float_datum(r) for r in float_records(5)]
    values[3] = b"\x08"  # truncated: channels tag without a value
    path = write_lmdb(tmp_path / "db", values)
    (path / "lock.mdb").unlink()
    return path


def test_check_database_dir_names_the_backend_mix_up(tmp_path, lmdb_dir):
    with pytest.raises(UserError, match="it is an LMDB: add backend: LMDB"):
        databases.check_database_dir(lmdb_dir, "LEVELDB", "src")
    with pytest.raises(UserError, match="src: no such directory"):
        databases.check_database_dir(tmp_path / "nope", "LMDB", "src")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        databases.check_database_dir(tmp_path / "file", "LMDB", "src")
    databases.check_database_dir(lmdb_dir, "LMDB", "src")


def test_lmdb_view_counts_and_keys_without_touching_the_database(tmp_path, lmdb_dir):
    before = snapshot(lmdb_dir)
    view = databases.make_view(lmdb_dir, tmp_path / "view", "LMDB")
    assert databases.count_records(view, "LMDB", "src") == 5
    assert databases.keys_at(view, "LMDB", "src", {4, 1}) == {1: key(1), 4: key(4)}
    assert snapshot(lmdb_dir) == before
    assert sorted(p.name for p in view.iterdir()) == ["data.mdb"]


def test_leveldb_view_leaves_lock_and_log_to_the_view(tmp_path, caffe):
    path = write_leveldb(tmp_path / "ldb", [float_datum(r) for r in float_records(4)])
    before = snapshot(path)
    view = databases.make_view(path, tmp_path / "view", "LEVELDB")
    assert databases.count_records(view, "LEVELDB", "src") == 4
    assert databases.keys_at(view, "LEVELDB", "src", [2]) == {2: key(2)}
    assert snapshot(path) == before
    assert (view / "LOCK").exists() and not (view / "LOCK").is_symlink()


def test_first_broken_record_names_the_key_and_why(tmp_path, lmdb_dir):
    view = databases.make_view(lmdb_dir, tmp_path / "view", "LMDB")
    found = databases.first_broken_record(view, "LMDB", "src", 0, 2, caffe_pb2().Datum)
    assert found.startswith("record 3 (key '00000003') is not a Datum")
    assert databases.first_broken_record(view, "LMDB", "src", 4, 2, caffe_pb2().Datum) is None


def test_datum_problem_checks_sizes_and_batch_shape(caffe):
    datum_class = caffe_pb2().Datum
    good = float_datum(np.zeros((2, 3, 3)))
    assert databases.datum_problem(good, datum_class, (2, 3, 3)) is None
    assert "first record of its batch has (1, 3, 3)" in databases.datum_problem(good, datum_class, (1, 3, 3))
    short = datum_class(channels=1, height=2, width=2, data=b"abc")
    assert "3 bytes of data for shape (1, 2, 2) (4 expected)" in databases.datum_problem(
        short.SerializeToString(), datum_class, None
    )
    empty = datum_class().SerializeToString()
    assert "channels, height, width = (0, 0, 0)" in databases.datum_problem(empty, datum_class, None)


def test_keys_that_are_not_utf8_are_escaped_not_lost():
    assert databases.key_text(b"img\xff1") == "img\\xff1"
    assert databases.format_key(b"00000001_a.jpg") == "'00000001_a.jpg'"
