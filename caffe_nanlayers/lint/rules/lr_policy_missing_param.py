"""An ``lr_policy`` without the parameters its formula reads.

Caffe does not check them: a missing parameter is silently 0. ``poly``
without ``max_iter`` divides by 0 and prints ``lr = -nan`` at iteration 0;
``step`` without ``stepsize`` divides an integer by 0 and dies with SIGFPE;
``step``/``exp``/``multistep`` without ``gamma`` drop the rate to 0 (or
keep it at base_lr for ever), ``inv`` without ``power`` never decays. The
parameters each policy needs: poly: max_iter, power; step: stepsize, gamma;
multistep: stepvalue, gamma; exp: gamma; inv: gamma, power; sigmoid: gamma,
stepsize. ``multistep`` stepvalues must also increase, since Caffe walks
them in order.

Fix: add the missing parameters (the message names them). A missing
``max_iter`` is NAN203's finding; the NaN it causes in ``poly`` is NAN202's.

PASS::

    base_lr: 0.01
    lr_policy: "step"
    stepsize: 1000
    gamma: 0.1
    max_iter: 5000

FAIL::

    base_lr: 0.01
    lr_policy: "step"
    gamma: 0.1
    max_iter: 5000
"""

from caffe_nanlayers.lint.context import Problem
from caffe_nanlayers.lint.rules._solver import policy_node
from caffe_nanlayers.lr_schedule import REQUIRED

CODE = "NAN201"
NAME = "lr-policy-missing-param"
SEVERITY = "error"
SCOPE = "solver"
SUMMARY = "lr_policy without the parameters its formula reads (step: stepsize, gamma; poly: power; ...)."

_EFFECT = {
    "stepsize": "divides by stepsize = 0",
    "stepvalue": "never steps",
    "gamma": "uses gamma = 0",
    "power": "uses power = 0",
}


def check(ctx):
    root = ctx.root
    policy = root.scalar("lr_policy")
    if not isinstance(policy, str) or policy not in REQUIRED:
        return
    for name in REQUIRED[policy]:
        if name == "max_iter":
            continue  # NAN203 reports a missing max_iter for every policy
        if root.get(name) is None:
            yield Problem(
                policy_node(root),
                f'lr_policy "{policy}" needs {name}, which is missing: Caffe {_EFFECT[name]}',
            )
    if policy == "multistep":
        values = [n for n in root.all("stepvalue") if isinstance(n.value, (int, float))]
        for previous, node in zip(values, values[1:]):
            if node.value <= previous.value:
                yield Problem(
                    node,
                    f"stepvalue {node.raw} does not increase after {previous.raw}: Caffe walks stepvalues "
                    "in order, so the steps after it come late or never",
                    at_value=True,
                )
