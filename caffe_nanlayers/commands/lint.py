"""``lint-prototxt`` / ``caffe-nan lint``: the command line over ``caffe_nanlayers.lint``.

Follows ruff's and flake8's habits: ``path:line:col: CODE message``,
``--select``/``--ignore`` by code or prefix, ``--format`` for machines,
``--explain CODE``; exit 0 clean, 1 findings, 2 usage or parse error. It
imports neither numpy nor caffe: a pre-commit hook runs it on every commit.
"""

from __future__ import annotations

import argparse
import os
import sys

from caffe_nanlayers.command import Command
from caffe_nanlayers.errors import UserError, printable

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


def _codes(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [c.strip() for v in values for c in v.split(",") if c.strip()]


def parse_input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """``[BLOB=]N,C,H,W`` -> (blob or '*', shape)."""
    name, _, dims = text.rpartition("=")
    try:
        shape = tuple(int(d) for d in dims.replace("x", ",").split(",") if d.strip())
    except ValueError:
        shape = ()
    if not shape or any(d <= 0 for d in shape):
        raise UserError(f"--input-shape: expected [BLOB=]N,C,H,W with positive integers, found {text!r}")
    return name or "*", shape


def _options(p) -> None:
    p.add_argument("paths", nargs="*", help="prototxt files or directories (searched for *.prototxt)")
    p.add_argument("--select", action="append", metavar="CODES", help="only these codes or prefixes")
    p.add_argument("--ignore", action="append", metavar="CODES", help="skip these codes or prefixes")
    p.add_argument("--explain", metavar="CODE", help="show a rule's rationale, fix and examples")
    p.add_argument("--list-rules", action="store_true", help="list every code: severity, name, summary")
    p.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="[BLOB=]N,C,H,W",
        help="shape of a data blob the prototxt does not state (no BLOB: every data layer's first top)",
    )
    p.add_argument("--no-schema", action="store_true", help="skip the caffe.proto checks (NAN001-NAN003)")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto", help="colour the output")


def _list_rules() -> str:
    from caffe_nanlayers.lint.rules import NOT_LINTED, RULES

    rows = [f"{r.code}  {r.severity:<7}  {r.name:<28}  {r.summary}" for r in (NOT_LINTED, *RULES.values())]
    return "\n".join(rows)


def _explain(code: str) -> str:
    from caffe_nanlayers.lint.rules import NOT_LINTED, RULES

    wanted = code.strip().upper()
    rule = NOT_LINTED if wanted == NOT_LINTED.code else RULES.get(wanted)
    if rule is None:
        raise UserError(f"--explain: expected a rule code such as NAN101, found {code!r} (see --list-rules)")
    return rule.explain()


def _use_colour(choice: str, stream) -> bool:
    if choice != "auto":
        return choice == "always"
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def run(args: argparse.Namespace, prog: str) -> int:
    if args.list_rules:
        print(_list_rules())
        return EXIT_CLEAN
    if args.explain:
        print(_explain(args.explain), end="")
        return EXIT_CLEAN
    if not args.paths:
        raise UserError("expected at least one prototxt file or directory, found none")
    from caffe_nanlayers.lint.formatters import render
    from caffe_nanlayers.lint.linter import Options, lint_paths

    options = Options(
        select=_codes(args.select),
        ignore=_codes(args.ignore) or [],
        input_shapes=dict(parse_input_shape(s) for s in args.input_shape),
        use_schema=not args.no_schema,
    )
    report = lint_paths(args.paths, options)
    for note in report.notes:
        print(printable(note), file=sys.stderr)
    for error in report.errors:
        print(printable(error), file=sys.stderr)
    # Machines get the files that were not linted as entries too; people read them on stderr.
    shown = report.findings if args.format == "text" else report.findings + report.not_linted
    output = render(shown, args.format, colour=_use_colour(args.color, sys.stdout))
    if output or args.format != "text":
        print(output)
    if report.errors:
        return EXIT_ERROR
    return EXIT_FINDINGS if report.findings else EXIT_CLEAN


COMMAND = Command(
    description="Report Caffe net and solver configurations known to produce NaN or to break training.",
    add_options=_options,
    run=run,
    formats=("text", "json", "github", "sarif"),
    epilog="Exit codes: 0 clean, 1 findings, 2 usage or parse error. "
    "Silence a code inline with '# lint-prototxt: disable=CODE'.",
)


def main(argv: list[str] | None = None, prog: str = "lint-prototxt") -> int:
    return COMMAND.main(argv, prog)


if __name__ == "__main__":
    sys.exit(main())
