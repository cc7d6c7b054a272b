"""The learning rate becomes NaN, infinite, negative or zero during training.

Caffe's ``SGDSolver::GetLearningRate`` is evaluated for every iteration from 0
to ``max_iter - 1``, in float as Caffe stores it, and the first unusable
value is reported: ``poly`` with ``max_iter: 0`` gives NaN at iteration 0,
``exp`` with ``gamma > 1`` overflows to inf, ``inv`` with a negative ``gamma``
takes a negative number to a fractional power (NaN), a negative
``base_lr`` or ``gamma`` makes steps go uphill, and a rate that underflows to
0 stops learning. NaN, inf and negative rates are errors; a rate that
reaches 0 is a warning (the iterations after it are wasted).

Fix: the message names the iteration and the value; correct the parameter
it comes from (usually gamma, power, or a missing max_iter/stepsize).

PASS::

    base_lr: 0.01
    lr_policy: "exp"
    gamma: 0.999
    max_iter: 1000

FAIL::

    base_lr: 0.01
    lr_policy: "exp"
    gamma: 1.5
    max_iter: 1000
"""

import math

from caffe_nanlayers.lint.context import Problem
from caffe_nanlayers.lint.findings import ERROR
from caffe_nanlayers.lint.rules._solver import policy_node, schedule
from caffe_nanlayers.lr_schedule import REQUIRED, first_bad_iteration

CODE = "NAN202"
NAME = "lr-schedule-unusable"
SEVERITY = "warning"
SCOPE = "solver"
SUMMARY = "Caffe's lr formula gives NaN, inf or a negative rate (error) or reaches 0 (warning)."


def check(ctx):
    root = ctx.root
    s = schedule(root)
    if s.policy not in REQUIRED:
        return
    bad = first_bad_iteration(s)
    if bad is None:
        return
    fatal = bad.rate is None or math.isnan(bad.rate) or bad.rate != 0
    yield Problem(
        policy_node(root),
        f'lr_policy "{s.policy}": at iteration {bad.iteration} {bad.describe()}'
        + ("" if fatal else ": nothing is learned from there on"),
        severity=ERROR if fatal else None,
    )
