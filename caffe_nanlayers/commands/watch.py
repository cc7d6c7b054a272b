"""``caffe-nan watch [options] -- caffe train -solver S [caffe flags]`` (or ``caffe-nan watch SOLVER``).

Exit codes: 0 training ended clean, 1 a NaN was found (Caffe stopped, and
the NaN diagnosed), 2 a usage or input error, 3 Caffe failed by itself (a
CHECK, a missing file: its last FATAL line is printed), 130 Ctrl-C.
"""

from __future__ import annotations

import sys

from caffe_nanlayers.command import Command
from caffe_nanlayers.errors import UserError


def _options(parser) -> None:
    parser.add_argument("solver", nargs="?", help="solver prototxt: runs 'caffe train -solver SOLVER'")
    parser.add_argument("--log", help="where Caffe's full log is written (default: beside the snapshots)")
    parser.add_argument(
        "--out", help="directory for the replay's files (default: the log's name with _nan, beside it)"
    )
    parser.add_argument("--no-replay", action="store_true", help="stop and give the doctor's verdict only")
    parser.add_argument(
        "--status-every",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="in a pipe or a file, a status line at most this often (default: %(default)s)",
    )
    parser.add_argument(
        "--caffe", help="the caffe binary for the SOLVER form (default: .venv/bin/caffe, else PATH)"
    )


def _run(args, prog: str) -> int:
    from caffe_nanlayers.diagnose.watch import (
        CaffeCommand,
        Watch,
        WatchOptions,
        default_caffe,
        parse_caffe_command,
    )

    caffe_argv = args.rest
    if caffe_argv is not None:
        if args.solver:
            raise UserError(f"give either SOLVER or '-- caffe train ...', not both (SOLVER {args.solver!r})")
        command = parse_caffe_command(caffe_argv)
    elif args.solver:
        caffe = args.caffe or default_caffe()
        if caffe is None:
            raise UserError(
                "no caffe binary: none in this environment's bin/ nor on PATH; give --caffe PATH "
                "or '-- /path/to/caffe train -solver SOLVER'"
            )
        command = CaffeCommand([caffe, "train", "-solver", args.solver], args.solver)
    else:
        raise UserError("expected a SOLVER or '-- caffe train -solver SOLVER [caffe flags]'")
    if args.status_every <= 0:
        raise UserError(f"--status-every must be > 0, not {args.status_every:g}")
    options = WatchOptions(command, args.log, args.out, not args.no_replay, args.status_every)

    def progress(text: str) -> None:
        print(f"{prog}: {text}", file=sys.stderr, flush=True)

    report = Watch(options, on_progress=progress).run()
    print(report.to_json() if args.format == "json" else report.to_text(), flush=True)
    return report.exit_code


COMMAND = Command(
    usage="PROG [options] -- caffe train -solver SOLVER [caffe flags]\n       PROG [options] SOLVER",
    description="Run caffe train unchanged and read its log as it is written; at the first NaN stop "
    "Caffe at once (no snapshot of the broken weights), give the doctor's verdict, replay from the "
    "newest snapshot before the NaN and name the producing layer.",
    add_options=_options,
    run=_run,
    error_prefix="error: ",
    split_at_dashes=True,
)


def main(argv: list[str] | None = None, prog: str = "caffe-nan watch") -> int:
    return COMMAND.main(argv, prog)


if __name__ == "__main__":
    sys.exit(main())
