"""The rule registry: every rule is one module here, with its code next to its documentation.

A rule module has ``CODE``, ``NAME``, ``SEVERITY``, ``SCOPE`` (``file``,
``net`` or ``solver``), ``SUMMARY`` (one line, for the README and
``--explain``), a docstring that gives the rationale, the fix and PASS/FAIL
examples (a test lints every one of them), and a ``check(ctx)`` generator
that yields ``Problem``s. It never prints and never exits. ``DEFAULT`` is
False for the few rules a user opts into with ``--select``.

Codes: NAN0xx schema, NAN1xx nets, NAN2xx solvers. A code, once published,
keeps its meaning.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Callable

_MODULES = (
    "unknown_field",
    "bad_value",
    "repeated_singular",
    "pooling_empty_window",
    "missing_weight_filler",
    "missing_bias_filler",
    "gaussian_default_std",
    "softmax_then_log",
    "infogain_input",
    "batchnorm_eps",
    "half_precision",
    "duplicate_layer_name",
    "undefined_bottom",
    "zero_loss_weight",
    "dropout_ratio",
    "lr_policy_params",
    "lr_schedule_values",
    "missing_max_iter",
    "unknown_lr_policy",
    "high_base_lr",
    "clip_gradients_zero",
    "debug_info",
    "momentum_range",
    "adaptive_delta",
    "net_file_missing",
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
    default: bool = True

    def explain(self) -> str:
        state = "" if self.default else ", off by default: enable with --select " + self.code
        return f"{self.code} {self.name} ({self.severity}{state})\n\n{self.summary}\n\n{self.doc.strip()}\n"


def _load() -> dict[str, Rule]:
    rules = {}
    for name in _MODULES:
        m = importlib.import_module(f"{__name__}.{name}")
        rules[m.CODE] = Rule(
            code=m.CODE,
            name=m.NAME,
            severity=m.SEVERITY,
            scope=m.SCOPE,
            summary=m.SUMMARY,
            doc=inspect.cleandoc(m.__doc__ or ""),
            check=m.check,
            default=getattr(m, "DEFAULT", True),
        )
    return dict(sorted(rules.items()))


RULES: dict[str, Rule] = _load()

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
