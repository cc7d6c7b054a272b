"""A solver's ``net:``, ``train_net:`` or ``test_net:`` file that cannot be found.

Caffe opens these paths relative to the working directory it is started
from. The linter looks there, then in the solver's directory and its parent
directories (BVLC's solvers name ``examples/mnist/...`` relative to the Caffe
root), lints the first file found and notes where it found it. When no
candidate exists, Caffe would stop with "Failed to parse NetParameter file".

Fix: correct the path, or run ``caffe`` (and the linter) from the directory
the path is relative to. A solver may also hold its net inline (``net_param {
... }``).

PASS::

    net_param { name: "inline" }
    base_lr: 0.01
    lr_policy: "fixed"
    max_iter: 100

FAIL::

    net: "no/such/train_val.prototxt"
    base_lr: 0.01
    lr_policy: "fixed"
    max_iter: 100
"""

from caffe_nanlayers.lint.context import Problem

CODE = "NAN210"
NAME = "net-file-missing"
SEVERITY = "error"
SCOPE = "solver"
SUMMARY = "A solver's net/train_net/test_net file is not found (Caffe: 'Failed to parse NetParameter file')."


def check(ctx):
    for ref in ctx.net_refs:
        if ref.found is None:
            # A shell expands '~' in a command line, but Caffe opens the solver's paths as written.
            tilde = " (Caffe does not expand '~')" if str(ref.node.value).startswith("~") else ""
            yield Problem(
                ref.node,
                f"{ref.node.name} file {ref.node.raw} not found relative to the working directory, "
                "the solver's directory or its parents: Caffe stops with 'Failed to parse NetParameter file'"
                + tilde,
                at_value=True,
            )
