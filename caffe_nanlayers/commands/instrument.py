"""``caffe-nan instrument NET -o OUT``: write a copy of a net with a finite check after every layer.

Exit codes: 0 written, 2 the net cannot be read or an option is wrong. The
input is never modified; a solver is accepted too (its train net is used).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from caffe_nanlayers.atomic import write_atomic
from caffe_nanlayers.command import Command
from caffe_nanlayers.diagnose.instrument import DIRECTIONS, MODES, instrument_net, is_loss_layer, one_line
from caffe_nanlayers.errors import UserError, refuse_to_overwrite, writing
from caffe_nanlayers.proto_io import read_net_or_solver


def _names(values: list[str] | None, option: str) -> list[str]:
    names = [name.strip() for value in values or () for name in value.split(",") if name.strip()]
    if values is not None and not names:  # `--only ""` checking every layer would be the opposite
        raise UserError(f"{option}: no layer name given (expected LAYER[,LAYER])")
    return names


def _nothing_to_check(net, only: list[str], skip: list[str], source) -> UserError:
    """Why no check was added: an instrumented copy without one would look like a clean net."""
    by_name = {layer.name: layer for layer in net.layer}
    losses = [repr(name) for name in only if is_loss_layer(by_name[name])]
    if losses:
        what = f"{losses[0]} is a loss layer" if len(losses) == 1 else f"{', '.join(losses)} are loss layers"
        why = f"{what}: no check follows a loss (it would switch off backward; locate reads the loss itself)"
    elif only:
        why = "the layers given to --only have no top to check"
    elif skip:
        why = "--skip leaves no layer that a check can follow"
    else:
        why = "the net has no layer that a check can follow (loss layers get none)"
    return UserError(f"{source}: no check added: {why}")


def _options(parser) -> None:
    parser.add_argument("net", help="net prototxt (or a solver: its train net)")
    parser.add_argument(
        "-o", "--output", help="where to write (default: NET.checked.prototxt; '-' for stdout)"
    )
    parser.add_argument(
        "--only", action="append", metavar="LAYER[,LAYER]", help="check only after these layers"
    )
    parser.add_argument(
        "--skip", action="append", metavar="LAYER[,LAYER]", help="no check after these layers"
    )
    parser.add_argument("--direction", choices=DIRECTIONS, default="both", help="which passes to check")
    parser.add_argument("--mode", choices=MODES, default="raise", help="what a check does when it fires")
    parser.add_argument("--dump-dir", help="where mode 'dump' writes the offending blobs (default nan_dumps)")


def _run(args, prog: str) -> int:
    resolved = read_net_or_solver(args.net)
    source = resolved.path
    text = source.read_text(encoding="utf-8") if source is not None else None
    source_name = source.name if source is not None else f"{Path(args.net).name} ({resolved.note})"
    only, skip = _names(args.only, "--only"), _names(args.skip, "--skip")
    result = instrument_net(
        resolved.net,
        only=only,
        skip=skip,
        direction=args.direction,
        mode=args.mode,
        dump_dir=args.dump_dir,
        source_text=text,
        source_name=source_name,
    )
    if not result.checks:
        raise _nothing_to_check(resolved.net, only, skip, args.net)
    if args.output == "-":
        sys.stdout.write(result.text)
        return 0
    base = source or Path(args.net)
    output = Path(args.output) if args.output else base.with_name(base.stem + ".checked.prototxt")
    refuse_to_overwrite(output, (args.net, source), "-o")
    with writing(output, "the instrumented net"):
        write_atomic(output, result.text)
    if args.format == "json":
        report = {
            "input": str(args.net),
            "net": str(source) if source else None,
            "output": str(output),
            "complete": result.complete,
            "checks": [c.as_dict() for c in result.checks],
        }
        print(json.dumps(report, indent=2))
    else:
        followed = ", ".join(one_line(c.after) if c.after else "(inputs)" for c in result.checks)
        print(
            f"wrote {output}: {len(result.checks)} check{'s' if len(result.checks) > 1 else ''} "
            f"({args.direction}, mode {args.mode}) "
            f"after {followed}"
        )
    return 0


COMMAND = Command(
    description="Add an in-place CheckFiniteLayer after every layer of a net.",
    add_options=_options,
    run=_run,
    error_prefix="error: ",
)


def main(argv: list[str] | None = None, prog: str = "caffe-nan instrument") -> int:
    return COMMAND.main(argv, prog)


if __name__ == "__main__":
    sys.exit(main())
