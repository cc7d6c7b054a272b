"""``caffe-nan doctor LOG``: read a caffe train log and name the probable cause of its NaN.

Exit codes: 0 no NaN/Inf in the log, 1 one found (a non-finite or saturated
loss, lr or debug_info value; diagnosed), 2 the log cannot be read or holds
no Caffe line at all. The log is streamed (gzip too) and read line by line
with a cap on a line's length, so memory does not grow with the log.
"""

from __future__ import annotations

import gzip
import io
import sys
import zlib
from contextlib import contextmanager
from pathlib import Path

from caffe_nanlayers.command import Command
from caffe_nanlayers.diagnose.caffe_log import LINE_LIMIT, parse_log
from caffe_nanlayers.diagnose.doctor import diagnose
from caffe_nanlayers.errors import UserError, reading, refuse_to_overwrite

GZIP_MAGIC = b"\x1f\x8b"
HEAD_BYTES = 8192  # what is looked at to tell a log from a binary file


def _display_name(path: str) -> str:
    return "<stdin>" if path == "-" else path


@contextmanager
def _open_log(path: str):
    """The log as text lines (gzip, found by its first bytes, decompressed), and its first bytes."""
    if path == "-":
        raw = getattr(sys.stdin, "buffer", None)
        if raw is None or not hasattr(raw, "peek"):  # a text stream given by an embedding program
            yield sys.stdin, b""
            return
    else:
        with reading(path, "a caffe train log"):
            raw = open(path, "rb")  # noqa: SIM115 (closed below)
    try:
        data = gzip.GzipFile(fileobj=raw) if raw.peek(2)[:2] == GZIP_MAGIC else raw
        head = data.peek(HEAD_BYTES)[:HEAD_BYTES]
        yield io.TextIOWrapper(data, encoding="utf-8", errors="replace"), head
    finally:
        if path != "-":
            raw.close()


def bounded_lines(handle, limit: int = LINE_LIMIT):
    """The lines of ``handle``, each cut at ``limit`` characters: the rest of a longer line is
    read and dropped piece by piece, so a log without newlines never sits whole in memory."""
    while True:
        line = handle.readline(limit + 1)  # one more: the reader sees that the line was longer
        if not line:
            return
        if len(line) > limit and not line.endswith("\n"):
            while True:  # skip to the end of this line
                rest = handle.readline(limit)
                if not rest or rest.endswith("\n"):
                    break
        yield line


def _read_log(path: str):
    """Parse the log; a file that cannot be read or decompressed is one line naming it."""
    name = _display_name(path)
    try:
        with _open_log(path) as (handle, head):
            return parse_log(bounded_lines(handle)), head
    except EOFError:  # gzip's own word for a file cut short
        raise UserError(f"{name}: truncated gzip file (it ends before its end-of-stream marker)") from None
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise UserError(f"{name}: corrupt gzip data ({exc})") from None
    except OSError as exc:
        raise UserError(f"{name}: cannot read: {exc.strerror or exc}") from None


def _saturated(verdict) -> bool:
    first = verdict.details.get("first")
    return bool(first) and first.get("kind") == "saturated"


def _options(parser) -> None:
    parser.add_argument("log", help="the log ('-' for stdin; gzip-compressed logs are decompressed)")
    parser.add_argument("--plot", metavar="PNG", help="also draw loss and lr per iteration into this PNG")
    parser.add_argument(
        "--follow", action="store_true", help="follow a log still being written; report its first NaN sign"
    )


def _run(args, prog: str) -> int:
    if args.follow:
        from caffe_nanlayers.diagnose.watch_follow import follow_log

        return follow_log(args.log, args.format)
    if args.plot:
        refuse_to_overwrite(args.plot, (args.log,), "--plot")
    log, head = _read_log(args.log)
    if not log.caffe_lines:
        name = _display_name(args.log)
        nul = head.find(b"\0")
        if nul >= 0:
            raise UserError(f"{name}: not a text log (byte {nul} is NUL), expected a caffe train log")
        raise UserError(
            f"{name}: no Caffe line in {log.lines} lines (expected glog lines such as "
            "'Iteration N, loss = X' or 'Train net output #0: loss = X', as caffe train prints)"
        )
    verdict = diagnose(log, args.log)
    if args.plot:
        from caffe_nanlayers.diagnose.log_plot import plot_log

        plot_log(
            log,
            args.plot,
            verdict.iteration,
            title=f"{Path(args.log).name}: {verdict.cause.id if verdict.cause else 'no NaN'}",
            sign_label="loss at 87.3365" if _saturated(verdict) else "first NaN/Inf",
        )
        verdict.details["plot"] = args.plot
    print(verdict.to_json() if args.format == "json" else verdict.to_text())
    if args.plot and args.format != "json":
        print(f"plot written to {args.plot}")
    return verdict.exit_code


COMMAND = Command(
    description=(
        "Read a caffe train log (glog lines, or an excerpt of one) and diagnose its first NaN/Inf "
        "or its 87.3365 plateau: probable causes, how sure, what to collect next."
    ),
    add_options=_options,
    run=_run,
    error_prefix="error: ",
)


def main(argv: list[str] | None = None, prog: str = "caffe-nan doctor") -> int:
    return COMMAND.main(argv, prog)


if __name__ == "__main__":
    sys.exit(main())
