"""The printed net's NaN-making settings, as the doctor reads them from a log's start-up lines.

The binary's logs of every cause are in test_nan_causes_caffe_train.py; these
pin the reader's copy of the net and the mapping from lint codes to causes.
"""

from __future__ import annotations

from caffe_nanlayers.diagnose.caffe_log import parse_log
from caffe_nanlayers.diagnose.net_settings import CAUSE_OF_CODE, nan_settings
from caffe_nanlayers.lint.rules import RULES

PREFIX = "I0101 12:00:00.000000  7 net.cpp:58] Initializing net from parameters: "
POOLING = """name: "train"
state {
  phase: TRAIN
}
layer {
  name: "data"
  type: "Input"
  top: "data"
  input_param {
    shape {
      dim: 2
      dim: 1
      dim: 10
      dim: 10
    }
  }
}
layer {
  name: "pool1"
  type: "Pooling"
  bottom: "data"
  top: "pool1"
  pooling_param {
    pool: AVE
    kernel_size: 3
    stride: 5
  }
}
"""


def test_the_reader_keeps_the_training_net_as_printed_and_only_it():
    test_net = POOLING.replace('name: "train"', 'name: "test"').replace("stride: 5", "stride: 1")
    lines = [PREFIX, *POOLING.splitlines(), "I0101 12:00:00.000000  7 net.cpp:127] Creating Layer data"]
    lines += [PREFIX, *test_net.splitlines(), "I0101 12:00:00.000000  7 net.cpp:127] Creating Layer data"]
    log = parse_log(lines)
    assert log.net_text == POOLING
    assert log.layer_types == {"data": "Input", "pool1": "Pooling"}


def test_a_log_that_ends_inside_the_dump_keeps_what_it_read():
    log = parse_log([PREFIX, *POOLING.splitlines()[:4]])
    assert log.net_text == "\n".join(POOLING.splitlines()[:4]) + "\n"


def test_a_setting_that_makes_nan_names_its_cause_and_line():
    (setting,) = nan_settings(POOLING)
    assert (setting.code, setting.cause_id, setting.count) == ("NAN101", "pooling_stride", 1)
    assert POOLING.splitlines()[setting.line - 1].strip().startswith(("layer", "name", "stride", "pool"))


def test_no_net_or_an_unreadable_one_has_no_settings():
    assert nan_settings(None) == ()
    assert nan_settings("") == ()
    assert nan_settings("layer { name: ") == ()  # the linter reports its parse error; the doctor goes on


def test_every_code_is_a_rule_and_every_cause_is_in_the_catalogue():
    from caffe_nanlayers.diagnose.causes import CATALOGUE

    codes = set(RULES)
    assert set(CAUSE_OF_CODE) <= codes
    assert set(CAUSE_OF_CODE.values()) <= set(CATALOGUE)
