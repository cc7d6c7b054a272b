"""``caffe-nan``: one entry point for every tool, one subcommand each.

The subcommands are listed in ``caffe_nanlayers.commands``; this dispatcher
imports only the one asked for, so ``caffe-nan lint`` starts without
numpy-heavy or Caffe imports.
"""

from __future__ import annotations

import difflib
import importlib
import sys

from caffe_nanlayers import __version__
from caffe_nanlayers.commands import SUBCOMMANDS

USAGE = (
    "usage: caffe-nan {"
    + ",".join(SUBCOMMANDS)
    + "} [options]\n\n"
    + "\n".join(f"  {name:<11} {summary}" for name, (_, summary) in SUBCOMMANDS.items())
    + "\n\nRun 'caffe-nan SUBCOMMAND --help' for its options. Exit codes: 0 clean, 1 problems found, 2 error."
)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if argv and argv[0] == "--version":
        print(f"caffe-nan {__version__}")
        return 0
    if not argv or argv[0] not in SUBCOMMANDS:
        # A usage error is one line, as for every subcommand; --help has the whole usage.
        print(f"caffe-nan: {_usage_error(argv[0] if argv else None)}", file=sys.stderr)
        return 2
    name, rest = argv[0], argv[1:]
    module_name, _ = SUBCOMMANDS[name]
    return importlib.import_module(module_name).main(rest, prog=f"caffe-nan {name}")


def _usage_error(given: str | None) -> str:
    expected = f"expected one of {', '.join(SUBCOMMANDS)}; see caffe-nan --help"
    if given is None:
        return f"no subcommand given ({expected})"
    close = difflib.get_close_matches(given, SUBCOMMANDS, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown subcommand {given!r} ({hint}{expected})"


if __name__ == "__main__":
    sys.exit(main())
