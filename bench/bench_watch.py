"""``caffe-nan watch``: what guarding a real ``caffe train`` run costs, and how fast a NaN is explained.

The net is BVLC's LeNet with its own solver (``inv`` policy, momentum 0.9,
batch 64, CPU), trained by the real ``caffe`` binary from an LMDB of 1,000
generated MNIST-size records (1x28x28 bytes), written here.

1. Overhead: the same run trained by plain ``caffe train`` (glog to a file,
   as users keep a log) and by ``caffe-nan watch -- caffe train``, the two
   interleaved, wall and CPU time each (CPU: every process of the run,
   from the kernel's accounting of finished children), the ratio per
   repeat. Wall time on a shared machine moves with its load; the CPU the
   watch adds (a Python start-up, reading the log, the replay's worker
   importing pycaffe at a low priority once training is under way) does
   not, and is also set against BVLC's whole LeNet run of 10,000 iterations.
2. Time to diagnosis: the same solver with a step in the learning rate
   (x1e6 at iteration 1,050), snapshots every 100 iterations and a display
   every 10: the run goes NaN a few iterations after 1,050, the watch
   stops it and replays from snapshot 1,000. The figure is the time from
   the first sign to the printed diagnosis, against the time the replayed
   iterations took in training (read from glog's timestamps in the log).

Targets: the watched run at most 1.01x the plain one; the diagnosis in
under twice the replayed iterations' training time.

    python bench/bench_watch.py [--quick]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import summarize

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

OVERHEAD_TARGET = 1.01
DIAGNOSIS_TARGET = 2.0
LENET_FULL_RUN = 10_000  # BVLC's lenet_solver.prototxt max_iter

LENET = """name: "LeNet"
layer { name: "mnist" type: "Data" top: "data" top: "label" include { phase: TRAIN }
  transform_param { scale: 0.00390625 }
  data_param { source: "mnist_lmdb" batch_size: 64 backend: LMDB } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 20 kernel_size: 5 stride: 1
    weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 50 kernel_size: 5 stride: 1
    weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1"
  param { lr_mult: 1 } param { lr_mult: 2 }
  inner_product_param { num_output: 500
    weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  param { lr_mult: 1 } param { lr_mult: 2 }
  inner_product_param { num_output: 10
    weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""

SOLVER = """net: "lenet.prototxt"
base_lr: 0.01
momentum: 0.9
weight_decay: 0.0005
lr_policy: "inv"
gamma: 0.0001
power: 0.75
display: 100
max_iter: {max_iter}
snapshot_prefix: "snap/lenet"
snapshot_after_train: false
random_seed: 1
solver_mode: CPU
"""

NAN_SOLVER = """net: "lenet.prototxt"
base_lr: 0.01
momentum: 0.9
weight_decay: 0.0005
lr_policy: "step"
gamma: 1000000
stepsize: 1050
display: 10
max_iter: 100000
snapshot: 100
snapshot_prefix: "snap/nan"
random_seed: 1
solver_mode: CPU
"""

_GLOG_TIME = re.compile(r"^[IWEF]\d{4,8} (\d\d):(\d\d):(\d\d\.\d+)")


def find_caffe() -> str:
    from caffe_nanlayers.diagnose.watch import default_caffe

    found = default_caffe()
    if found is None:
        raise RuntimeError("no caffe binary (scripts/dev setup builds .venv/bin/caffe)")
    return found


def write_lenet_data(work: Path, records: int = 1000) -> None:
    import lmdb
    import numpy as np

    from caffe_nanlayers.proto_io import caffe_pb2

    rng = np.random.default_rng(0)
    env = lmdb.open(str(work / "mnist_lmdb"), map_size=1 << 30)
    datum = caffe_pb2().Datum()
    datum.channels, datum.height, datum.width = 1, 28, 28
    with env.begin(write=True) as txn:
        for index in range(records):
            datum.data = rng.integers(0, 256, (1, 28, 28), dtype=np.uint8).tobytes()
            datum.label = int(rng.integers(0, 10))
            txn.put(f"{index:08d}".encode(), datum.SerializeToString())
    env.close()
    (work / "lenet.prototxt").write_text(LENET)
    (work / "snap").mkdir(exist_ok=True)


def children_cpu() -> float:
    """CPU seconds (user + system) of every finished child and their children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def plain_run(caffe: str, work: Path, solver: str) -> tuple[float, float]:
    """Wall and CPU seconds of plain caffe train, glog to a file."""
    env = {**os.environ, "GLOG_logtostderr": "1"}
    env.pop("GLOG_minloglevel", None)
    cpu, started = children_cpu(), time.perf_counter()
    with open(work / "plain.log", "wb") as log:
        subprocess.run(
            [caffe, "train", "-solver", solver], cwd=work, stdout=log, stderr=log, env=env, check=True
        )
    return time.perf_counter() - started, children_cpu() - cpu


def watched_run(caffe: str, work: Path, solver: str) -> tuple[float, float, dict]:
    """Wall and CPU seconds (the watch, Caffe and the replay's worker) and the watch's JSON report."""
    cpu, started = children_cpu(), time.perf_counter()
    done = subprocess.run(
        [
            *(sys.executable, "-m", "caffe_nanlayers.cli", "watch", "--json", "--log", "watched.log"),
            *("--", caffe, "train", "-solver", solver),
        ],
        cwd=work,
        capture_output=True,
        text=True,
    )
    elapsed, used = time.perf_counter() - started, children_cpu() - cpu
    if done.returncode not in (0, 1):
        raise RuntimeError(f"caffe-nan watch failed ({done.returncode}): {done.stderr}")
    return elapsed, used, json.loads(done.stdout)


def overhead(caffe: str, work: Path, iterations: int, repeats: int) -> dict:
    (work / "overhead.prototxt").write_text(SOLVER.format(max_iter=iterations))
    plain_run(caffe, work, "overhead.prototxt")  # warm the page cache and the binary
    plain, watched = [], []
    for r in range(repeats):
        order = [plain_run, watched_run] if r % 2 == 0 else [watched_run, plain_run]
        for contender in order:
            result = contender(caffe, work, "overhead.prototxt")
            (plain if contender is plain_run else watched).append(result[:2])
    extra_cpu = summarize([w[1] - p[1] for w, p in zip(watched, plain)])
    caffe_cpu_per_iteration = summarize([p[1] / iterations for p in plain]).median
    return {
        "iterations": iterations,
        "plain": summarize([p[0] for p in plain]),
        "watched": summarize([w[0] for w in watched]),
        "wall": summarize([w[0] / p[0] for w, p in zip(watched, plain)]),
        "cpu": summarize([w[1] / p[1] for w, p in zip(watched, plain)]),
        "extra_cpu": extra_cpu,
        "per_iteration": summarize([p[0] / iterations for p in plain]).median,
        # The watch's extra CPU is paid once per run (start-up, the worker's pycaffe import) plus a
        # share per logged line: set against a whole LeNet run, as an upper bound of its cost.
        "projected": 1 + extra_cpu.median / (caffe_cpu_per_iteration * LENET_FULL_RUN),
    }


def glog_seconds(line: str) -> float | None:
    match = _GLOG_TIME.match(line)
    if not match:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def replayed_training_seconds(log: Path, start_iteration: int, sign_line: int) -> float:
    """How long the run took from its snapshot at ``start_iteration`` to the line of the first sign."""
    lines = log.read_text(errors="replace").splitlines()
    marker = f"_iter_{start_iteration}.solverstate"
    begin = next(
        glog_seconds(line) for line in lines if "Snapshotting solver state" in line and marker in line
    )
    end = glog_seconds(lines[sign_line - 1])
    return (end - begin) % 86400


def time_to_diagnosis(caffe: str, work: Path, repeats: int) -> list[dict]:
    (work / "nan.prototxt").write_text(NAN_SOLVER)
    results = []
    for _ in range(repeats):
        for old in (work / "snap").glob("nan_*"):
            old.unlink()
        shutil.rmtree(work / "watched_nan", ignore_errors=True)  # the replay's files of the last repeat
        _, _, report = watched_run(caffe, work, "nan.prototxt")
        if report["outcome"] != "nan" or not report["replay"] or not report["replay"]["diagnosis"]:
            raise RuntimeError(f"the NaN run did not end in a diagnosis: {json.dumps(report)[:2000]}")
        start = report["replay"]["start"]["iteration"]
        training = replayed_training_seconds(work / "watched.log", start, report["sign"]["line"])
        results.append(
            {
                "sign": report["sign"],
                "start": start,
                "replayed": report["sign"]["iteration"] - start,
                "training": training,
                "diagnosis": report["diagnosis_seconds"],
                "ratio": report["diagnosis_seconds"] / training,
                "producer": report["replay"]["diagnosis"]["producer"],
                "cause": report["cause"]["id"] if report["cause"] else None,
            }
        )
    return results


def run(quick: bool = False) -> dict:
    caffe = find_caffe()
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as tmp:
        work = Path(tmp)
        write_lenet_data(work)
        iterations, repeats = (100, 2) if quick else (500, 5)
        cost = overhead(caffe, work, iterations, repeats)
        diagnoses = time_to_diagnosis(caffe, work, 1 if quick else 3)
    wall, cpu = cost["wall"], cost["cpu"]
    rows = [
        [
            f"LeNet, {iterations} iterations, watched vs plain caffe train, wall time",
            wall.fmt(digits=3),
            f"<= {OVERHEAD_TARGET}x",
            "met" if wall.median <= OVERHEAD_TARGET else "missed",
        ],
        [
            "same, CPU time (Caffe, the watch, the replay's worker)",
            cpu.fmt(digits=3),
            "",
            f"+{cost['extra_cpu'].median:.2f} s CPU a run",
        ],
        [
            f"the watch's extra CPU against BVLC's whole LeNet run ({LENET_FULL_RUN} iterations)",
            f"{cost['projected']:.4f}x",
            f"<= {OVERHEAD_TARGET}x",
            "met" if cost["projected"] <= OVERHEAD_TARGET else "missed",
        ],
    ]
    ratios = summarize([d["ratio"] for d in diagnoses])
    first = diagnoses[0]
    rows.append(
        [
            f"first NaN (iteration {first['sign']['iteration']}) to printed diagnosis, vs the "
            f"{first['replayed']} replayed iterations in training",
            f"{ratios.fmt(digits=2)} ({first['diagnosis']:.2f} s vs {first['training']:.2f} s)",
            f"< {DIAGNOSIS_TARGET}x",
            "met" if ratios.median < DIAGNOSIS_TARGET else "missed",
        ]
    )
    return {
        "title": "5. caffe-nan watch (real caffe binary, LeNet, 1,000 generated 1x28x28 records, CPU)",
        "columns": ["figure", "measured", "target", ""],
        "rows": rows,
        "notes": [
            f"plain {cost['plain'].fmt(unit=' s')}, watched {cost['watched'].fmt(unit=' s')} per run "
            f"({repeats} interleaved repeats; plain step {cost['per_iteration'] * 1000:.1f} ms)",
            f"NaN run: sign {first['sign']['what']} = {first['sign']['text']}, replay from snapshot "
            f"{first['start']}, producer {first['producer']['layer'] if first['producer'] else None}, "
            f"cause {first['cause']}",
            f"measured {datetime.date.today().isoformat()}",
        ],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations and repeats")
    args = parser.parse_args(argv)
    result = run(quick=args.quick)
    print(result["title"])
    for row in result["rows"]:
        print("  " + " | ".join(row))
    for note in result["notes"]:
        print("  " + note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
