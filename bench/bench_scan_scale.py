"""Scan at dataset scale: ImageNet-sized records, JPEG-encoded records and an HDF5 list of many files.

Every figure is records per second, measured side by side in one run, and
compared with ceilings measured in the same run on one core (each the best
of three passes):

- *raw*: an LMDB of 3x256x256 uint8 Datums (196 KB each, 2.2 GB in all,
  ``--quick``: 0.2 GB). Ceiling: lmdb read + Datum parse + numpy view, one
  core. Also the disk's own read rate of ``data.mdb`` (1 MB reads), cold
  (the file's pages dropped from the page cache with
  ``posix_fadvise(DONTNEED)``) and warm. The scans read warm: the dataset
  was just written, and the machine's memory holds it.
- *JPEG*: an LMDB of JPEG-encoded 256x256 Datums (a float record holding a
  NaN planted among them). Ceiling: lmdb + parse + decode with Caffe's own
  OpenCV (``cv::imdecode`` through the scan's decoder), one core; Pillow's
  decode is timed beside it for comparison. The workers decode in their own
  processes; ``--no-fast-path`` is Caffe's Data layer decoding in one.
- *HDF5*: a list of 2,000 files of 100 rows of 3x32x32 float32 (2.4 GB).
  Ceiling: h5py read of every file + the finiteness check, one core. Also
  the survey alone (every file opened to check and count it, what the
  command does before one Caffe pass or a ``--limit``) and a worker alone
  (each file checked as the survey does, then read), in this process. The
  scan splits the list into runs of whole files, each checked and read by a
  worker with h5py (``hdf5_range``).

The scans are timed with ``--workers`` 1 and 2 (``--workers 1,2,4``) and
with Caffe's own layer alone (``--no-fast-path``); *streaming* is the rate
while the pass runs (from the progress messages), *end to end* the whole
call. Targets: one worker >= 0.9x the ceiling, N workers >= 0.8 x N x the
ceiling (up to the disk).

    python bench/bench_scan_scale.py [--quick] [--workers 1,2] [--hdf5-only [--hdf5-files N]]
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from caffe_nanlayers.finite import all_finite
from caffe_nanlayers.proto_io import caffe_pb2

SHAPE = (3, 256, 256)
RAW_RECORDS, QUICK_RAW_RECORDS = 11_000, 1_100  # 2.16 GB and 0.22 GB of data
JPEG_RECORDS, QUICK_JPEG_RECORDS = 6_000, 800  # a pass of several seconds at ~1,300 decodes/s a core
HDF5_FILES, QUICK_HDF5_FILES = 2_000, 200
HDF5_ROWS = 100  # per file, of 3x32x32 float32 (1.2 MB a file, 2.4 GB in all)
BATCH = 64
CEILING_RUNS = 3  # each ceiling is the best of this many passes
COLUMNS = ["dataset", "reader", "records/s end to end", "records/s streaming", "vs ceiling", "target"]
PLANTED = 777  # raw, JPEG: a float_data record with a NaN; HDF5: a row with a NaN (--quick sizes too)


def _images(count: int, rng) -> list[np.ndarray]:
    base = rng.integers(0, 256, SHAPE, dtype=np.uint8)
    return [np.roll(base, 7 * i, axis=2) for i in range(count)]


def make_raw_lmdb(path: Path, count: int) -> None:
    import lmdb

    pb2 = caffe_pb2()
    images = _images(16, np.random.default_rng(0))
    env = lmdb.open(str(path), map_size=1 << 33)
    txn = env.begin(write=True)
    for index in range(count):
        datum = pb2.Datum(channels=SHAPE[0], height=SHAPE[1], width=SHAPE[2], label=index % 1000)
        if index == PLANTED:
            values = images[0].astype(np.float32)
            values[1, 128, 128] = np.nan
            datum.float_data.extend(values.ravel().tolist())
        else:
            datum.data = images[index % 16].tobytes()
        txn.put(f"{index:08d}".encode(), datum.SerializeToString())
        if index % 1000 == 999:
            txn.commit()
            txn = env.begin(write=True)
    txn.commit()
    env.close()
    os.unlink(path / "lock.mdb")


def make_jpeg_lmdb(path: Path, count: int) -> None:
    import lmdb
    from PIL import Image

    pb2 = caffe_pb2()
    encoded = []
    for image in _images(16, np.random.default_rng(1)):
        smooth = np.cumsum(image.astype(np.int32), axis=1) % 256  # photo-like, not noise
        buffer = io.BytesIO()
        Image.fromarray(smooth.astype(np.uint8).transpose(1, 2, 0)).save(buffer, "JPEG", quality=90)
        encoded.append(buffer.getvalue())
    env = lmdb.open(str(path), map_size=1 << 32)
    with env.begin(write=True) as txn:
        for index in range(count):
            datum = pb2.Datum(channels=3, height=256, width=256, label=index % 1000)
            if index == PLANTED:  # a raw float record among the JPEGs, as a merged dataset may hold
                values = np.full(SHAPE, 100, np.float32)
                values[2, 128, 128] = np.nan
                datum.float_data.extend(values.ravel().tolist())
            else:
                datum.encoded, datum.data = True, encoded[index % 16]
            txn.put(f"{index:08d}".encode(), datum.SerializeToString())
    env.close()
    os.unlink(path / "lock.mdb")


def make_hdf5_list(directory: Path, files: int) -> Path:
    import h5py

    directory.mkdir()
    rng = np.random.default_rng(2)
    names = []
    for number in range(files):
        data = rng.uniform(-1, 1, (HDF5_ROWS, 3, 32, 32)).astype(np.float32)
        if number * HDF5_ROWS <= PLANTED < (number + 1) * HDF5_ROWS:
            data[PLANTED - number * HDF5_ROWS, 0, 0, 0] = np.nan
        name = directory / f"part{number:05d}.h5"
        with h5py.File(name, "w") as handle:
            handle["data"] = data
            handle["label"] = rng.integers(0, 10, HDF5_ROWS).astype(np.float32)
        names.append(str(name))
    listing = directory / "list.txt"
    listing.write_text("\n".join(names) + "\n")
    return listing


def disk_read(path: Path, cold: bool) -> float:
    """Seconds to read the file sequentially in 1 MB reads (cold: its cached pages dropped first)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if cold:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        start = time.perf_counter()
        while os.read(fd, 1 << 20):
            pass
        return time.perf_counter() - start
    finally:
        os.close(fd)


def lmdb_ceiling(path: Path, decode: str | None = None) -> float:
    """Seconds for one core to read every record, parse it and view or decode its pixels.

    ``decode``: None (a view of the bytes), "pillow", or "opencv", Caffe's own decode:
    ``cv::imdecode(data, -1)`` through the scan's decoder.
    """
    import lmdb

    datum = caffe_pb2().Datum()
    if decode == "pillow":
        from PIL import Image
    elif decode == "opencv":
        from caffe_nanlayers.scan import opencv_decode

        decoder, why = opencv_decode.load()
        if decoder is None:
            raise RuntimeError(why)
    env = lmdb.open(str(path), readonly=True, lock=False)
    start = time.perf_counter()
    with env.begin(buffers=True) as txn:
        for _, value in txn.cursor():
            datum.ParseFromString(value)
            if datum.encoded and decode == "pillow":
                np.asarray(Image.open(io.BytesIO(datum.data)).convert("RGB"))
            elif datum.encoded and decode == "opencv":
                decoder.decode(datum.data, opencv_decode.IMREAD_UNCHANGED)
            elif datum.encoded:
                np.frombuffer(datum.data, np.uint8)
            elif datum.data:
                np.frombuffer(datum.data, np.uint8).reshape(datum.channels, datum.height, datum.width)
            else:
                np.asarray(datum.float_data, np.float32)
    elapsed = time.perf_counter() - start
    env.close()
    return elapsed


def best_of(measure, *args, runs: int = CEILING_RUNS, **kwargs) -> float:
    """The fastest of ``runs`` timings: a ceiling is what one core can do, not what it did once."""
    return min(measure(*args, **kwargs) for _ in range(runs))


def hdf5_ceiling(listing: Path) -> float:
    import h5py

    start = time.perf_counter()
    for name in listing.read_text().split():
        with h5py.File(name, "r") as handle:
            all_finite(handle["data"][...])
            all_finite(handle["label"][...])
    return time.perf_counter() - start


def timed_scan(net: Path, workers: int | None, expected: int, every_record_bad: bool = False):
    """(streaming seconds for the whole pass or None, end-to-end seconds) of one scan, its answer checked.

    Streaming is the rate between the first and the last progress message, scaled to the pass;
    None when the pass is too short (under half a second) for that to mean anything.
    """
    from caffe_nanlayers.scan import scan

    marks = []
    start = time.perf_counter()
    report = scan(
        net, on_progress=lambda done, *_: marks.append((time.perf_counter(), done)), workers=workers
    )
    end_to_end = time.perf_counter() - start
    bad = sorted({b.record for b in report.bad})
    if report.records_scanned != expected or bad != (
        list(range(expected)) if every_record_bad else [PLANTED]
    ):
        raise AssertionError(f"wrong answer: {report.records_scanned} records, {len(bad)} bad")
    (t_first, first), (t_last, last) = marks[0], marks[-1]
    if t_last - t_first < 0.5 or last <= first:
        return None, end_to_end
    return (t_last - t_first) / (last - first) * expected, end_to_end


IMAGENET_TRANSFORM = (
    "scale: 0.00390625 mean_value: 104 mean_value: 117 mean_value: 123 crop_size: 224 mirror: true"
)


def _data_net(source: Path, transform: str = IMAGENET_TRANSFORM) -> str:
    return (
        f'layer {{ name: "data" type: "Data" top: "data" top: "label"\n'
        f'  data_param {{ source: "{source}" backend: LMDB batch_size: {BATCH} }}\n'
        f"  transform_param {{ {transform} }} }}\n"
    )


def write_nan_mean(path: Path) -> None:
    """A mean file with one NaN inside the crop: every record comes out bad, and is transformed to say so."""
    mean = np.full(SHAPE, 110, np.float32)
    mean[0, 128, 128] = np.nan
    blob = caffe_pb2().BlobProto(num=1, channels=SHAPE[0], height=SHAPE[1], width=SHAPE[2])
    blob.data.extend(mean.ravel().tolist())
    path.write_bytes(blob.SerializeToString())


def _hdf5_net(listing: Path) -> str:
    return (
        f'layer {{ name: "h5" type: "HDF5Data" top: "data" top: "label"\n'
        f'  hdf5_data_param {{ source: "{listing}" batch_size: {BATCH} }} }}\n'
    )


def fast_path_alone(path: Path, count: int, transform_text: str) -> float:
    """Seconds for one core to run the fast path over the whole LMDB, in this process (no start-up)."""
    from google.protobuf import text_format

    from caffe_nanlayers.scan import fast_path

    pb2 = caffe_pb2()
    transform = fast_path.Transform.of(text_format.Parse(transform_text, pb2.TransformationParameter()), pb2)
    spec = fast_path.RangeSpec(
        view=str(path),
        backend="LMDB",
        start_key=b"",
        count=count,
        batch_size=BATCH,
        first_channels=SHAPE[0],
        transform=transform,
        tops=(("data", None), ("label", None)),
    )
    start = time.perf_counter()
    result = fast_path.scan_range(lambda message: None, spec)
    elapsed = time.perf_counter() - start
    if result != {"records": count, "handover": None, "broken": []}:
        raise AssertionError(f"the fast path stopped: {result}")
    return elapsed


def hdf5_survey(listing: Path) -> float:
    """Seconds of the parent's survey of the list (every file opened, its datasets checked and counted)."""
    from caffe_nanlayers.scan import guarded_reads

    start = time.perf_counter()
    guarded_reads.inspect_hdf5(str(listing), ["data", "label"], "bench")
    return time.perf_counter() - start


def hdf5_worker_alone(listing: Path, count: int) -> float:
    """Seconds for one core to run a worker over the whole list, in this process (no start-up).

    As in a scan with workers, the worker checks each file as the survey does before reading it.
    """
    from caffe_nanlayers.scan import hdf5_lists, hdf5_range

    entries = tuple(hdf5_lists.read_list(str(listing), "bench"))
    spec = hdf5_range.Hdf5RangeSpec(
        files=tuple(name for _, name in entries),
        count=None,
        batch_size=BATCH,
        first_record=0,
        tops=(("data", None), ("label", None)),
        row_shapes=((3, 32, 32), ()),
        source=str(listing),
        entries=entries,
    )
    start = time.perf_counter()
    result = hdf5_range.scan_range(lambda message: None, spec)
    elapsed = time.perf_counter() - start
    if result["records"] != count or result["handover"] is not None or "refused" in result:
        raise AssertionError(f"the worker stopped: {result}")
    return elapsed


def measure_hdf5(listing: Path, count: int, workers: tuple[int, ...], row, figures: dict) -> None:
    """The HDF5 rows: the ceiling, the survey and a worker alone, then the scans, each against the ceiling."""
    ceiling = count / best_of(hdf5_ceiling, listing)
    figures["hdf5_ceiling"] = ceiling
    row("HDF5", "ceiling: h5py read + finite check, 1 core", count / ceiling, count, ceiling)
    survey = hdf5_survey(listing)
    figures["hdf5_survey_share"] = survey * ceiling / count
    row("HDF5", "survey alone (every file opened and checked, in its child)", survey, count, ceiling)
    figures["hdf5_worker_1_core"] = row(
        "HDF5",
        "worker alone (each file checked, then H5Dread into float32 + checks), 1 core",
        hdf5_worker_alone(listing, count),
        count,
        ceiling,
    )
    from caffe_nanlayers.caffe_net import import_caffe

    # The command imports pycaffe in the parent (it checks the net's layer types): in one process the
    # first scan would pay it alone, so it is paid before any is timed, as in the full run.
    import_caffe()
    for n in workers:
        streaming, total = timed_scan(listing.parent / "h5.prototxt", n, count)
        figures[f"hdf5_workers_{n}"] = row("HDF5", f"scan --workers {n}", total, count, ceiling, n, streaming)
        figures[f"hdf5_workers_{n}_end_to_end"] = count / total / (n * ceiling)
    streaming, total = timed_scan(listing.parent / "h5.prototxt", None, count)
    row("HDF5", "scan --no-fast-path (one Caffe process)", total, count, ceiling, 1, streaming)


def run_hdf5(quick: bool = False, workers: tuple[int, ...] = (1, 2), files: int | None = None) -> dict:
    """The HDF5 rows alone (``--hdf5-only``), on ``files`` files (``--hdf5-files``)."""
    files = files or (QUICK_HDF5_FILES if quick else HDF5_FILES)
    rows, figures = [], {}
    load_before = _load()
    with tempfile.TemporaryDirectory(prefix="bench-scan-scale-") as tmp:
        start = time.perf_counter()
        listing = make_hdf5_list(Path(tmp) / "h5", files)
        generated = time.perf_counter() - start
        (listing.parent / "h5.prototxt").write_text(_hdf5_net(listing))
        measure_hdf5(listing, files * HDF5_ROWS, workers, _row_adder(rows), figures)
    return {
        "title": "5. Scan at dataset scale: the HDF5 list",
        "columns": COLUMNS,
        "rows": rows,
        "notes": [
            f"HDF5: {files:,} files of {HDF5_ROWS} rows of 3x32x32 float32; generated in {generated:.0f} s.",
            f"Before the run: {load_before}; after: {_load()}. Scans read warm (the data was just written).",
        ],
        "figures": figures,
    }


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (the scan's workers and Caffe child)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def jpeg_rows(tmp: Path, count: int, workers: tuple[int, ...], row, figures: dict) -> None:
    """The JPEG rows: the ceilings (parse; + Pillow; + Caffe's OpenCV), the fast path, the scans.

    On a shared machine the wall-clock rates say how many cores the run was given as much as how
    fast it is: each decoding row's records per CPU second (all processes, start-ups included) go
    in ``figures`` too, a measure of the work per record that other loads do not change.
    """
    path = tmp / "jpeg"
    plain = count / lmdb_ceiling(path)
    pillow = count / lmdb_ceiling(path, decode="pillow")
    cpu = _cpu_seconds()
    ceiling = count / best_of(lmdb_ceiling, path, decode="opencv")
    figures["jpeg_ceiling_per_cpu_s"] = count * CEILING_RUNS / (_cpu_seconds() - cpu)
    figures.update(jpeg_parse=plain, jpeg_pillow=pillow, jpeg_ceiling=ceiling)
    row("JPEG", "lmdb + Datum parse, 1 core", count / plain, count, ceiling)
    row("JPEG", "lmdb + parse + JPEG decode (Pillow), 1 core", count / pillow, count, ceiling)
    row("JPEG", "ceiling: lmdb + parse + decode (Caffe's OpenCV), 1 core", count / ceiling, count, ceiling)
    transform = IMAGENET_TRANSFORM.replace(" mirror: true", "")
    figures["jpeg_fast_path_1_core"] = row(
        "JPEG",
        "fast path alone (decode, shape, label), 1 core",
        fast_path_alone(path, count, transform),
        count,
        ceiling,
    )
    (tmp / "jpeg.prototxt").write_text(_data_net(path))
    for n in [*workers, None]:
        cpu = _cpu_seconds()
        streaming, total = timed_scan(tmp / "jpeg.prototxt", n, count)
        name = f"jpeg_workers_{n}" if n else "jpeg_caffe"
        figures[f"{name}_per_cpu_s"] = count / (_cpu_seconds() - cpu)
        reader = f"scan --workers {n}" if n else "scan --no-fast-path (Caffe's Data layer)"
        figures[name] = row("JPEG", reader, total, count, ceiling, n or 1, streaming)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def _row_adder(rows: list):
    """``row(dataset, reader, seconds, count, ceiling_rate, n=1, streaming=None)``: one line of the table."""

    def row(dataset, reader, seconds, count, ceiling_rate, n=1, streaming=None):
        rate = count / seconds
        stream = count / streaming if streaming else None
        per_worker = (stream or rate) / (n * ceiling_rate)
        target = f"{per_worker:.2f}x ({'streaming' if stream else 'end to end'}, {n} worker{'s' * (n > 1)})"
        rows.append(
            [
                dataset,
                reader,
                f"{rate:,.0f}",
                f"{stream:,.0f}" if stream else "",
                f"{rate / ceiling_rate:.2f}x",
                target,
            ]
        )
        return stream or rate

    return row


def run(quick: bool = False, workers: tuple[int, ...] = (1, 2)) -> dict:
    raw_count = QUICK_RAW_RECORDS if quick else RAW_RECORDS
    jpeg_count = QUICK_JPEG_RECORDS if quick else JPEG_RECORDS
    hdf5_files = QUICK_HDF5_FILES if quick else HDF5_FILES
    rows, figures = [], {}
    load_before = _load()
    with tempfile.TemporaryDirectory(prefix="bench-scan-scale-") as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        make_raw_lmdb(tmp / "raw", raw_count)
        make_jpeg_lmdb(tmp / "jpeg", jpeg_count)
        listing = make_hdf5_list(tmp / "h5", hdf5_files)
        generated = time.perf_counter() - start
        size_gb = (tmp / "raw" / "data.mdb").stat().st_size / 1e9
        (tmp / "raw.prototxt").write_text(_data_net(tmp / "raw"))
        (listing.parent / "h5.prototxt").write_text(_hdf5_net(listing))

        row = _row_adder(rows)

        cold = disk_read(tmp / "raw" / "data.mdb", cold=True)
        warm = disk_read(tmp / "raw" / "data.mdb", cold=False)
        record_bytes = (tmp / "raw" / "data.mdb").stat().st_size / raw_count
        ceiling = raw_count / best_of(lmdb_ceiling, tmp / "raw")
        figures["raw_ceiling"] = ceiling
        figures["disk_cold_records_s"] = raw_count / cold
        figures["record_bytes"] = record_bytes
        row("raw", "disk read, cold (data.mdb, 1 MB reads)", cold, raw_count, ceiling)
        row("raw", "disk read, warm (page cache)", warm, raw_count, ceiling)
        row("raw", "ceiling: lmdb + Datum parse + numpy, 1 core", raw_count / ceiling, raw_count, ceiling)
        proven = fast_path_alone(tmp / "raw", raw_count, IMAGENET_TRANSFORM.replace(" mirror: true", ""))
        figures["raw_fast_path_1_core"] = row(
            "raw", "fast path alone, header only, 1 core", proven, raw_count, ceiling
        )
        write_nan_mean(tmp / "nan_mean.binaryproto")
        nan_mean = f"mean_file: '{tmp / 'nan_mean.binaryproto'}' crop_size: 224"
        measured = fast_path_alone(tmp / "raw", raw_count, nan_mean)
        figures["raw_transformed_1_core"] = row(
            "raw",
            "fast path alone, every record measured (a NaN in the mean file), 1 core",
            measured,
            raw_count,
            ceiling,
        )
        for n in workers:
            streaming, total = timed_scan(tmp / "raw.prototxt", n, raw_count)
            figures[f"raw_workers_{n}"] = row(
                "raw", f"scan --workers {n}", total, raw_count, ceiling, n, streaming
            )
        disk_read(tmp / "raw" / "data.mdb", cold=True)  # drops the file's pages: the next scan reads cold
        streaming, total = timed_scan(tmp / "raw.prototxt", workers[-1], raw_count)
        figures["raw_cold"] = row(
            "raw", f"scan --workers {workers[-1]}, cold", total, raw_count, ceiling, workers[-1], streaming
        )
        (tmp / "raw_nan_mean.prototxt").write_text(_data_net(tmp / "raw", nan_mean))
        for n in workers:
            streaming, total = timed_scan(tmp / "raw_nan_mean.prototxt", n, raw_count, every_record_bad=True)
            figures[f"raw_transformed_workers_{n}"] = row(
                "raw, every record measured (mean file with a NaN)",
                f"scan --workers {n}",
                total,
                raw_count,
                ceiling,
                n,
                streaming,
            )
        streaming, total = timed_scan(tmp / "raw.prototxt", None, raw_count)
        figures["raw_caffe"] = row(
            "raw", "scan --no-fast-path (Caffe's Data layer)", total, raw_count, ceiling, 1, streaming
        )

        jpeg_rows(tmp, jpeg_count, workers, row, figures)

        measure_hdf5(listing, hdf5_files * HDF5_ROWS, workers, row, figures)
    return {
        "title": "5. Scan at dataset scale (raw 3x256x256, JPEG, HDF5 list)",
        "columns": COLUMNS,
        "rows": rows,
        "notes": [
            f"raw: {raw_count:,} records, {size_gb:.2f} GB; JPEG: {jpeg_count:,} records; "
            f"HDF5: {hdf5_files:,} "
            f"files of {HDF5_ROWS} rows of 3x32x32 float32; generated in {generated:.0f} s; one run each.",
            f"Before the run: {load_before}; after: {_load()}. Scans read warm (the data was just written).",
            "The raw transform is ImageNet's (crop 224, three mean_value, scale): proven finite for uint8 "
            "records, so the fast path parses and checks sizes and labels; the planted float record is "
            "transformed and named.",
            "The JPEG scans use the same transform: each JPEG is decoded with Caffe's OpenCV and its "
            "shape and label checked (a decoded image is uint8: the proof holds); the planted float "
            "record is named.",
            "JPEG records per CPU second (every process, start-ups included): ceiling "
            f"{figures['jpeg_ceiling_per_cpu_s']:,.0f}; "
            + "; ".join(f"--workers {n} {figures[f'jpeg_workers_{n}_per_cpu_s']:,.0f}" for n in workers)
            + f"; --no-fast-path {figures['jpeg_caffe_per_cpu_s']:,.0f}.",
        ],
        "figures": figures,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the data")
    parser.add_argument(
        "--workers", default="1,2", help="worker counts to time, comma-separated (default 1,2)"
    )
    parser.add_argument("--hdf5-only", action="store_true", help="only the HDF5 list's rows")
    parser.add_argument(
        "--hdf5-files", type=int, help=f"files in the HDF5 list, with --hdf5-only (default {HDF5_FILES:,})"
    )
    args = parser.parse_args(argv)
    workers = tuple(int(n) for n in args.workers.split(","))
    if args.hdf5_only:
        result = run_hdf5(quick=args.quick, workers=workers, files=args.hdf5_files)
    else:
        result = run(quick=args.quick, workers=workers)
    print(result["title"])
    print(" | ".join(result["columns"]))
    for row in result["rows"]:
        print(" | ".join(row))
    for note in result["notes"]:
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
