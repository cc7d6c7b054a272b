"""The one command layer every tool goes through.

A tool declares a ``Command``: its options and its ``run``. Everything a user
should find the same in every tool lives here once: ``--json`` (or
``--format``), ``--version``, a usage error as one line (``PROG: error: ...
(see --help)``, exit 2, never argparse's usage block), and, through
``errors.run_command``, one-line input errors, Ctrl-C (130) and a reader of
stdout that went away (141).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Callable

from caffe_nanlayers import __version__
from caffe_nanlayers.errors import printable, run_command

EXIT_USAGE = 2


class _UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    """argparse whose errors are raised, so that they come out as one line, not a usage block."""

    def error(self, message):
        raise _UsageError(message)


def positive_int(text: str) -> int:
    """An option's whole number > 0 (argparse's ``type``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r} (must be > 0)")
    return value


@dataclass(frozen=True)
class Command:
    """A subcommand: what it says about itself, its own options, and what it does.

    ``run(args, prog)`` returns the exit code (0 clean, 1 problems found) and
    raises ``UserError`` for a mistake in the input. ``formats`` are the
    values of ``--format`` (``--json`` is ``--format json``). ``error_prefix``
    goes before an input error's message (the diagnosis tools say "error: ").
    ``split_at_dashes`` hands what follows ``--`` to ``run`` as ``args.rest``
    (``watch`` passes it to caffe), instead of to argparse.
    """

    description: str
    add_options: Callable[[Parser], None]
    run: Callable[[argparse.Namespace, str], int]
    formats: tuple[str, ...] = ("text", "json")
    usage: str | None = None
    epilog: str | None = None
    error_prefix: str = ""
    split_at_dashes: bool = False

    def parser(self, prog: str) -> Parser:
        parser = Parser(
            prog=prog,
            usage=self.usage.replace("PROG", prog) if self.usage else None,
            description=self.description,
            epilog=self.epilog,
        )
        self.add_options(parser)
        parser.add_argument(
            "--format", choices=self.formats, default="text", help="output format (default text)"
        )
        parser.add_argument(
            "--json", dest="format", action="store_const", const="json", help="same as --format json"
        )
        parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
        return parser

    def main(self, argv: list[str] | None, prog: str) -> int:
        """Parse ``argv`` (default: the process's arguments) and run; the exit code."""
        argv = list(sys.argv[1:] if argv is None else argv)
        rest = None
        if self.split_at_dashes and "--" in argv:
            split = argv.index("--")
            argv, rest = argv[:split], argv[split + 1 :]
        parser = self.parser(prog)
        try:
            args = parser.parse_args(argv)
        except _UsageError as exc:
            print(printable(f"{prog}: error: {exc} (see --help)"), file=sys.stderr)
            return EXIT_USAGE
        except SystemExit as exc:  # --help or --version, already printed
            return int(exc.code or 0)
        if self.split_at_dashes:
            args.rest = rest
        return run_command(prog, lambda: self.run(args, prog), error_prefix=self.error_prefix)
