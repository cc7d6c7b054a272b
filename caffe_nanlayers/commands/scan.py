"""``caffe-nan scan`` (also ``scripts/scan_inputs.py``): name every bad record of a net's datasets.

Exit codes follow the linters users know: 0 every record clean, 1 bad
records found, 2 a usage or input error (printed as one line, never a
traceback).
"""

from __future__ import annotations

import sys

from caffe_nanlayers.command import Command, positive_int
from caffe_nanlayers.scan.progress import Progress
from caffe_nanlayers.scan.report import format_json, format_text
from caffe_nanlayers.scan.scanner import DEFAULT_PYTHON_BATCHES, scan
from caffe_nanlayers.scan.workers import default_workers

EPILOG = (
    "Exit codes: 0 all records clean, 1 bad records found, 2 usage or input error. "
    "The dataset is only read: Caffe opens a private view of it, never its directory."
)


def _options(parser) -> None:
    parser.add_argument("net", help="train_val.prototxt, or a solver.prototxt (its train net is scanned)")
    parser.add_argument(
        "--phase",
        type=str.upper,
        choices=("TRAIN", "TEST"),
        default="TRAIN",
        help="which phase's data layers to scan (default TRAIN)",
    )
    parser.add_argument(
        "--limit", type=positive_int, metavar="N", help="scan at most the first N records of each source"
    )
    parser.add_argument(
        "--python-batches",
        type=positive_int,
        default=DEFAULT_PYTHON_BATCHES,
        metavar="N",
        help="batches to draw from Python data layers when neither --limit nor another source "
        f"sets the pass (default {DEFAULT_PYTHON_BATCHES})",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=default_workers(),
        metavar="N",
        help="processes that split LMDB and LevelDB sources by key range and HDF5 lists by file "
        "(default: this machine's cores, here %(default)s)",
    )
    parser.add_argument(
        "--no-fast-path",
        action="store_true",
        help="read every record through Caffe's own data layers in one process (slower; the reference "
        "the fast path is tested against)",
    )


def _run(args, prog: str) -> int:
    progress = None

    def on_progress(done: int, total: int, unit: str) -> None:
        nonlocal progress
        if progress is None:
            progress = Progress(total, sys.stderr, unit=unit)
        progress.total = total  # an estimate while an HDF5 list's rows are counted by the workers
        progress.update(done)

    def end_progress_line() -> None:
        if progress is not None:
            progress.finish()

    try:
        report = scan(
            args.net,
            phase=args.phase,
            limit=args.limit,
            python_batches=args.python_batches,
            on_progress=None if args.quiet else on_progress,
            workers=None if args.no_fast_path else args.workers,
        )
    finally:  # the progress line ends before the report, or before the line saying why there is none
        end_progress_line()
    sys.stdout.write(format_json(report) if args.format == "json" else format_text(report))
    return 1 if report.bad else 0


COMMAND = Command(
    description=(
        "Run every record of the datasets read by a net's data layers through real Caffe, "
        "with a dummy loss that measures each record, and name the records holding NaN/Inf "
        "or out-of-range labels."
    ),
    add_options=_options,
    run=_run,
    epilog=EPILOG,
)


def main(argv: list[str] | None = None, prog: str = "caffe-nan scan") -> int:
    return COMMAND.main(argv, prog)


if __name__ == "__main__":
    sys.exit(main())
