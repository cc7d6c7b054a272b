"""Caffe's Net::StateMeetsRule, written once.

Which layers a net holds depends on the phase, level and stages it is built
with, and on each layer's ``include``/``exclude`` rules. The tools that read
caffe_pb2 messages (``proto_io``) and the linter, which reads its own parse
tree and must run without Caffe, both hand the rule's fields to
``meets_rule`` as plain values, so they cannot disagree on the semantics.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass


@dataclass(frozen=True)
class StateRule:
    """A NetStateRule's fields (None or empty: not set). ``phase`` compares by equality,
    so the caffe_pb2 enum value and its name both work, as long as the state uses the same."""

    phase: object = None
    min_level: float | None = None
    max_level: float | None = None
    stage: tuple[str, ...] = ()
    not_stage: tuple[str, ...] = ()


def meets_rule(
    rule: StateRule,
    phase: object,
    level: float | None,
    stages: Collection[str] | None,
    unknown: bool = False,
) -> bool:
    """Whether a net of this phase, level and stages meets ``rule`` (Caffe's StateMeetsRule).

    ``level`` or ``stages`` may be None when they cannot be known (a Python layer knows its
    phase, not its net's level and stages): a condition on them then counts as ``unknown``.
    """
    if rule.phase is not None and rule.phase != phase:
        return False
    if level is None:
        if rule.min_level is not None or rule.max_level is not None:
            return unknown
    elif (rule.min_level is not None and level < rule.min_level) or (
        rule.max_level is not None and level > rule.max_level
    ):
        return False
    if stages is None:
        return unknown if rule.stage or rule.not_stage else True
    if any(stage not in stages for stage in rule.stage):
        return False
    return not any(stage in stages for stage in rule.not_stage)
