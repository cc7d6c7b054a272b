"""``caffe-nan locate SOLVER``: train until the first NaN/Inf and name the layer and the cause.

Exit codes: 0 no NaN within the iterations run, 1 a NaN found and diagnosed,
2 the solver cannot be read or Caffe refused it (one line, never a traceback).
"""

from __future__ import annotations

import sys
from pathlib import Path

from caffe_nanlayers.command import Command, positive_int
from caffe_nanlayers.diagnose.locate import DEFAULT_MAX_ITER, LocateOptions, locate
from caffe_nanlayers.errors import reading
from caffe_nanlayers.isolate import CaffeStopped, run_isolated

# Where Caffe stops on a record it cannot read (a Datum that does not parse or fit the batch).
DATA_READERS = ("data_transformer.cpp", "data_layer.cpp", "data_reader.cpp")


def _options(parser) -> None:
    parser.add_argument(
        "solver", help="solver prototxt (its net: is read as Caffe does, or beside the solver)"
    )
    parser.add_argument("--weights", help="start from these weights (.caffemodel), as caffe train --weights")
    parser.add_argument(
        "--max-iter",
        type=positive_int,
        help=f"iterations to try (default: the solver's max_iter, else {DEFAULT_MAX_ITER})",
    )
    parser.add_argument(
        "--out",
        default="caffe_nan_locate",
        help="directory for the report, the last good weights and the replay net (default: %(default)s)",
    )


def _run(args, prog: str) -> int:
    # Said at once, without starting Caffe.
    with reading(args.solver, "a solver prototxt"):
        Path(args.solver).open("rb").close()
    if args.weights:
        with reading(args.weights, "a .caffemodel"):
            Path(args.weights).open("rb").close()
    options = LocateOptions(
        solver=args.solver, out_dir=args.out, weights=args.weights, max_iter=args.max_iter
    )
    training = f"while training {args.solver}"
    stage = {"context": training}

    def on_message(message) -> None:
        if isinstance(message, tuple) and message[0] == "stage":  # what Caffe is doing for us now
            stage["context"] = message[1] or training
        elif args.format == "text":
            print(message, file=sys.stderr)

    try:
        verdict = run_isolated(locate, options, on_message=on_message)
    except CaffeStopped as exc:
        hint = ""
        if stage["context"] == training and any(where in str(exc) for where in DATA_READERS):
            hint = f"; 'caffe-nan scan {args.solver}' names the record Caffe could not read"
        raise CaffeStopped(f"{stage['context']}: {exc}{hint}") from None
    print(verdict.to_json() if args.format == "json" else verdict.to_text())
    return verdict.exit_code


COMMAND = Command(
    description="Train step by step with pycaffe until the first NaN/Inf; keep the last good weights, "
    "replay the failing iteration through an instrumented net and name the producing layer "
    "and the cause.",
    add_options=_options,
    run=_run,
    error_prefix="error: ",
)


def main(argv: list[str] | None = None, prog: str = "caffe-nan locate") -> int:
    return COMMAND.main(argv, prog)


if __name__ == "__main__":
    sys.exit(main())
