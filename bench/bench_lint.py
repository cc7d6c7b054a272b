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

    python bench/bench_lint.py [--quick]
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
TARGET_SINGLE = 0.3


def _command() -> list[str]:
    script = Path(sys.executable).parent / "lint-prototxt"
    return [str(script)] if script.exists() else [sys.executable, "-m", "caffe_nanlayers.lint.cli"]


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


def run(quick: bool = False) -> dict:
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
    return {
        "title": "lint-prototxt speed",
        "columns": ["what", "median", "note"],
        "rows": rows,
        "notes": [
            f"target: one file under {TARGET_SINGLE} s wall time: {verdict} "
            f"(median of {repeats}, spread {single_s.low:.3f}-{single_s.high:.3f} s)",
            "start-up never imports numpy or caffe: the schema is read from caffe_pb2.py into a private pool",
        ],
        "single_file_seconds": single_s.median,
        "corpus_files": n,
        "corpus_seconds": corpus_s.median,
        "seconds_per_file": per_file.median,
        "files_per_second": n / corpus_s.median,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    result = run(quick=parser.parse_args().quick)
    width = max(len(r[0]) for r in result["rows"])
    print(result["title"])
    for what, median, note in result["rows"]:
        print(f"  {what:<{width}}  {median:>10}  {note}")
    for note in result["notes"]:
        print(f"  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
