"""What a prototxt file is (a net or a solver) and where a solver's net file is.

Users name their files anyhow, and Caffe resolves a solver's ``net:`` against
the working directory of ``caffe train``, which is rarely where the linter or
``scan`` runs. The linter (its own parse tree, no Caffe) and the tools that
read caffe_pb2 messages (``proto_io``) ask these functions, so that a file is
the same kind, and a net file the same file, for all of them.
"""

from __future__ import annotations

import os

NET, SOLVER = "net", "solver"

NET_FIELDS = frozenset({"layer", "layers", "input", "input_shape", "input_dim"})
# Top-level fields of SolverParameter that people set; a file with any of them and no net field is a solver.
SOLVER_FIELDS = frozenset(
    {
        "net",
        "net_param",
        "train_net",
        "test_net",
        "train_net_param",
        "test_net_param",
        "base_lr",
        "lr_policy",
        "max_iter",
        "solver_mode",
        "solver_type",
        "type",
        "test_iter",
        "test_interval",
        "snapshot",
        "snapshot_prefix",
        "momentum",
        "weight_decay",
        "display",
        "stepsize",
        "stepvalue",
        "gamma",
        "power",
        "clip_gradients",
        "iter_size",
    }
)

# Where a net file was looked for, in order (see net_file_bases).
WORKING_DIRECTORY, SOLVER_DIRECTORY, SOLVER_ANCESTOR = "working directory", "solver directory", "ancestor"


def kind_of(top_level_fields: set[str]) -> str:
    """NET or SOLVER from a file's top-level field names (a net's field wins; neither: a net)."""
    if top_level_fields & NET_FIELDS:
        return NET
    if top_level_fields & SOLVER_FIELDS:
        return SOLVER
    return NET


def net_file_bases(solver_path: str | os.PathLike, cwd: str | os.PathLike) -> list[tuple[str, str]]:
    """(absolute directory, where) against which a solver's relative net file name is tried, in order.

    Caffe resolves it against the working directory only; a solver is often linted or scanned
    from elsewhere, so its own directory and that directory's parents (``net:
    "models/x/train_val.prototxt"`` written for a run from the repository's root) come next.
    """
    solver_dir = os.path.abspath(os.path.dirname(os.fspath(solver_path)) or ".")
    bases = [(os.path.abspath(cwd), WORKING_DIRECTORY), (solver_dir, SOLVER_DIRECTORY)]
    parent = os.path.dirname(solver_dir)
    while parent and parent != bases[-1][0]:
        bases.append((parent, SOLVER_ANCESTOR))
        parent = os.path.dirname(parent)
    return bases
