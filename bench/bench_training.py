"""Training overhead: what a finite check after every layer costs a real train step.

A check is only useful if people leave it in the net while they train, so
what matters is the cost per iteration of a real net, not of the check
alone. The net is LeNet as BVLC Caffe trains it on MNIST (batch 64, CPU),
fed random data by a DummyData layer so no dataset is needed. Three solvers
train side by side, their timed blocks interleaved:

- plain: the net as written;
- instrumented: the net exactly as ``caffe-nan instrument`` writes it (an
  in-place CheckFiniteLayer after every layer, forward and backward);
- python_noop: the instrumented net with every check replaced by a Python
  layer that does nothing (``noop_layer.py``): the share of the overhead
  that is Caffe calling into Python at all;
- debug_info: the plain net with ``debug_info: true`` and ``display: 1`` in
  the solver, Caffe's own tool (the solver enables it only on display
  iterations, so it needs ``display: 1`` to watch every step as the checks do).

glog reads its settings when Caffe loads, so each logging setup runs in its
own process: ``quiet`` (GLOG_minloglevel=2, errors only) and ``logged``
(GLOG_minloglevel=0, every line written to a log file, the way a user
keeps a training log). The headline figure is the ``logged`` one.

Target: the instrumented net at most 1.05x the plain one.

    python bench/bench_training.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from timing import fmt_seconds, ratios, summarize

BENCH_DIR = Path(__file__).resolve().parent
TARGET = 1.05

LENET = """name: "LeNet"
layer {
  name: "mnist" type: "DummyData" top: "data" top: "label"
  dummy_data_param {
    shape { dim: 64 dim: 1 dim: 28 dim: 28 } data_filler { type: "uniform" min: 0 max: 1 }
    shape { dim: 64 } data_filler { type: "uniform" min: 0 max: 9.99 }
  }
}
layer {
  name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 20 kernel_size: 5 stride: 1
    weight_filler { type: "xavier" } bias_filler { type: "constant" } }
}
layer {
  name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 }
}
layer {
  name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 50 kernel_size: 5 stride: 1
    weight_filler { type: "xavier" } bias_filler { type: "constant" } }
}
layer {
  name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 }
}
layer {
  name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1"
  param { lr_mult: 1 } param { lr_mult: 2 }
  inner_product_param { num_output: 500
    weight_filler { type: "xavier" } bias_filler { type: "constant" } }
}
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer {
  name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  param { lr_mult: 1 } param { lr_mult: 2 }
  inner_product_param { num_output: 10
    weight_filler { type: "xavier" } bias_filler { type: "constant" } }
}
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""

# lenet_solver.prototxt's optimisation settings; no test net, no snapshots.
SOLVER = """base_lr: 0.01
momentum: 0.9
weight_decay: 0.0005
lr_policy: "inv"
gamma: 0.0001
power: 0.75
max_iter: 1000000
snapshot: 0
random_seed: 1
solver_mode: CPU
"""

LOGGING = {
    "quiet": {"GLOG_minloglevel": "2"},
    "logged": {"GLOG_minloglevel": "0", "GLOG_logtostderr": "1"},
}


def instrument(net_path: Path, out_path: Path) -> None:
    """Run ``caffe-nan instrument`` exactly as a user would (its CLI)."""
    code = "import sys; from caffe_nanlayers.cli import main; sys.exit(main())"
    proc = subprocess.run(
        [sys.executable, "-c", code, "instrument", str(net_path), "-o", str(out_path)],
        capture_output=True,
        text=True,
    )
    # Exit 1 would mean "found problems"; the file is what we need.
    if proc.returncode not in (0, 1) or not out_path.exists():
        raise RuntimeError(f"caffe-nan instrument failed ({proc.returncode}): {proc.stderr.strip()}")


def noop_net(checked_text: str, n_checks: int) -> str:
    """The instrumented net with each CheckFiniteLayer swapped for ``noop_layer.NoopLayer``."""
    text, swapped = re.subn(
        r'module:\s*"caffe_nanlayers\.layers"(\s*)layer:\s*"CheckFiniteLayer"',
        r'module: "noop_layer"\1layer: "NoopLayer"',
        checked_text,
    )
    text = re.sub(r'(layer: "NoopLayer"\s*)param_str:\s*"(?:[^"\\]|\\.)*"', r"\1", text)
    if swapped != n_checks:
        raise RuntimeError(f"expected {n_checks} checks to swap for no-op layers, swapped {swapped}")
    return text


def worker(args) -> int:
    """Time the three solvers in this process (its glog set-up came from the parent)."""
    sys.path.insert(0, str(BENCH_DIR))
    from timing import interleaved

    from caffe_nanlayers.caffe_net import import_caffe, solver_from_text

    import_caffe(quiet=False)  # the parent chose GLOG_* for this process
    work = Path(args.workdir)
    plain = Path(args.plain).read_text()
    checked = Path(args.instrumented).read_text()
    noop = Path(args.noop).read_text()
    quiet_solver = SOLVER + "display: 0\n"
    debug_solver = SOLVER + "display: 1\ndebug_info: true\n"
    solvers = {
        "plain": solver_from_text(quiet_solver, plain, work / "plain"),
        "instrumented": solver_from_text(quiet_solver, checked, work / "instrumented"),
        "python_noop": solver_from_text(quiet_solver, noop, work / "python_noop"),
        "debug_info": solver_from_text(debug_solver, plain, work / "debug_info"),
    }
    for solver in solvers.values():
        solver.step(args.warmup)
    contenders = {name: (lambda s=s: s.step(args.iters)) for name, s in solvers.items()}
    times = interleaved(contenders, repeats=args.repeats, number=1, warmup=0)
    per_iter = {name: [t / args.iters for t in values] for name, values in times.items()}
    losses = {name: float(s.net.blobs["loss"].data) for name, s in solvers.items()}
    json.dump(
        {
            "per_iter": per_iter,
            "losses": losses,
            "check_reads": _check_reads(solvers["instrumented"]),
            "checks_in_step": _checks_in_step(solvers["instrumented"]),
        },
        sys.stdout,
    )
    return 0


def _checks_in_step(solver, steps: int = 51) -> float:
    """Seconds per iteration spent inside the checks' forward and backward during real steps.

    Set against ``_check_reads`` (the same reads timed alone, back to back),
    it shows what a check pays for running between Caffe's layers: the
    layers before it have pushed the interpreter's, numpy's and pycaffe's
    own data out of the caches, and the blob it reads may be out too.
    """
    import time

    from caffe_nanlayers.layers import CheckFiniteLayer

    spent = [0.0]
    clock = time.perf_counter
    forward, backward = CheckFiniteLayer.forward, CheckFiniteLayer.backward

    def timed_forward(self, bottom, top):
        start = clock()
        forward(self, bottom, top)
        spent[0] += clock() - start

    def timed_backward(self, top, propagate_down, bottom):
        start = clock()
        backward(self, top, propagate_down, bottom)
        spent[0] += clock() - start

    per_step = []
    CheckFiniteLayer.forward, CheckFiniteLayer.backward = timed_forward, timed_backward
    try:
        for _ in range(steps):
            spent[0] = 0.0
            solver.step(1)
            per_step.append(spent[0])
    finally:
        CheckFiniteLayer.forward, CheckFiniteLayer.backward = forward, backward
    return sorted(per_step)[len(per_step) // 2]


def _check_reads(solver) -> float:
    """Seconds per iteration spent in the checks' own reads of the blobs (no Caffe, no layer calls).

    Warm caches, back to back: a floor. What the instrumented net pays
    beyond this is Caffe calling a Python layer (reshape, forward, backward)
    for each check, and the cold caches each check runs in (_checks_in_step).
    """
    from timing import calls_for, interleaved

    from caffe_nanlayers.finite import all_finite

    net = solver.net
    checked = [
        blob
        for name, layer in zip(net._layer_names, net.layers)
        if layer.type == "Python"
        for blob in net.bottom_names[name]
    ]
    arrays = [net.blobs[b].data for b in checked] + [net.blobs[b].diff for b in checked]

    def reads():
        for array in arrays:
            all_finite(array)

    times = interleaved({"reads": reads}, repeats=9, number=calls_for(reads, 0.02))
    return sorted(times["reads"])[len(times["reads"]) // 2]


def run_worker(logging: str, plain: Path, checked: Path, noop: Path, work: Path, quick: bool) -> dict:
    env = dict(os.environ, **LOGGING[logging])
    # Caffe imports the no-op layer's module by name.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCH_DIR), env.get("PYTHONPATH")]))
    log_path = work / f"{logging}.log"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        "--plain",
        str(plain),
        "--instrumented",
        str(checked),
        "--noop",
        str(noop),
        "--workdir",
        str(work / logging),
        "--repeats",
        # One step per block, many repeats: the halves of each paired ratio
        # run within ~0.1 s of each other, so load from other jobs mostly
        # hits both, and 200 ratios pin the median down to about 1%.
        "15" if quick else "201",
        "--iters",
        "1",
        "--warmup",
        "3" if quick else "10",
    ]
    with open(log_path, "w") as log:
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    if proc.returncode != 0:
        tail = log_path.read_text()[-2000:]
        raise RuntimeError(f"training bench worker ({logging}) failed:\n{tail}")
    result = json.loads(proc.stdout)
    log_text = log_path.read_text(errors="replace")
    result["log_lines"] = log_text.count("\n")
    # BVLC Caffe logs one line per blob per layer with debug_info; builds that
    # made those lines DLOG (compiled out in Release) print only the summary.
    result["per_layer_debug_lines"] = log_text.count("[Forward] Layer")
    return result


def run(quick: bool = False) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        work = Path(tmp)
        plain = work / "lenet.prototxt"
        plain.write_text(LENET)
        checked = work / "lenet_instrumented.prototxt"
        instrument(plain, checked)
        n_checks = len(re.findall(r'layer:\s*"CheckFiniteLayer"', checked.read_text()))
        noop = work / "lenet_python_noop.prototxt"
        noop.write_text(noop_net(checked.read_text(), n_checks))
        runs = {
            logging: run_worker(logging, plain, checked, noop, work, quick) for logging in ("logged", "quiet")
        }
    quiet = runs["quiet"]
    plain_step = summarize(quiet["per_iter"]["plain"]).median
    reads_share = quiet["check_reads"] / plain_step
    in_step_share = quiet["checks_in_step"] / plain_step
    rows = []
    for logging, result in runs.items():
        t = result["per_iter"]
        base = t["plain"]
        overhead = ratios(t["instrumented"], base)
        rows.append(
            [
                logging,
                fmt_seconds(summarize(base).median),
                fmt_seconds(summarize(t["instrumented"]).median),
                overhead.fmt(digits=3),
                ratios(t["python_noop"], base).fmt(digits=3),
                fmt_seconds(summarize(t["debug_info"]).median),
                ratios(t["debug_info"], base).fmt(digits=3),
                "met" if overhead.median <= TARGET else "MISSED",
            ]
        )
    repeats = len(runs["quiet"]["per_iter"]["plain"])
    return {
        "title": "2. Training overhead (LeNet, batch 64, DummyData, CPU, one solver step)",
        "columns": [
            "glog",
            "plain / iter",
            "instrumented / iter",
            "instrumented vs plain",
            "no-op Python layers vs plain",
            "debug_info / iter",
            "debug_info vs plain",
            f"target (instrumented <= {TARGET}x)",
        ],
        "rows": rows,
        "notes": [
            f"instrumented = the net as `caffe-nan instrument` writes it ({n_checks} CheckFiniteLayers, "
            "forward and backward checks); debug_info = plain net, solver `debug_info: true`, `display: 1`.",
            "logged: GLOG_minloglevel=0, Caffe's log written to a file (the headline figure); "
            "quiet: GLOG_minloglevel=2. "
            f"Log lines written by the logged run: {runs['logged']['log_lines']}, of which "
            f"{runs['logged']['per_layer_debug_lines']} per-layer debug_info lines.",
            f"Of the instrumented net's extra time, the checks' own reads of the blobs (all_finite on every "
            f"checked data and diff, timed alone) take {fmt_seconds(quiet['check_reads'])} per iteration, "
            f"{reads_share:.1%} of a plain step. Inside real steps the checks' forward and backward take "
            f"{fmt_seconds(quiet['checks_in_step'])} per iteration ({in_step_share:.1%}), pycaffe's blob "
            "wrappers included: each runs after a Caffe layer has pushed the interpreter's, numpy's and "
            "pycaffe's own data (and a large blob) out of the caches, and pays for fetching them back. "
            f"The no-op column is what {n_checks} Python layers cost when they do nothing (Caffe calling "
            "reshape, forward and backward).",
            f"Times per iteration, median of {repeats} interleaved repeats; ratios are medians of per-repeat "
            "ratios, min-max in brackets.",
        ]
        + (
            [
                "This Caffe build prints none of debug_info's per-layer lines (they are DLOG, compiled out "
                "of a Release build), so debug_info costs here its |x| sums over every blob and one summary "
                "line per iteration; BVLC Caffe 1.0 (LOG_IF) also formats and writes a line per blob."
            ]
            if runs["logged"]["per_layer_debug_lines"] == 0
            else []
        ),
        "runs": runs,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations and repeats")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for option in ("--plain", "--instrumented", "--noop", "--workdir"):
        parser.add_argument(option, help=argparse.SUPPRESS)
    for option in ("--repeats", "--iters", "--warmup"):
        parser.add_argument(option, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    result = run(quick=args.quick)
    print(result["title"])
    print("  ".join(result["columns"]))
    for row in result["rows"]:
        print("  ".join(row))
    for note in result["notes"]:
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
