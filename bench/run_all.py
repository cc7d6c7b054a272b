"""Run every bench, print one table each, and record them with the machine in results.md.

Each ``bench_<name>.py`` here is a script with a ``run(quick=False)``
returning a dict: ``title``, ``columns`` and ``rows`` (strings) make its
table, optional ``notes`` (list of str) follow it; a bench that returns
other plain values gets them as a two-column table. A bench whose module is
missing, or which fails, is reported as such and the others still run
(the exit code is then 1), so one broken bench never hides the rest.

    python bench/run_all.py                  # everything, writes bench/results.md
    python bench/run_all.py --quick          # smoke run: fewer sizes and repeats, writes nothing
    python bench/run_all.py --only check     # one bench (repeatable); writes nothing unless --output
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import sys
import time
import traceback
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(1, str(BENCH_DIR.parent))  # the package, when it is not installed

from machine import describe  # noqa: E402

from caffe_nanlayers.atomic import write_atomic  # noqa: E402

# Run and reported in this order: the check and a training step first, then each tool.
BENCHES = {
    "check": "bench_check",
    "training": "bench_training",
    "scan": "bench_scan",
    "lint": "bench_lint",
    "doctor": "bench_doctor",
    "scan_scale": "bench_scan_scale",
    "watch": "bench_watch",
}


def markdown_table(columns: list[str], rows: list[list]) -> str:
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def render(name: str, result: dict) -> str:
    """A bench's result as a markdown section."""
    title = result.get("title", name)
    if "columns" in result and "rows" in result:
        table = markdown_table(result["columns"], result["rows"])
    else:
        plain = [[key, value] for key, value in result.items() if isinstance(value, (str, int, float, bool))]
        plain = [[key, f"{value:.4g}" if isinstance(value, float) else value] for key, value in plain]
        table = markdown_table(["figure", "value"], [row for row in plain if row[0] != "title"])
    parts = [f"### {title}", table]
    if result.get("notes"):
        parts.append("\n".join(f"- {note}" for note in result["notes"]))
    return "\n\n".join(parts)


def run_one(name: str, quick: bool) -> tuple[str, bool]:
    """(markdown section, ok) for one bench."""
    module_name = BENCHES[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return f"### {name}\n\nSkipped: bench/{module_name}.py is not in this checkout yet.", True
    start = time.perf_counter()
    try:
        result = module.run(quick=quick)
    except Exception:
        return f"### {name}\n\nFAILED:\n\n```\n{traceback.format_exc()}```", False
    took = time.perf_counter() - start
    return render(name, result) + f"\n\n_({name}: {took:.0f} s)_", True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer sizes, iterations and repeats")
    parser.add_argument(
        "--only",
        action="append",
        choices=list(BENCHES),
        metavar="NAME",
        help=f"run only NAME ({', '.join(BENCHES)})",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="write the results here (default: bench/results.md for a full run, nowhere for --quick/--only)",
    )
    args = parser.parse_args(argv)
    names = [name for name in BENCHES if not args.only or name in args.only]
    output = args.output
    if output is None and not args.quick and not args.only:
        output = BENCH_DIR / "results.md"

    start = time.perf_counter()
    machine = markdown_table(["", ""], describe())
    print(machine, flush=True)
    sections, all_ok = [], True
    for name in names:
        print(f"\n[bench] {name} ...", flush=True)
        section, ok = run_one(name, args.quick)
        all_ok &= ok
        sections.append(section)
        print("\n" + section, flush=True)
    took = time.perf_counter() - start

    if output is not None:
        when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        kind = "quick run" if args.quick else "full run"
        text = "\n\n".join(
            [
                "# Benchmark results",
                f"Written by `scripts/dev bench` ({kind}, {when}, {took:.0f} s). "
                "Every figure is a ratio against a baseline measured in the same run, "
                "median of interleaved repeats, min-max in brackets.",
                "## Machine",
                machine,
                "## Results",
                *sections,
            ]
        )
        write_atomic(output, text + "\n")
        print(f"\n[bench] wrote {output} ({took:.0f} s)")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
