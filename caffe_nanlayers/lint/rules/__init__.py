"""The rule registry: every rule is one module here, with its code next to its documentation.

A rule module has ``CODE``, ``NAME``, ``SEVERITY``, ``SCOPE`` (``file``,
``net`` or ``solver``), ``SUMMARY`` (one line, for the README and
``--explain``), a docstring that gives the rationale, the fix and PASS/FAIL
examples (a test lints every one of them), and a ``check(ctx)`` generator
that yields ``Problem``s. It never prints and never exits. The module is
named after the rule (``NAME`` with ``_`` for ``-``) and listed in ``MODULES``.

Codes: NAN0xx schema, NAN1xx nets, NAN2xx solvers. A code, once published,
keeps its meaning.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

from caffe_nanlayers.lint.rules import (
    adaptive_zero_delta,
    all_losses_zero_weight,
    bad_value,
    batchnorm_tiny_eps,
    clip_gradients_zero,
    debug_info_on,
    dropout_ratio_range,
    duplicate_layer_name,
    filler_default_scale,
    half_precision,
    high_lr_no_clipping,
    infogain_unnormalized_input,
    lr_policy_missing_param,
    lr_schedule_unusable,
    missing_bias_filler,
    missing_max_iter,
    missing_weight_filler,
    momentum_range,
    net_file_missing,
    pooling_empty_window,
    repeated_singular_field,
    softmax_then_log,
    undefined_bottom,
    unknown_field,
    unknown_lr_policy,
)

# Every rule module, once: adding a rule is a module named after the rule and a line here.
MODULES = (
    unknown_field,
    bad_value,
    repeated_singular_field,
    pooling_empty_window,
    missing_weight_filler,
    missing_bias_filler,
    filler_default_scale,
    softmax_then_log,
    infogain_unnormalized_input,
    batchnorm_tiny_eps,
    half_precision,
    duplicate_layer_name,
    undefined_bottom,
    all_losses_zero_weight,
    dropout_ratio_range,
    lr_policy_missing_param,
    lr_schedule_unusable,
    missing_max_iter,
    unknown_lr_policy,
    high_lr_no_clipping,
    clip_gradients_zero,
    debug_info_on,
    momentum_range,
    adaptive_zero_delta,
    net_file_missing,
)


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    severity: str
    scope: str
    summary: str
    doc: str
    check: Callable

    def explain(self) -> str:
        return f"{self.code} {self.name} ({self.severity})\n\n{self.summary}\n\n{self.doc.strip()}\n"


def _rule(module) -> Rule:
    return Rule(
        code=module.CODE,
        name=module.NAME,
        severity=module.SEVERITY,
        scope=module.SCOPE,
        summary=module.SUMMARY,
        doc=inspect.cleandoc(module.__doc__ or ""),
        check=module.check,
    )


RULES: dict[str, Rule] = dict(sorted((m.CODE, _rule(m)) for m in MODULES))

# Not a rule (nothing to select, ignore or disable): a file that could not be linted. It is one line
# on stderr and exit code 2; the machine formats carry it as an entry too, so that a tool reading
# only them still sees that a file went unchecked.
NOT_LINTED = Rule(
    code="NAN000",
    name="not-linted",
    severity="error",
    scope="file",
    summary="File not linted: syntax error, unreadable or missing path (also on stderr; exit code 2).",
    doc=inspect.cleandoc(
        """
        The file could not be linted: a syntax error (Caffe's parser would refuse the file too), a
        file that cannot be read or is not UTF-8, a path that does not exist, a directory with no
        *.prototxt file, or an internal error of a rule (please report it).

        It is not a rule, so --select, --ignore and inline disables do not apply to it. Each one is
        printed on stderr as one line (path:line:col: expected ..., found ...) and makes the exit
        code 2; the other files are still linted. In the json, github and sarif formats it is also
        an entry with this code and severity error.

        Fix: correct the file at the given line and column, or the path.
        """
    ),
    check=lambda ctx: iter(()),
)
