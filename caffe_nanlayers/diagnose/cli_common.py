"""What the three diagnosis commands share on the command line.

Every tool of the package behaves the same for a user: ``--json`` (or
``--format json``), one-line errors with exit code 2, never a traceback for
a mistake in the input. argparse prints usage blocks and exits by itself;
this parser turns that into the same one-line form.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from caffe_nanlayers.errors import run_command


class _UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors, and the --json / --format options."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument("--format", choices=("text", "json"), default="text", help="output format")
        self.add_argument(
            "--json", dest="format", action="store_const", const="json", help="same as --format json"
        )

    def error(self, message):
        raise _UsageError(message)


def run(parser: Parser, argv: list[str] | None, body: Callable[[argparse.Namespace], int]) -> int:
    """Parse ``argv`` and run ``body``; user mistakes become one line on stderr and exit 2."""
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        print(f"{parser.prog}: error: {exc} (see --help)", file=sys.stderr)
        return 2
    return run_command(parser.prog, lambda: body(args), error_prefix="error: ")
