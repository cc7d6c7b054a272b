"""Scan throughput: how close does ``caffe-nan scan`` come to just reading the LMDB?

The ceiling is what any scan must at least do: read every record of the
LMDB with the ``lmdb`` package, parse each ``Datum`` and view its bytes as a
numpy array. The scan does more, on purpose: real Caffe reads the records
and applies the training transform (here ``scale: 1/256``), because that is
what the net sees, and the dummy loss checks every value. To show where the
time goes, Caffe's own Data layer alone (the same net without the scanning
layer, in this process) is timed too: the scan cannot beat it.

Two scan figures: *streaming* (records per second while the pass runs, from
the scan's own progress messages) and *end to end* (the whole call: the
Caffe child starting and importing pycaffe, counting, the pass, naming the
bad records), which includes about a second of fixed cost.

Target: streaming at least 0.5x the ceiling. Dataset: 3x32x32 uint8 Datums
(CIFAR-sized), 100,000 records (20,000 with --quick), batch 256, with one
planted bad record so the scan's answer is checked on every repeat.

    python bench/bench_scan.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from timing import interleaved, summarize

from caffe_nanlayers.caffe_net import import_caffe
from caffe_nanlayers.proto_io import caffe_pb2

RECORDS = 100_000
QUICK_RECORDS = 20_000
BATCH = 256
SHAPE = (3, 32, 32)
TARGET = 0.5
PLANTED = 4_321  # this record is written as float_data holding a NaN


def make_lmdb(path: Path, count: int) -> None:
    import lmdb

    datum_class = caffe_pb2().Datum
    base = np.random.default_rng(0).integers(0, 256, SHAPE, dtype=np.uint8)
    env = lmdb.open(str(path), map_size=1 << 32)
    with env.begin(write=True) as txn:
        datum = datum_class(channels=SHAPE[0], height=SHAPE[1], width=SHAPE[2])
        for index in range(count):
            datum.label = index % 10
            datum.data = np.roll(base, index).tobytes()
            if index == PLANTED:
                bad = datum_class(channels=SHAPE[0], height=SHAPE[1], width=SHAPE[2], label=1)
                bad.float_data.extend([np.nan] + [1.0] * (int(np.prod(SHAPE)) - 1))
                txn.put(f"{index:08d}".encode(), bad.SerializeToString())
            else:
                txn.put(f"{index:08d}".encode(), datum.SerializeToString())
    env.close()
    os.unlink(path / "lock.mdb")


def net_text(source: Path) -> str:
    return (
        f'layer {{ name: "data" type: "Data" top: "data" top: "label"\n'
        f'  data_param {{ source: "{source}" backend: LMDB batch_size: {BATCH} }}\n'
        "  transform_param { scale: 0.00390625 } }\n"
    )


def read_ceiling(source: Path) -> int:
    """Every record read with lmdb, parsed as a Datum, viewed as a numpy array."""
    import lmdb

    datum_class = caffe_pb2().Datum
    count = 0
    env = lmdb.open(str(source), readonly=True, lock=False)
    with env.begin(buffers=True) as txn:
        for _, value in txn.cursor():
            datum = datum_class()
            datum.ParseFromString(value)
            if datum.data:
                array = np.frombuffer(datum.data, np.uint8)
            else:
                array = np.asarray(datum.float_data, np.float32)
            array.reshape(datum.channels, datum.height, datum.width)
            count += 1
    env.close()
    return count


def caffe_data_layer(net_path: Path, count: int) -> None:
    """Caffe's Data layer alone, one pass, in this process: the data path the scan runs on."""
    caffe = import_caffe()
    net = caffe.Net(str(net_path), caffe.TRAIN)
    for _ in range(-(-count // BATCH)):
        net.forward()
    del net


def run(quick: bool = False) -> dict:
    from caffe_nanlayers.scan import scan

    count = QUICK_RECORDS if quick else RECORDS
    repeats = 3 if quick else 5
    with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        make_lmdb(tmp / "db", count)
        generated_in = time.perf_counter() - t0
        (tmp / "data_only.prototxt").write_text(net_text(tmp / "db"))
        streaming: list[float] = []

        def scan_once():
            marks = []
            report = scan(
                tmp / "data_only.prototxt",
                on_progress=lambda done, *_: marks.append((time.perf_counter(), done)),
            )
            found = [(b.location.get("key"), b.top) for b in report.bad]
            if report.records_scanned != count or found != [(f"{PLANTED:08d}", "data")]:
                raise AssertionError(f"scan gave a wrong answer: {report.records_scanned} records, {found}")
            (t_first, first), (t_last, last) = marks[0], marks[-1]
            streaming.append((t_last - t_first) / (last - first) * count)

        contenders = {
            "ceiling": lambda: read_ceiling(tmp / "db"),
            "caffe": lambda: caffe_data_layer(tmp / "data_only.prototxt", count),
            "scan": scan_once,
        }
        times = interleaved(contenders, repeats=repeats, number=1, warmup=1)
    streaming = streaming[1:]  # the warm-up run is not a repeat
    rates = {name: [count / t for t in values] for name, values in times.items()}
    rates["streaming"] = [count / t for t in streaming]
    vs = {name: summarize([r / c for r, c in zip(rates[name], rates["ceiling"])]) for name in rates}
    median = {name: summarize(values).median for name, values in rates.items()}
    met = vs["streaming"].median >= TARGET
    labels = {
        "ceiling": "ceiling: lmdb + Datum parse + numpy",
        "caffe": "Caffe Data layer alone (scale transform)",
        "streaming": "caffe-nan scan, streaming",
        "scan": "caffe-nan scan, end to end",
    }
    rows = [
        [labels[name], f"{median[name]:,.0f}", vs[name].fmt()]
        for name in ("ceiling", "caffe", "streaming", "scan")
    ]
    return {
        "title": "3. Scan throughput (LMDB of 3x32x32 uint8 Datums)",
        "columns": ["reader", "records/s", "speed vs ceiling"],
        "rows": rows,
        "notes": [
            f"{count:,} records, batch {BATCH}, generated in {generated_in:.1f} s; medians of {repeats} "
            "interleaved repeats, min-max in brackets; every scan must name exactly the planted record.",
            f"Target: streaming >= {TARGET}x the ceiling: {'met' if met else 'MISSED'}. The scan runs on "
            "Caffe's Data layer (its reader and transform threads), so the Caffe row is its limit; end to "
            "end adds the child process and the pycaffe import, about a second.",
        ],
        "records": count,
        "streaming_vs_ceiling": vs["streaming"].median,
        "end_to_end_vs_ceiling": vs["scan"].median,
        "caffe_vs_ceiling": vs["caffe"].median,
        "target_met": met,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_RECORDS:,} records, 3 repeats")
    args = parser.parse_args(argv)
    result = run(quick=args.quick)
    print(result["title"])
    for row in result["rows"]:
        print("  ".join(row))
    for note in result["notes"]:
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
