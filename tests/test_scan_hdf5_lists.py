"""hdf5_lists: the list read as Caffe tokenizes it, the datasets checked as Caffe reads them, rows located."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from caffe_nanlayers.errors import UserError
from caffe_nanlayers.scan.hdf5_lists import Hdf5File, inspect_files, locate_row, read_list


def write(path, **datasets):
    with h5py.File(path, "w") as f:
        for name, values in datasets.items():
            f[name] = values
    return path


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_read_list_splits_on_any_whitespace_and_keeps_line_numbers(in_tmp):
    (in_tmp / "list.txt").write_text("a.h5 b.h5\n\n  c.h5\n")
    assert read_list("list.txt", "src") == [(1, "a.h5"), (1, "b.h5"), (3, "c.h5")]
    (in_tmp / "empty.txt").write_text("\n")
    with pytest.raises(UserError, match="lists no HDF5 file"):
        read_list("empty.txt", "src")
    with pytest.raises(UserError, match="src: no such file"):
        read_list("missing.txt", "src")


def test_inspect_files_counts_rows_of_every_file(in_tmp):
    write(in_tmp / "a.h5", data=np.zeros((3, 2)), label=np.zeros(3))
    write(in_tmp / "b.h5", data=np.zeros((2, 2)), label=np.zeros(2, np.int32))
    (in_tmp / "list.txt").write_text("a.h5\nb.h5\n")
    assert inspect_files("list.txt", ["data", "label"], "src") == [Hdf5File("a.h5", 3), Hdf5File("b.h5", 2)]


@pytest.mark.parametrize(
    "datasets, message",
    [
        (
            {"data": np.zeros((3, 2)), "labels": np.zeros(3)},
            r"list.txt:1: 'a.h5' has no dataset 'label' \(datasets:",
        ),
        ({"data": np.zeros((3, 2)), "label": np.zeros(4)}, "dataset 'label' has 4 rows, 'data' has 3"),
        ({"data": np.zeros((0, 2)), "label": np.zeros(0)}, "holds 0 rows"),
        ({"data": np.array([b"x", b"y"]), "label": np.zeros(2)}, "Caffe reads only numbers"),
    ],
)
def test_inspect_files_refuses_what_caffe_would_abort_on(in_tmp, datasets, message):
    write(in_tmp / "a.h5", **datasets)
    (in_tmp / "list.txt").write_text("a.h5\n")
    with pytest.raises(UserError, match=message):
        inspect_files("list.txt", ["data", "label"], "src")


def test_a_file_listed_relative_to_the_list_not_the_working_directory_gets_a_hint(in_tmp):
    (in_tmp / "sub").mkdir()
    write(in_tmp / "sub" / "a.h5", data=np.zeros((1, 2)))
    (in_tmp / "sub" / "list.txt").write_text("a.h5\n")
    with pytest.raises(
        UserError, match=r"sub/list\.txt:1: HDF5 file 'a\.h5' not found; it exists relative to the list"
    ):
        inspect_files("sub/list.txt", ["data"], "src")


def test_locate_row_walks_the_files_in_list_order():
    files = [Hdf5File("a.h5", 3), Hdf5File("b.h5", 2)]
    assert [locate_row(files, i) for i in range(5)] == [
        ("a.h5", 0),
        ("a.h5", 1),
        ("a.h5", 2),
        ("b.h5", 0),
        ("b.h5", 1),
    ]
    with pytest.raises(IndexError):
        locate_row(files, 5)


def test_a_list_checked_in_parts_at_once_gives_the_whole_lists_answer(in_tmp, monkeypatch):
    from caffe_nanlayers.scan import guarded_reads

    monkeypatch.setattr(guarded_reads, "MIN_FILES_PER_SURVEY_PART", 2)
    names = []
    for number in range(9):
        names.append(f"f{number}.h5")
        write(in_tmp / names[-1], data=np.zeros((number + 1, 2)), label=np.zeros(number + 1))
    (in_tmp / "list.txt").write_text("\n".join(names) + "\n")
    whole = guarded_reads.inspect_hdf5("list.txt", ["data", "label"], "src")
    assert guarded_reads.inspect_hdf5("list.txt", ["data", "label"], "src", parts=3) == whole
    assert [f.rows for f in whole] == list(range(1, 10))

    # Two bad files in two parts: the answer is the first one's, as one pass over the list gives.
    (in_tmp / "f7.h5").write_bytes(b"not an HDF5 file")
    write(in_tmp / "f4.h5", data=np.zeros((3, 2)), label=np.zeros(2))
    errors = []
    for parts in (1, 3, 4):
        with pytest.raises(UserError) as caught:
            guarded_reads.inspect_hdf5("list.txt", ["data", "label"], "src", parts=parts)
        errors.append(str(caught.value))
    assert errors[0].startswith("list.txt:5: 'f4.h5'") and errors == [errors[0]] * 3
