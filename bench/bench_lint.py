"""Linter speed as a user feels it: one file from a pre-commit hook, and a whole model zoo.

Both figures include the CLI's start-up (a new Python process, the imports,
reading caffe.proto's schema out of pycaffe), because that is what a
pre-commit hook pays on every commit. For scale, a bare ``python -c pass``
is timed in the same rotation, and the in-process cost per file (no
start-up) is given too.

Files: the 54 BVLC net and solver files in ``../shared/corpus/bvlc`` beside
the checkout when present, else the package's ``prototxt_examples/``. The
single file is AlexNet's ``train_val.prototxt`` (or the largest example).

Target: one file under 0.3 s wall time.

Real nets: the 311 files of ``../shared/corpus/real`` (13 MB, 812,000 lines: forks, detection and
segmentation nets), linted one file at a time in one process, by this checkout and by the linter
as it was before the real-corpus work (``BASELINE``, extracted with ``git archive``), in
alternating child processes: the figure is the ratio of their CPU times within each repeat.
Target: at least 3x. Scaling: generated nets of 4 and 16 MB (a real net's layers repeated under
new names), CPU time and peak memory per MB: equal per-MB figures mean linear in the input.

    python bench/bench_lint.py [--quick] [--baseline REV]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(1, str(ROOT))

from timing import fmt_seconds, interleaved, summarize  # noqa: E402

from caffe_nanlayers.lint import Options, lint_paths  # noqa: E402
from caffe_nanlayers.lint.linter import expand_paths  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "bvlc"
REAL = ROOT.parent / "shared" / "corpus" / "real"
TARGET_SINGLE = 0.3
TARGET_REAL = 3.0
BASELINE = "be93d43"  # the linter before it learnt real nets' context and its fast parser

# Lints every *.prototxt below argv[2] with the package found in argv[1]: one lint_paths call per file
# (argv[3] == "files"), or one call for the whole directory, as `lint-prototxt DIR` does; prints
# {"cpu": seconds, "wall": seconds, "files": n, "rss_mb": peak}.
_PER_FILE = """
import json, os, resource, sys, time
sys.path.insert(0, sys.argv[1])
from caffe_nanlayers.lint import Options, lint_paths
from caffe_nanlayers.lint.linter import expand_paths
files, _ = expand_paths([sys.argv[2]])
cpu, wall = time.process_time(), time.perf_counter()
if sys.argv[3] == "files":
    for path in files:
        lint_paths([path], Options(cwd=os.path.dirname(path)))
else:
    lint_paths([sys.argv[2]], Options(cwd=sys.argv[2]))
print(json.dumps({"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall, "files": len(files),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _command() -> list[str]:
    script = Path(sys.executable).parent / "lint-prototxt"
    return [str(script)] if script.exists() else [sys.executable, "-m", "caffe_nanlayers.commands.lint"]


def _files() -> tuple[str, str, list[str], str]:
    """(directory, single file, all files, what they are)."""
    if CORPUS.is_dir():
        directory, what = CORPUS, "BVLC corpus"
        single = CORPUS / "models" / "bvlc_alexnet" / "train_val.prototxt"
    else:
        directory, what = ROOT / "prototxt_examples", "prototxt_examples"
        single = max(directory.rglob("*.prototxt"), key=lambda p: p.stat().st_size)
    files, _ = expand_paths([str(directory)])
    return str(directory), str(single), files, what


def _call(argv: list[str], cwd: str):
    def go():
        result = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if result.returncode not in (0, 1):
            raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}")

    return go


def _baseline_tree(rev: str, into: str) -> str | None:
    """The package at ``rev``, extracted under ``into``; None when git or the revision is not there."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "caffe_nanlayers"], capture_output=True, check=False
    )
    if archive.returncode != 0:
        return None
    subprocess.run(["tar", "-x", "-C", into], input=archive.stdout, check=True)
    return into


def _lint_in_child(package_root: str, target: str, mode: str = "files") -> dict:
    import json

    out = subprocess.run(
        [sys.executable, "-c", _PER_FILE, package_root, target, mode],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def _generated_net(path: Path, megabytes: int) -> None:
    """A real net's layers repeated under new names up to ``megabytes``: as wide and deep as real ones."""
    source = (REAL / "NVIDIA+caffe" / "models" / "resnet50" / "train_val.prototxt").read_text()
    body = source[source.index("layer", 500) :]
    parts, size, i = [source], len(source), 0
    while size < megabytes * 1_000_000:
        block = body
        for field in ("name", "top", "bottom"):
            block = block.replace(f'{field}: "', f'{field}: "r{i}_')
        parts.append(block)
        size, i = size + len(block), i + 1
    path.write_text("".join(parts))


def run_real(quick: bool = False, baseline: str = BASELINE) -> dict:
    """The real corpus against the baseline linter, and the scaling on generated nets."""
    import tempfile

    rows, notes = [], []
    result: dict = {"title": "lint-prototxt on real nets", "columns": ["what", "median", "note"]}
    with tempfile.TemporaryDirectory() as tmp:
        old = _baseline_tree(baseline, tmp)
        if REAL.is_dir():
            repeats = 1 if quick else 3
            for mode, what in (("files", "one file at a time"), ("directory", "as one directory")):
                current, before = [], []
                for i in range(repeats):
                    order = [("new", str(ROOT)), ("old", old)]
                    for who, root in order if i % 2 == 0 else order[::-1]:
                        if root is not None:
                            (current if who == "new" else before).append(
                                _lint_in_child(root, str(REAL), mode)
                            )
                n = current[0]["files"]
                cpu = summarize([r["cpu"] for r in current])
                rows.append([f"{n} real files, {what}, this checkout", f"{cpu.median:.2f} s", "CPU time"])
                result[f"real_{mode}_cpu_seconds"] = cpu.median
                if not before:
                    notes.append(f"baseline {baseline} not in this clone: no ratio")
                    continue
                old_cpu = summarize([r["cpu"] for r in before])
                ratio = summarize([b["cpu"] / c["cpu"] for b, c in zip(before, current)])
                rows.append([f"same, the linter at {baseline}", f"{old_cpu.median:.2f} s", "CPU time"])
                rows.append(["speed-up", f"{ratio.median:.2f}x", f"spread {ratio.low:.2f}-{ratio.high:.2f}x"])
                verdict = "met" if ratio.median >= TARGET_REAL else "MISSED"
                notes.append(f"target: at least {TARGET_REAL:g}x on the real corpus, {what}: {verdict}")
                result[f"real_{mode}_speedup"] = ratio.median
        per_mb = []
        for megabytes in (4, 16):
            net = Path(tmp) / f"generated_{megabytes}mb" / "net.prototxt"
            net.parent.mkdir()
            _generated_net(net, megabytes)
            measured = _lint_in_child(str(ROOT), str(net.parent))
            per_mb.append(measured["cpu"] / megabytes)
            rows.append(
                [
                    f"generated {megabytes} MB net",
                    f"{measured['cpu']:.2f} s",
                    f"{measured['cpu'] / megabytes:.2f} s/MB, peak {measured['rss_mb']:.0f} MB resident",
                ]
            )
        notes.append(f"time per MB, 16 MB over 4 MB: {per_mb[1] / per_mb[0]:.2f} (1.0: linear)")
    result["rows"], result["notes"] = rows, notes
    return result


def run(quick: bool = False, real: dict | None = None) -> dict:
    """The start-up figures on BVLC's corpus, then the real-corpus and scaling figures (``run_real``)."""
    directory, single, files, what = _files()
    command = _command()
    repeats = 5 if quick else 15
    times = interleaved(
        {
            "python -c pass": _call([sys.executable, "-c", "pass"], directory),
            "one file": _call([*command, single], directory),
            "one file, --no-schema": _call([*command, "--no-schema", single], directory),
            "whole corpus": _call([*command, directory], directory),
        },
        repeats=repeats,
    )
    in_process = []
    for _ in range(3 if quick else 7):
        start = time.perf_counter()
        report = lint_paths([directory], Options(cwd=directory))
        in_process.append((time.perf_counter() - start) / max(report.files, 1))
    n = len(files)
    single_s = summarize(times["one file"])
    corpus_s = summarize(times["whole corpus"])
    per_file = summarize([t / n for t in times["whole corpus"]])
    rows = [
        ["python -c pass (interpreter start-up)", fmt_seconds(summarize(times["python -c pass"]).median), ""],
        [
            f"lint-prototxt {os.path.relpath(single, directory)}",
            fmt_seconds(single_s.median),
            "wall, CLI start-up included",
        ],
        ["same, --no-schema", fmt_seconds(summarize(times["one file, --no-schema"]).median), ""],
        [
            f"lint-prototxt on {n} files ({what})",
            fmt_seconds(corpus_s.median),
            f"{n / corpus_s.median:.0f} files/s",
        ],
        ["per file, CLI start-up included", fmt_seconds(per_file.median), "whole run / files"],
        ["per file, in process", fmt_seconds(summarize(in_process).median), "parse + schema + rules"],
    ]
    verdict = "met" if single_s.median < TARGET_SINGLE else "MISSED"
    real = real if real is not None else run_real(quick=quick)
    return {
        "title": "lint-prototxt speed",
        "columns": ["what", "median", "note"],
        "rows": rows + real["rows"],
        "notes": [
            f"target: one file under {TARGET_SINGLE} s wall time: {verdict} "
            f"(median of {repeats}, spread {single_s.low:.3f}-{single_s.high:.3f} s)",
            "start-up never imports numpy or caffe: the schema is read from caffe_pb2.py into a private pool",
            *real["notes"],
        ],
        **{k: v for k, v in real.items() if k.startswith("real_")},
        "single_file_seconds": single_s.median,
        "corpus_files": n,
        "corpus_seconds": corpus_s.median,
        "seconds_per_file": per_file.median,
        "files_per_second": n / corpus_s.median,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--baseline", default=BASELINE, help="the revision to compare with on real nets")
    parser.add_argument("--real-only", action="store_true", help="only the real-corpus and scaling figures")
    args = parser.parse_args()
    real = run_real(quick=args.quick, baseline=args.baseline)
    results = [real] if args.real_only else [run(quick=args.quick, real=real)]
    for result in results:
        width = max(len(r[0]) for r in result["rows"])
        print(result["title"])
        for what, median, note in result["rows"]:
            print(f"  {what:<{width}}  {median:>10}  {note}")
        for note in result["notes"]:
            print(f"  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
