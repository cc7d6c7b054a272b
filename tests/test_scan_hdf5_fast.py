"""hdf5_range: h5py's rows equal Caffe's HDF5Data top blobs, and a scan through it equals one Caffe pass.

Every list here is read twice: by a real Caffe HDF5Data layer (one batch
holding every row of the list) and by ``hdf5_range.read_chunks``; the
float32 values must be equal bit for bit, NaN for NaN. The stored types
include those whose conversion to float32 HDF5 does otherwise than numpy
(float64 just past float32's largest value, big-endian data), so a reader
that converted in numpy would fail here.
"""

from __future__ import annotations

import json
import os
import signal
import sys

import h5py
import numpy as np
import pytest

from caffe_nanlayers.commands.scan import main
from caffe_nanlayers.isolate import IsolatedWorker
from caffe_nanlayers.scan import hdf5_lists, hdf5_range, partition, workers

pytestmark = pytest.mark.caffe

ROWS = (5, 1, 7)  # uneven files
FLOAT_EDGES = [
    1e39,  # beyond float32: +inf
    -1e39,
    3.4028235e38,  # above float32's largest, below the rounding midpoint: HDF5 says inf, numpy the largest
    3.4028235677973366e38,  # the midpoint itself
    16777217.0,  # 2**24 + 1: a tie, rounded otherwise by HDF5's conversion of big-endian doubles
    1e-46,  # below float32's smallest subnormal
    7e-46,
    1e300,
    -1e-300,
    np.nan,
    np.inf,
    -np.inf,
    0.1,
    -0.0,
]


def _values(dtype: np.dtype, shape: tuple, rng) -> np.ndarray:
    """Random values of ``dtype`` with the type's edges planted among them."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        values = rng.uniform(-100, 100, shape).astype(dtype)
        edges = np.array(FLOAT_EDGES, np.float64)
        if dtype.itemsize == 2:
            edges = np.array([np.inf, -np.inf, np.nan, 65504, 6e-8, 1e-7, 0.1, -0.0], np.float64)
        with np.errstate(all="ignore"):
            edges = edges.astype(dtype)
    else:
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, shape, dtype=dtype.newbyteorder("="), endpoint=True)
        values = values.astype(dtype)
        edges = np.array([info.min, info.max, 0, 1], dtype)
        if info.bits >= 32:
            edges = np.concatenate([edges, np.array([2**24 + 1, 2**24 + 3, info.max - 1], dtype)])
    flat = values.reshape(-1)
    flat[: min(flat.size, edges.size)] = edges[: flat.size]
    return values


def write_list(directory, tops: dict, rows=ROWS, seed=0) -> list[str]:
    """``list.txt`` naming one file per entry of ``rows``; ``tops`` maps a top to (dtype, row shape)."""
    rng = np.random.default_rng(seed)
    names = []
    for number, count in enumerate(rows):
        name = f"part{number}.h5"
        with h5py.File(directory / name, "w") as handle:
            for top, (dtype, shape) in tops.items():
                handle[top] = _values(dtype, (count, *shape), rng)
        names.append(name)
    (directory / "list.txt").write_text("\n".join(names) + "\n")
    return names


def caffe_rows(make_net, tops: list[str], total: int) -> list[np.ndarray]:
    net = make_net(
        'layer { name: "h5" type: "HDF5Data" '
        + " ".join(f'top: "{top}"' for top in tops)
        + f' hdf5_data_param {{ source: "list.txt" batch_size: {total} }} }}\n'
    )
    net.forward()
    return [np.array(net.blobs[top].data) for top in tops]


def spec_of(directory, names, tops: dict, count: int) -> hdf5_range.Hdf5RangeSpec:
    return hdf5_range.Hdf5RangeSpec(
        files=tuple(str(directory / name) for name in names),
        count=count,
        batch_size=4,
        first_record=0,
        tops=tuple((top, None) for top in tops),
        row_shapes=tuple(shape for _, shape in tops.values()),
    )


def fast_rows(spec) -> tuple[list[np.ndarray], int]:
    """Every top's rows as read_chunks gives them, and the largest chunk."""
    chunks = [[] for _ in spec.tops]
    largest = 0
    for _, values in hdf5_range.read_chunks(spec):
        largest = max(largest, len(values[0]))
        for index, top_values in enumerate(values):
            chunks[index].append(top_values.copy())  # the arrays are reused for the next chunk
    return [np.concatenate(parts) for parts in chunks], largest


def assert_bitwise_equal(caffe_values: np.ndarray, fast_values: np.ndarray) -> None:
    """Equal bit for bit; a NaN equals any NaN (HDF5 versions keep or drop a NaN's payload)."""
    assert caffe_values.dtype == fast_values.dtype == np.float32
    assert caffe_values.shape == fast_values.shape
    nan = np.isnan(caffe_values)
    assert (np.isnan(fast_values) == nan).all()
    assert (caffe_values[~nan].view(np.uint32) == fast_values[~nan].view(np.uint32)).all()


STORED_TYPES = (
    ["<f4", "<f8", ">f8", "<f2", ">f2", ">f4"]
    + [f"{order}{kind}{size}" for kind in "iu" for size in (1, 2, 4, 8) for order in ("<",)]
    + [">i8", ">u4"]
)


@pytest.mark.parametrize("stored", STORED_TYPES)
def test_every_stored_type_reads_as_caffes_top_blobs(caffe, make_net, tmp_path, monkeypatch, stored):
    monkeypatch.chdir(tmp_path)
    # A chunk of 3 rows of the widest top: files are read in several chunks, cut mid-file.
    monkeypatch.setattr(hdf5_range, "CHUNK_BYTES", 3 * 4 * 2 * 3 * 4)
    tops = {"data": (stored, (2, 3, 4)), "aux": (stored, (3,)), "label": (stored, ())}
    names = write_list(tmp_path, tops)
    total = sum(ROWS)

    expected = caffe_rows(make_net, list(tops), total)
    got, largest = fast_rows(spec_of(tmp_path, names, tops, total))

    assert largest == 3
    for caffe_values, fast_values in zip(expected, got):
        assert_bitwise_equal(caffe_values, fast_values)


def test_hdf5s_conversion_is_not_numpys(tmp_path):
    """Why the values must come from HDF5's conversion: numpy's rounding gives another float32."""
    names = write_list(tmp_path, {"data": ("<f8", (len(FLOAT_EDGES),))}, rows=(1,))
    got, _ = fast_rows(spec_of(tmp_path, names, {"data": ("<f8", (len(FLOAT_EDGES),))}, 1))
    assert got[0][0, 2] == np.inf  # HDF5: a float64 above float32's largest overflows
    assert np.float64(3.4028235e38).astype(np.float32) == np.finfo(np.float32).max  # numpy rounds down


def test_a_limit_cuts_the_last_file(caffe, make_net, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tops = {"data": ("<f8", (2, 2)), "label": ("<i4", ())}
    names = write_list(tmp_path, tops)

    expected = caffe_rows(make_net, list(tops), 8)  # 5 + 1 + the first 2 rows of the last file
    got, _ = fast_rows(spec_of(tmp_path, names, tops, 8))

    for caffe_values, fast_values in zip(expected, got):
        assert_bitwise_equal(caffe_values, fast_values)


def test_what_caffe_might_read_otherwise_is_handed_over(tmp_path):
    names = write_list(tmp_path, {"data": ("<f4", (3,))}, rows=(4, 4))
    with h5py.File(tmp_path / names[1], "w") as handle:
        handle["data"] = np.zeros((4, 3), bool)  # HDF5 stores bool as an enum: Caffe refuses it
    spec = spec_of(tmp_path, names, {"data": ("<f4", (3,))}, 8)
    result = hdf5_range.scan_range(lambda message: None, spec)
    assert result["records"] == 4
    assert result["handover"][0] == 4 and "bool" in result["handover"][1]

    wrong_shape = spec_of(tmp_path, names[:1], {"data": ("<f4", (4,))}, 4)
    assert hdf5_range.scan_range(lambda message: None, wrong_shape)["handover"][0] == 0


# --- the scan: --workers N equals one Caffe pass ------------------------------------------------------

CLASSIFIER = """
layer { name: "flat" type: "Flatten" bottom: "data" top: "flat" }
layer { name: "ip" type: "InnerProduct" bottom: "flat" top: "ip" inner_product_param { num_output: 5 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "silence" type: "Silence" bottom: "aux" }
"""


def write_planted_list(directory, data_type: str = ">f8", rows=(7, 3, 12, 1, 9, 6, 5)) -> int:
    """A list whose data holds values beyond float32 and NaN, whose labels go out of range, in every file."""
    rng = np.random.default_rng(3)
    names = []
    for number, count in enumerate(rows):
        data = rng.uniform(-1, 1, (count, 2, 3, 2))
        data[count // 2, 1, number % 3, 0] = (1e39, np.nan, -1e39)[number % 3]
        if number % 2:
            data[0, 0, 0, 1] = 3.4028235e38
        labels = rng.integers(0, 5, count).astype(np.int64)
        labels[-1] = 5 + number if number % 2 == 0 else labels[-1]
        aux = rng.uniform(-1, 1, (count, 3)).astype(np.float16)
        aux[count - 1, 0] = np.inf if number == 2 else aux[count - 1, 0]
        name = f"part{number}.h5"
        with h5py.File(directory / name, "w") as handle:
            handle["data"], handle["label"], handle["aux"] = data.astype(data_type), labels, aux
        names.append(name)
    (directory / "list.txt").write_text("\n".join(names) + "\n")
    (directory / "net.prototxt").write_text(
        'layer { name: "h5" type: "HDF5Data" top: "data" top: "label" top: "aux"\n'
        '  hdf5_data_param { source: "list.txt" batch_size: 4 } }\n' + CLASSIFIER
    )
    return sum(rows)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(partition, "MIN_RECORDS_PER_TASK", 8)
    return tmp_path


@pytest.fixture
def task_kinds(monkeypatch):
    """The kinds of the tasks each parallel scan ran."""
    seen = []
    run_tasks = workers.run_tasks

    def spy(tasks, *args, **kwargs):
        seen.append(sorted({task.kind for task in tasks}))
        return run_tasks(tasks, *args, **kwargs)

    monkeypatch.setattr(workers, "run_tasks", spy)
    return seen


def scan_json(capsys, *argv):
    code = main([*argv, "--json", "-q"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


@pytest.mark.parametrize("limit", [None, 16])  # 16: inside the third file (records 10 to 21)
def test_workers_json_equals_one_caffe_pass(caffe, workdir, capsys, task_kinds, limit):
    total = write_planted_list(workdir)
    extra = () if limit is None else ("--limit", str(limit))

    reference = scan_json(capsys, "net.prototxt", "--no-fast-path", *extra)
    for count in (1, 2):
        assert scan_json(capsys, "net.prototxt", "--workers", str(count), *extra) == reference, count

    assert task_kinds == [["hdf5"], ["hdf5"]]
    code, report, _ = reference
    assert code == 1 and report["records_scanned"] == (limit or total)
    tops = {b["top"] for b in report["bad"]}
    assert tops == ({"data", "label", "aux"} if limit is None else {"data", "label"})


def test_a_type_held_to_no_oracle_is_read_by_caffes_layer(caffe, workdir, capsys, task_kinds):
    write_planted_list(workdir, data_type=np.longdouble)

    reference = scan_json(capsys, "net.prototxt", "--no-fast-path")
    assert scan_json(capsys, "net.prototxt", "--workers", "2") == reference
    assert task_kinds == [["caffe"]]


def modules_after_scan(report, spec):
    """The worker's scan, and which of Caffe's modules it had imported by the end."""
    result = hdf5_range.scan_range(report, spec)
    return result, sorted(name for name in sys.modules if name.split(".")[0] in ("caffe", "_caffe"))


def test_a_worker_never_imports_pycaffe(tmp_path):
    tops = {"data": ("<f8", (2, 2)), "label": ("<i4", ())}
    names = write_list(tmp_path, tops)
    spec = spec_of(tmp_path, names, tops, sum(ROWS))
    with IsolatedWorker() as worker:
        result, caffe_modules = worker.run(modules_after_scan, spec)
    assert result == {"records": sum(ROWS), "handover": None}
    assert caffe_modules == []


def crash(report, spec):
    """A reader that dies as HDF5 may on a damaged file."""
    os.kill(os.getpid(), signal.SIGSEGV)


def test_a_worker_that_dies_hands_the_pass_to_caffe(tmp_path, monkeypatch):
    tops = {"data": ("<f4", (2,))}
    names = write_list(tmp_path, tops)
    spec = spec_of(tmp_path, names, tops, sum(ROWS))
    monkeypatch.setitem(workers.READERS, "hdf5", crash)
    with pytest.raises(workers.HandedOver, match="its worker failed"):
        workers.run_tasks([partition.Task(0, 0, spec.count, "hdf5", (spec,), "list")], 1)


def test_the_survey_notes_each_files_rows_shapes_and_types_the_same_by_either_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for number, (rows, dtype) in enumerate([(3, ">f8"), (2, "<i2")]):
        with h5py.File(f"f{number}.h5", "w") as handle:
            handle["data"] = np.zeros((rows, 2, 5), dtype)
            handle["label"] = np.zeros(rows, np.uint8)
    with h5py.File("f1.h5", "a") as handle:
        handle["stored"] = handle["label"][...]
        del handle["label"]
        handle["label"] = h5py.SoftLink("/stored")  # followed by either path, as by Caffe
    (tmp_path / "list.txt").write_text("f0.h5 f1.h5\n")

    quick = hdf5_lists.inspect_files("list.txt", ["data", "label"], "src")
    monkeypatch.setattr(hdf5_lists, "_survey_clean_file", lambda *args: None)  # the high-level path
    slow = hdf5_lists.inspect_files("list.txt", ["data", "label"], "src")

    for files in (quick, slow):
        assert [(f.name, f.rows) for f in files] == [("f0.h5", 3), ("f1.h5", 2)]
        assert [f.layout for f in files] == [
            (((2, 5), np.dtype(">f8")), ((), np.dtype("u1"))),
            (((2, 5), np.dtype("<i2")), ((), np.dtype("u1"))),
        ]


def test_a_filter_only_h5py_has_is_read_by_caffe(caffe, workdir, capsys, task_kinds):
    # LZF comes with h5py, not with the HDF5 Caffe links: Caffe stops where h5py would read on.
    rows = np.ones((20, 3), np.float32)
    with h5py.File("a.h5", "w") as handle:
        handle.create_dataset("data", data=rows, compression="gzip", shuffle=True, fletcher32=True)
    with h5py.File("b.h5", "w") as handle:
        handle.create_dataset("data", data=rows, compression="lzf")
    (workdir / "list.txt").write_text("a.h5\nb.h5\n")
    (workdir / "net.prototxt").write_text(
        'layer { name: "h5" type: "HDF5Data" top: "data"\n'
        '  hdf5_data_param { source: "list.txt" batch_size: 4 } }\n'
    )

    code, out, err = scan_json_raw(capsys, "net.prototxt", "--no-fast-path")
    assert code == 2 and "Failed to read float dataset data" in err
    assert scan_json_raw(capsys, "net.prototxt", "--workers", "2") == (code, out, err)
    assert task_kinds == [["hdf5"]]  # the workers began, and handed the pass over at b.h5


def scan_json_raw(capsys, *argv):
    code = main([*argv, "--json", "-q"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_links_are_followed_within_a_file_and_handed_over_across_files(tmp_path):
    tops = {"data": ("<f4", (2,))}
    names = write_list(tmp_path, tops, rows=(3, 3))
    with h5py.File(tmp_path / names[0], "a") as handle:
        handle["stored"] = handle["data"][...]
        del handle["data"]
        handle["data"] = h5py.SoftLink("/stored")  # Caffe's H5LTfind_dataset finds the link: read
    with h5py.File(tmp_path / names[1], "a") as handle:
        del handle["data"]
        handle["data"] = h5py.ExternalLink(str(tmp_path / names[0]), "/stored")
    result = hdf5_range.scan_range(lambda message: None, spec_of(tmp_path, names, tops, 6))
    assert result == {
        "records": 3,
        "handover": [3, f"({tmp_path / names[1]}) 'data' is a link to another file"],
    }

    nested = hdf5_range.Hdf5RangeSpec((str(tmp_path / names[0]),), 3, 4, 0, (("g/data", None),), ((2,),))
    assert "names a path" in hdf5_range.scan_range(lambda message: None, nested)["handover"][1]


def test_an_enum_which_caffe_refuses_is_handed_over(tmp_path):
    enum = h5py.enum_dtype({"cat": 0, "dog": 1}, basetype="i1")  # h5py reads it as int8
    with h5py.File(tmp_path / "a.h5", "w") as handle:
        handle.create_dataset("data", data=np.zeros((4, 2), "i1"), dtype=enum)
    with h5py.File(tmp_path / "a.h5", "r") as handle:
        assert not hdf5_range.type_is_checked(handle["data"].dtype)
    spec = spec_of(tmp_path, ["a.h5"], {"data": ("i1", (2,))}, 4)
    assert "read by Caffe's own layer" in hdf5_range.scan_range(lambda message: None, spec)["handover"][1]
