"""``caffe-nan doctor LOG``: read a caffe train log and name the probable cause of its NaN.

Exit codes: 0 no NaN/Inf in the log, 1 one found (and diagnosed), 2 the log
cannot be read or holds no training lines.
"""

from __future__ import annotations

import gzip
import sys
from contextlib import contextmanager
from pathlib import Path

from caffe_nanlayers.diagnose.caffe_log import parse_log
from caffe_nanlayers.diagnose.cli_common import Parser, run
from caffe_nanlayers.diagnose.doctor import diagnose
from caffe_nanlayers.errors import UserError, reading, refuse_to_overwrite


@contextmanager
def _open_log(path: str):
    if path == "-":
        yield sys.stdin
        return
    with reading(path, "a caffe train log"):
        if path.endswith(".gz"):
            handle = gzip.open(path, "rt", encoding="utf-8", errors="replace")  # noqa: SIM115 (closed below)
        else:
            handle = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 (closed below)
    with handle:
        yield handle


def _parser(prog: str) -> Parser:
    parser = Parser(
        prog=prog, description="Read a caffe train log (glog lines) and diagnose its first NaN/Inf."
    )
    parser.add_argument("log", help="the log ('-' for stdin; .gz is read as gzip)")
    parser.add_argument("--plot", metavar="PNG", help="also draw loss and lr per iteration into this PNG")
    return parser


def main(argv: list[str] | None = None, prog: str = "caffe-nan doctor") -> int:
    parser = _parser(prog)

    def body(args) -> int:
        if args.plot:
            refuse_to_overwrite(args.plot, (args.log,), "--plot")
        with _open_log(args.log) as handle:
            try:
                log = parse_log(handle)
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                raise UserError(f"{args.log}: cannot read: {exc}") from None
        if not log.losses and not log.lrs:
            raise UserError(
                f"{args.log}: no training lines in {log.lines} lines (expected 'Iteration N, loss = X' "
                "as caffe train prints with GLOG_logtostderr=1)"
            )
        verdict = diagnose(log, args.log)
        if args.plot:
            from caffe_nanlayers.diagnose.log_plot import plot_log

            plot_log(
                log,
                args.plot,
                verdict.iteration,
                title=f"{Path(args.log).name}: {verdict.cause.id if verdict.cause else 'no NaN'}",
            )
            verdict.details["plot"] = args.plot
        print(verdict.to_json() if args.format == "json" else verdict.to_text())
        if args.plot and args.format != "json":
            print(f"plot written to {args.plot}")
        return verdict.exit_code

    return run(parser, argv, body)


if __name__ == "__main__":
    sys.exit(main())
