"""Caffe's StateMeetsRule, written once: the linter and the tools that read caffe_pb2 agree on every rule."""

from __future__ import annotations

import itertools

import pytest

from caffe_nanlayers import proto_io
from caffe_nanlayers.lint.net import NetState, build_net
from caffe_nanlayers.lint.parser import parse_text
from caffe_nanlayers.net_state import StateRule, meets_rule

RULES = [
    "",
    "include { phase: TRAIN }",
    "exclude { phase: TEST }",
    'include { stage: "a" }',
    'include { phase: TEST not_stage: "a" }',
    'exclude { stage: "a" stage: "b" }',
    "include { min_level: 1 }",
    "exclude { max_level: 0 phase: TRAIN }",
    'include { phase: TRAIN } include { stage: "b" }',
]
STATES = [
    (phase, level, stages)
    for phase, level, stages in itertools.product(("TRAIN", "TEST"), (0, 1), ((), ("a",), ("a", "b")))
]


@pytest.mark.parametrize("rules", RULES)
def test_the_linter_and_proto_io_keep_the_same_layers(caffe, rules):
    text = f'layer {{ name: "l" type: "ReLU" bottom: "x" top: "x" {rules} }}'
    lint_layer = build_net(parse_text(text).root).layers[0]
    pb2 = proto_io.caffe_pb2()
    message = proto_io.parse_text(text, pb2.NetParameter(), "-").layer[0]
    for phase, level, stages in STATES:
        linted = lint_layer.included_in(NetState(phase, frozenset(stages), level))
        read = proto_io.layer_in_state(message, getattr(pb2, phase), level, set(stages))
        assert linted == read, (rules, phase, level, stages)


def test_an_unknown_level_or_stage_counts_as_told():
    rule = StateRule(phase="TRAIN", stage=("deploy",))
    assert meets_rule(rule, "TRAIN", None, None, unknown=True)
    assert not meets_rule(rule, "TRAIN", None, None, unknown=False)
    assert not meets_rule(rule, "TEST", None, None, unknown=True)  # the phase is known
    assert meets_rule(StateRule(phase="TRAIN"), "TRAIN", None, None)  # no condition left unknown
