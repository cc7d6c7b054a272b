"""The log parser and the doctor's rules on small hand-written snippets.

Real logs from this build are in test_doctor.py and
test_nan_causes_caffe_train.py; these snippets cover what this build does
not print (other Caffe versions' spellings, MSVC's NaN spellings) and pin
single rules of the reader and the doctor on a few lines each.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caffe_nanlayers.diagnose import trend
from caffe_nanlayers.diagnose.caffe_log import (
    MAX_OUTPUTS,
    LogReader,
    Series,
    is_saturated,
    parse_log,
    parse_number,
)
from caffe_nanlayers.diagnose.causes import CATALOGUE, cause_for_layer_type
from caffe_nanlayers.diagnose.doctor import diagnose, guess_layer_type
from caffe_nanlayers.diagnose.evidence import Candidate, rank


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("0.5", 0.5),
        ("1.5e-05", 1.5e-05),
        ("-2", -2.0),
        ("inf", math.inf),
        ("-inf", -math.inf),
        ("1.#INF", math.inf),
        ("-1.#INF", -math.inf),
        ("Infinity", math.inf),
    ],
)
def test_numbers(token, expected):
    assert parse_number(token) == expected


@pytest.mark.parametrize("token", ["nan", "-nan", "NaN", "1.#QNAN", "-1.#IND", "-nan(ind)", "nan(snan)"])
def test_nan_spellings(token):
    assert math.isnan(parse_number(token))


def test_garbage_is_not_a_number():
    assert parse_number("loss") is None


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().splitlines()]


BVLC_DEBUG = lines(
    """
I0101 10:00:00.000000  1 net.cpp:51] Initializing net from parameters:
name: "toy"
state {
  phase: TRAIN
}
layer {
  name: "data"
  type: "Input"
  top: "data"
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
I0101 10:00:00.100000  1 net.cpp:84] Creating Layer data
I0101 10:00:01.000000  1 net.cpp:608]     [Forward] Layer data, top blob data data: 0.5
I0101 10:00:01.000000  1 net.cpp:608]     [Forward] Layer pool1, top blob pool1 data: -nan
I0101 10:00:01.000000  1 net.cpp:608]     [Forward] Layer loss, top blob loss data: nan
I0101 10:00:01.000000  1 net.cpp:636]     [Backward] Layer loss, bottom blob pool1 diff: nan
I0101 10:00:01.000000  1 solver.cpp:228] Iteration 0, loss = 2.3
I0101 10:00:01.000000  1 solver.cpp:244]     Train net output #0: loss = 2.3 (* 1 = 2.3 loss)
I0101 10:00:01.000000  1 sgd_solver.cpp:106] Iteration 0, lr = 0.01
I0101 10:00:01.000000  1 net.cpp:684]     [Update] Layer pool1, param 0 data: 0.1; diff: 0.001
I0101 10:00:02.000000  1 solver.cpp:228] Iteration 1, loss = nan
"""
)


def test_bvlc_debug_info_names_the_first_layer_and_its_type():
    log = parse_log(BVLC_DEBUG)
    assert log.layer_types == {"data": "Input", "pool1": "Pooling"}
    bad = log.first_bad_debug
    assert (bad.layer, bad.direction, bad.blob, bad.text, bad.iteration) == (
        "pool1",
        "forward",
        "top blob pool1",
        "-nan",
        0,
    )
    verdict = diagnose(log, "toy.log")
    assert verdict.details["first_layer"]["type"] == "Pooling"
    assert verdict.cause.id == "pooling_stride"
    assert verdict.confidence == "high"  # the type comes from the net the log printed
    assert any("layer pool1 (Pooling, from the net printed at start-up)" in e for e in verdict.evidence)


# debug_info in the net (or a fork that sets it on test nets too): Solver::Test prints the test
# net's forward lines between "Testing net" and its outputs, then training's own lines follow.
TEST_AND_TRAIN_DEBUG = lines(
    """
I0101 10:00:00.000000  1 net.cpp:51] Initializing net from parameters:
name: "toy"
state {
  phase: TRAIN
}
layer {
  name: "data"
  type: "Input"
  top: "data"
}
layer {
  name: "fc"
  type: "InnerProduct"
  bottom: "data"
  top: "fc"
}
I0101 10:00:00.100000  1 net.cpp:51] Initializing net from parameters:
name: "toy"
state {
  phase: TEST
}
layer {
  name: "testonly"
  type: "Power"
  bottom: "fc"
  top: "p"
  include {
    phase: TEST
  }
}
I0101 10:00:01.000000  1 solver.cpp:330] Iteration 0, Testing net (#0)
I0101 10:00:01.000000  1 net.cpp:608]     [Forward] Layer data, top blob data data: 0.5
I0101 10:00:01.000000  1 net.cpp:608]     [Forward] Layer fc, top blob fc data: 0.3
I0101 10:00:01.000000  1 net.cpp:608]     [Forward] Layer testonly, top blob p data: -nan
I0101 10:00:01.000000  1 solver.cpp:397]     Test net output #0: p = -nan
I0101 10:00:01.000000  1 net.cpp:608]     [Forward] Layer data, top blob data data: 0.5
I0101 10:00:01.000000  1 net.cpp:608]     [Forward] Layer fc, top blob fc data: 0.3
I0101 10:00:01.000000  1 net.cpp:608]     [Forward] Layer loss, top blob loss data: 2.3
I0101 10:00:01.000000  1 net.cpp:636]     [Backward] Layer loss, bottom blob fc diff: 0.1
I0101 10:00:01.000000  1 solver.cpp:228] Iteration 0, loss = 2.3
I0101 10:00:01.000000  1 solver.cpp:244]     Train net output #0: loss = 2.3 (* 1 = 2.3 loss)
I0101 10:00:01.000000  1 sgd_solver.cpp:106] Iteration 0, lr = 0.01
I0101 10:00:02.000000  1 net.cpp:608]     [Forward] Layer data, top blob data data: 0.6
I0101 10:00:02.000000  1 net.cpp:608]     [Forward] Layer fc, top blob fc data: 0.2
I0101 10:00:02.000000  1 net.cpp:608]     [Forward] Layer loss, top blob loss data: 2.2
I0101 10:00:02.000000  1 solver.cpp:228] Iteration 1, loss = 2.2
I0101 10:00:02.000000  1 sgd_solver.cpp:106] Iteration 1, lr = 0.01
I0101 10:00:03.000000  1 net.cpp:608]     [Forward] Layer data, top blob data data: nan
I0101 10:00:03.000000  1 net.cpp:608]     [Forward] Layer fc, top blob fc data: nan
I0101 10:00:03.000000  1 net.cpp:608]     [Forward] Layer loss, top blob loss data: nan
I0101 10:00:03.000000  1 solver.cpp:228] Iteration 2, loss = nan
"""
)


def test_test_net_debug_lines_stay_out_of_the_training_attribution():
    log = parse_log(TEST_AND_TRAIN_DEBUG)
    train, test = log.first_bad_debug, log.first_bad_test_debug
    assert (train.layer, train.direction, train.iteration, train.test_net) == ("data", "forward", 2, None)
    assert (test.layer, test.iteration, test.test_net, test.line) == ("testonly", 0, 0, 34)
    assert log.first_sign.in_test and not log.first_train_sign.in_test
    verdict = diagnose(log, "toy.log")
    # the data layer's debug line is training's first sign, before its loss line
    assert (verdict.iteration, verdict.details["first"]["what"]) == (2, "debug_info")
    assert verdict.details["first_layer"]["layer"] == "data"
    assert verdict.cause.id == "bad_input"
    assert not any("testonly" in e for e in verdict.evidence)


def test_a_nan_only_in_the_test_net_is_credited_to_the_test_pass():
    clean_training = [line for line in TEST_AND_TRAIN_DEBUG if "10:00:03" not in line]
    verdict = diagnose(parse_log(clean_training), "toy.log")
    assert verdict.details["first"]["what"] == "debug_info"  # the test net's forward line, before its output
    assert verdict.details["first_layer"]["test_net"] == 0
    assert verdict.cause.id == "sparsity"  # the Power layer that only the test net has
    assert any(
        "layer testonly (Power, from the net printed at start-up), top blob p = -nan "
        "(test net #0, iteration 0, line 34)" in e
        for e in verdict.evidence
    )


def test_update_lines_belong_to_the_iteration_they_follow():
    text = lines(
        """
I0101 solver.cpp:228] Iteration 4, loss = 1
I0101 net.cpp:684]     [Update] Layer fc, param 0 data: 0.1; diff: nan
I0101 net.cpp:684]     [Update] Layer fc2, param blob 1 (owned by layer fc, param 0) diff: 0.5
I0101 solver.cpp:228] Iteration 5, loss = nan
"""
    )
    log = parse_log(text)
    assert log.first_bad_debug.direction == "update"
    assert log.first_bad_debug.iteration == 4
    assert log.debug_lines == 2


def test_other_versions_and_interleaved_tests():
    text = lines(
        """
some banner a fork prints
I20240101 10:00:00.000000 77 solver.cpp:218] Iteration 0 (0 iter/s, 0.1s/20 iters), loss = 0.7
I20240101 10:00:00.000000 77 solver.cpp:237]     Train net output #0: loss = 0.7 (* 1 = 0.7 loss)
I20240101 10:00:00.000000 77 sgd_solver.cpp:105] Iteration 0, lr = 0.01, m = 0.9, wd = 0.0005, gs = 1
I20240101 10:00:00.000000 77 solver.cpp:330] Iteration 20, Testing net (#0)
I20240101 10:00:00.000000 77 solver.cpp:397]     Test net output #0: accuracy = 0.1
I20240101 10:00:00.000000 77 solver.cpp:397]     Test net output #1: loss = 1.#QNAN (* 1 = 1.#QNAN loss)
I20240101 10:00:00.000000 77 solver.cpp:218] Iteration 20 (5 iter/s, 4s/20 iters), loss = 0.6
Iteration 40, loss = 0.5
\x00\x01 binary junk ] [Forward] Layer
"""
    )
    log = parse_log(text)
    assert [(r.iteration, r.value) for r in log.losses] == [(0, 0.7), (20, 0.6), (40, 0.5)]
    assert [(r.iteration, r.value) for r in log.lrs] == [(0, 0.01)]
    assert list(log.outputs) == ["loss"] and len(log.outputs["loss"]) == 1
    assert math.isnan(log.test_outputs["loss"][0].value)
    verdict = diagnose(log, "fork.log")
    assert verdict.nan_found and verdict.details["first"]["what"] == "test output loss"
    assert verdict.cause.id == "bad_input"
    assert any("only the test net" in e for e in verdict.evidence)


def test_a_series_keeps_the_spelling_of_non_finite_readings():
    log = parse_log(
        f"I0101 s.cpp:1] Iteration {i}, loss = {v}" for i, v in enumerate(["2.5", "-nan", "1.#INF"])
    )
    series = log.losses
    assert (len(series), [r.line for r in series]) == (3, [1, 2, 3])
    assert [(r.iteration, r.text, r.line) for r in series] == [
        (0, "2.5", 1),
        (1, "-nan", 2),
        (2, "1.#INF", 3),
    ]
    assert series[-1].value == math.inf and series.first_bad().text == "-nan"
    assert list(series.values_before(2)) == [2.5] and series.bad_before(2) is None
    assert series.bad_before(3).line == 2


def test_saturated_softmax_loss_is_divergence():
    losses = ["2.3", "1.9", "2.0", "87.3365", "87.3365", "87.3365", "nan"]
    log = parse_log(f"I0101 s.cpp:1] Iteration {i}, loss = {v}" for i, v in enumerate(losses))
    verdict = diagnose(log, "sat.log")
    assert verdict.cause.id == "gradient_explosion"
    assert any("-log(FLT_MIN)" in e for e in verdict.evidence)


def test_gradient_norms_that_grew_under_a_steady_loss_are_an_explosion():
    # debug_info's "All net params" line: the gradients' L2 norm grows 1000x while the loss stays put.
    text = []
    for i, norm in enumerate([0.5, 0.6, 0.5, 5, 50, 500]):
        text += [
            f"I0101 net.cpp:1] [Backward] All net params (data, diff): L1 norm = (10, {norm}); "
            f"L2 norm = (1, {norm})",
            f"I0101 solver.cpp:228] Iteration {i}, loss = 2.3",
        ]
    text.append("I0101 solver.cpp:228] Iteration 6, loss = nan")
    verdict = diagnose(parse_log(text), "norms.log")
    assert verdict.cause.id == "gradient_explosion"
    assert any("L2 norm of all gradients grew" in e for e in verdict.evidence)


def test_with_several_losses_the_one_that_grew_most_is_named_when_only_their_total_crossed():
    # a grows 90x and b 80x (from the median of the first three values to the peak of the last
    # three); their total, whose early median is lower, grows 155x: an explosion, and a is named.
    a = [1, 10, 10, 50, 100, 300, 900, 900, 900]
    b = [10, 1, 10, 50, 100, 300, 800, 800, 800]
    text = []
    for i, (x, y) in enumerate(zip(a, b)):
        text += [
            f"I0101 solver.cpp:228] Iteration {i}, loss = {x + y}",
            f"I0101 solver.cpp:244]     Train net output #0: a = {x} (* 1 = {x} loss)",
            f"I0101 solver.cpp:244]     Train net output #1: b = {y} (* 1 = {y} loss)",
        ]
    text.append(f"I0101 solver.cpp:228] Iteration {len(a)}, loss = nan")
    verdict = diagnose(parse_log(text), "two.log")
    assert verdict.cause.id == "gradient_explosion"
    assert verdict.details["grew"] == {"output": "a", "factor": 90.0, "loss_weight": 1.0}
    assert any("a grew most (90x): lower its loss_weight" in e for e in verdict.evidence)


def test_lr_zero_until_the_nan_blames_the_net_or_data():
    text = []
    for i, v in enumerate(["1.0", "1.1", "0.9", "nan"]):
        text += [f"I0101 s.cpp:1] Iteration {i}, loss = {v}", f"I0101 s.cpp:1] Iteration {i}, lr = 0"]
    verdict = diagnose(parse_log(text), "zero.log")
    assert verdict.cause.id == "initialization"
    assert any("lr = 0" in e for e in verdict.evidence)


def test_growth():
    assert trend.growth([1.0, 2.0]) is None
    assert trend.growth([1.0, 1.0, 1.0, 500.0]) == pytest.approx(500.0)
    assert not trend.exploded([2.3, 2.0, 1.0, 0.5, 0.4])  # falling
    assert not trend.exploded([0.4, 0.5, 1.0, 2.0, 2.3])  # growing, but 6x is not an explosion
    assert trend.exploded([0.4, 0.5, 4.0, 40.0, 400.0])


@pytest.mark.parametrize(
    ("layer_type", "has_bottoms", "expected"),
    [
        ("Data", False, "bad_input"),
        ("Python", False, "bad_input"),
        ("Python", True, "layer_arithmetic"),
        ("Pooling", True, "pooling_stride"),
        ("BatchNorm", True, "batchnorm"),
        ("MultinomialLogisticLoss", True, "loss_layer"),
        ("Convolution", True, None),
    ],
)
def test_layer_types_point_at_causes(layer_type, has_bottoms, expected):
    assert cause_for_layer_type(layer_type, has_bottoms) == expected


def test_every_cause_has_its_fix():
    for cause_id, cause in CATALOGUE.items():
        assert cause.id == cause_id
        assert cause.title and cause.explanation.endswith(".") and cause.fix


# The incremental reader, the 87.3365 plateau, pastes without Iteration lines, bounded memory.


@pytest.mark.parametrize(
    ("value", "weights", "expected"),
    [
        (87.3365, (), True),
        (87.3366, (), True),  # a 2014 log's spelling
        (87.3362, (), True),  # a test pass's average
        (174.673, (), True),  # two saturated losses, or loss_weight 2
        (1746.73, (20.0,), True),  # under loss_weight 20
        (26.201, (0.3,), True),
        (26.201, (), False),
        (87.2935, (), False),  # a high but ordinary loss (a real log's)
        (87.0, (), False),
        (math.nan, (), False),
    ],
)
def test_the_saturated_softmax_loss(value, weights, expected):
    assert is_saturated(value, weights) is expected


def test_feed_reports_the_first_sign_once_on_its_line():
    text = [
        "I0101 s.cpp:1] Iteration 0, loss = 2.3",
        "I0101 s.cpp:1]     Train net output #0: loss = 2.3 (* 1 = 2.3 loss)",
        "I0101 s.cpp:1] Iteration 0, lr = 0.1",
        "I0101 s.cpp:1] Iteration 20, loss = 87.3365",
        "I0101 s.cpp:1] Iteration 40, loss = nan",
    ]
    reader = LogReader()
    signs = [reader.feed(line) for line in text]
    assert signs[:3] == [None, None, None] and signs[4] is None
    sign = signs[3]
    assert (sign.kind, sign.what, sign.reading.iteration, sign.reading.line) == ("saturated", "loss", 20, 4)
    assert "saturated" in sign.describe() and "iteration 20, line 4" in sign.describe()
    log = reader.finish()
    assert log.first_sign == sign and log.losses.first_bad().iteration == 40
    assert [r.value for r in parse_log(text).losses][:3] == [r.value for r in log.losses][:3]


def test_the_plateau_alone_is_found_and_diagnosed():
    text = [f"I0101 s.cpp:1] Iteration {i * 100}, loss = {v}" for i, v in enumerate([2.3, 87.3365, 87.3365])]
    verdict = diagnose(parse_log(text), "plateau.log")
    assert verdict.nan_found and verdict.exit_code == 1
    assert verdict.details["first"]["kind"] == "saturated" and verdict.iteration == 100
    assert (verdict.cause.id, verdict.confidence) == ("gradient_explosion", "medium")
    assert verdict.summary.startswith("loss saturated at 87.3365")


def test_a_nan_output_beside_the_plateau_keeps_the_plateau_as_evidence():
    text = lines(
        """
I0503 solver.cpp:229] Iteration 0, loss = 4.34748
I0503 solver.cpp:245]     Train net output #0: loss_bbox = 0.0506645 (* 1 = 0.0506645 loss)
I0503 solver.cpp:245]     Train net output #1: loss_cls = 3.57055 (* 1 = 3.57055 loss)
I0503 solver.cpp:229] Iteration 20, loss = nan
I0503 solver.cpp:245]     Train net output #0: loss_bbox = nan (* 1 = nan loss)
I0503 solver.cpp:245]     Train net output #1: loss_cls = 87.3365 (* 1 = 87.3365 loss)
"""
    )
    verdict = diagnose(parse_log(text), "beside.log")
    assert verdict.details["first"]["kind"] == "nonfinite"
    assert verdict.details["facts"][0]["id"] == "saturated"
    assert verdict.confidence == "medium"


def test_only_train_net_output_lines_are_a_log():
    text = ["Train net output #0: loss = nan (* 1 = nan loss)"] * 3
    log = parse_log(text)
    assert log.caffe_lines == 3 and log.first_sign.what == "train output loss"
    verdict = diagnose(log, "outputs.log")
    assert verdict.exit_code == 1 and verdict.iteration is None
    assert verdict.confidence == "low" and verdict.next_steps


def test_debug_info_nans_at_iteration_0_count():
    text = ["I0101 s.cpp:1] Iteration 0, Testing net (#0)"]
    text += [f"I0101 net.cpp:1]     [Backward] Layer l{i}, bottom blob b{i} diff: nan" for i in range(20)]
    text += ["I0101 s.cpp:1] Iteration 0, loss = 2.3"]  # the displayed loss is still finite
    verdict = diagnose(parse_log(text), "backward.log")
    assert verdict.exit_code == 1 and verdict.iteration == 0
    assert verdict.details["first_layer"]["layer"] == "l0"


def test_an_excerpt_is_not_iteration_0():
    """Outputs before the first Iteration line are no reading of iteration 0."""
    text = lines(
        """
I0101 s.cpp:1]     Train net output #0: loss = 1.2 (* 1 = 1.2 loss)
I0101 s.cpp:1] Iteration 840, lr = 0.01
I0101 s.cpp:1] Iteration 860, loss = nan
"""
    )
    log = parse_log(text)
    assert log.excerpt and log.outputs["loss"][0].iteration == 840
    verdict = diagnose(log, "excerpt.log")
    assert verdict.iteration == 860 and verdict.cause.id != "initialization"


def test_lines_flattened_into_one_are_read_as_several():
    flat = (
        "I0425 10:13:04.672341 9167 solver.cpp:208] Iteration 200, lr = 0.01 "
        "I0425 10:13:04.672637 9167 solver.cpp:65] Iteration 200, loss = 6.55622 "
        "I0425 10:13:21.206111 9167 solver.cpp:65] Iteration 220, loss = nan"
    )
    log = parse_log([flat])
    assert [(r.iteration, r.text) for r in log.losses] == [(200, "6.55622"), (220, "nan")]
    unprefixed = (
        "Iteration 0, loss = 2.3 Train net output #0: loss = 2.3 (* 1 = 2.3 loss) Iteration 20, loss = nan"
    )
    log = parse_log([unprefixed])
    assert [r.iteration for r in log.losses] == [0, 20] and len(log.outputs["loss"]) == 1


def test_a_line_past_the_limit_is_cut_and_reading_goes_on():
    text = ["I0101 s.cpp:1] Iteration 0, loss = 2.3" + " x" * 100, "I0101 s.cpp:1] Iteration 1, loss = nan"]
    log = parse_log(text, line_limit=50)
    assert log.cut_lines == 1 and log.first_sign.reading.iteration == 1
    assert any("read up to that length" in e for e in diagnose(log, "cut.log").evidence)


def test_a_series_stays_bounded_and_keeps_what_the_verdict_reads():
    series = Series()
    for i in range(100_000):
        series.append(i, 1.0 + i, f"{1.0 + i}", i + 1)
    kept = series.kept()
    assert len(series) == 100_000
    assert len(kept) <= Series.HEAD + Series.SAMPLE + 2 * Series.TAIL
    assert kept[0].iteration == 0 and kept[-1].iteration == 99_999
    assert kept == sorted(kept, key=lambda r: r.line)  # in log order
    # the sample spans the whole run
    assert any(40_000 < r.iteration < 60_000 for r in kept)


def test_the_readings_before_the_first_sign_are_kept_however_long_the_log_goes_on():
    text = [f"I0101 s.cpp:1] Iteration {i}, loss = {2.0 + 0.001 * (i % 7)}" for i in range(1000)]
    text += [f"I0101 s.cpp:1] Iteration {i}, loss = nan" for i in range(1000, 5000)]
    log = parse_log(text)
    before = log.losses.values_before(log.first_sign.reading.line)
    assert len(before) >= Series.TAIL and all(math.isfinite(v) for v in before[-Series.TAIL :])
    verdict = diagnose(log, "long.log")
    assert verdict.cause.id == "bad_input" and verdict.details["facts"][0]["id"] == "steady"


def test_parsing_memory_does_not_grow_with_the_log():
    import tracemalloc

    def peak(n):
        block = [
            "I0101 10:00:00.000000 1 solver.cpp:228] Iteration {i}, loss = 2.{i}",
            "I0101 10:00:00.000000 1 solver.cpp:244]  Train net output #0: loss = 2.{i} (* 1 = 2.{i} loss)",
            "I0101 10:00:00.000000 1 sgd_solver.cpp:106] Iteration {i}, lr = 0.01",
        ]
        tracemalloc.start()
        parse_log(line.format(i=i) for i in range(n) for line in block)
        size = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return size

    small, large = peak(1_000), peak(10_000)
    assert large < 1.5 * small + 200_000, (small, large)


def test_weighing_ranks_by_confidence_then_by_how_often_a_cause_is_seen():
    ranked = rank(
        [
            Candidate("loss_layer", "low", ("a",)),
            Candidate("bad_input", "low", ("a",)),
            Candidate("gradient_explosion", "low", ("a",)),
            Candidate("bad_input", "medium", ("b",)),
        ]
    )
    assert [(c.cause_id, c.confidence) for c in ranked] == [
        ("bad_input", "medium"),
        ("gradient_explosion", "low"),
        ("loss_layer", "low"),
    ]
    assert ranked[0].facts == ("a", "b")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("conv5_3/bn", "BatchNorm"),
        ("inc3d/relu5_3", "ReLU"),
        ("conv6_3/linear/scale", "Scale"),
        ("pool1", "Pooling"),
        ("softmax_loss", "Loss"),
        ("fc6", "InnerProduct"),
        ("abs_z3", "AbsVal"),
        ("mystery", None),
    ],
)
def test_a_layer_type_guessed_from_its_name(name, expected):
    assert guess_layer_type(name) == expected


# Pieces of real lines, shuffled and cut: the reader and the verdict must never fail on them.
_PIECES = [
    "I0101 10:00:00.000000  1 solver.cpp:228] ",
    "Iteration 20, loss = ",
    "Iteration 20 (5 iter/s, 4s/20 iters), loss = ",
    "Iteration 0, lr = ",
    "Iteration 0, Testing net (#0)",
    "    Train net output #0: loss = ",
    "    Test net output #1: accuracy = ",
    " (* 20 = ",
    " loss)",
    "[Forward] Layer conv1/bn, top blob conv1 data: ",
    "[Backward] Layer loss, bottom blob fc diff: ",
    "[Backward] All net params (data, diff): L1 norm = (1, 2); L2 norm = (3, ",
    "[Update] Layer fc, param 0 data: 1; diff: ",
    "Initializing net from parameters:",
    "layer {",
    '  name: "x"',
    '  type: "BatchNorm"',
    "}",
    "total loss: ",
    "nan",
    "-nan",
    "1.#QNAN",
    "inf",
    "87.3365",
    "1746.73",
    "2.3",
    "0",
    "-1e40",
    "\x00",
    " ",
    "\n",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.sampled_from(_PIECES), max_size=8).map("".join), max_size=30))
def test_any_mix_of_real_fragments_reads_and_diagnoses_without_failing(lines):
    reader = LogReader(line_limit=200)
    signs = [sign for sign in map(reader.feed, lines) if sign is not None]
    log = reader.finish()
    assert len(signs) <= 1 and (log.first_sign is not None) == bool(signs)  # once, when it shows
    verdict = diagnose(log, "fuzz.log")
    assert verdict.exit_code == (1 if (log.first_train_sign or log.first_sign) else 0)
    verdict.to_text()
    json.loads(verdict.to_json())


def test_a_stream_of_new_output_names_does_not_grow_the_log():
    log = parse_log(f"Train net output #0: loss_{i} = 1.5 (* 1 = 1.5 loss)" for i in range(10_000))
    assert len(log.outputs) == MAX_OUTPUTS and len(log.loss_weights) == MAX_OUTPUTS


def test_a_steady_loss_displayed_every_20_iterations_cannot_tell_a_bad_batch_from_an_explosion():
    text = [f"I0101 s.cpp:1] Iteration {20 * i}, loss = {2.0 + 0.01 * (i % 3)}" for i in range(10)]
    text.append("I0101 s.cpp:1] Iteration 200, loss = nan")
    verdict = diagnose(parse_log(text), "coarse.log")
    assert [f["id"] for f in verdict.details["facts"]] == ["coarse_display"]
    assert (verdict.cause.id, verdict.confidence) == ("gradient_explosion", "low")
    assert [c.id for c in verdict.also_possible] == ["bad_input", "loss_layer"]
    assert any("smaller display" in step for step in verdict.next_steps)
    assert "20 iterations after the last finite one" in verdict.evidence[0]


def test_an_l2_norm_that_overflowed_while_the_l1_norm_is_finite_is_no_nan():
    """Caffe sums the gradients' squares in float: gradients near 1e19 overflow the L2 norm only."""
    lines = [
        "E0101 12:00:00.000000  7 net.cpp:779]     [Backward] All net params (data, diff): "
        "L1 norm = (71.4, 2.6e+21); "
        "L2 norm = (4.58, inf)",
        "I0101 12:00:00.000000  7 solver.cpp:231] Iteration 0, loss = 29.18",
        "E0101 12:00:00.000000  7 net.cpp:779]     [Backward] All net params (data, diff): "
        "L1 norm = (2.6e+19, inf); "
        "L2 norm = (2.1e+18, inf)",
        "I0101 12:00:00.000000  7 solver.cpp:231] Iteration 1, loss = 35.3",
    ]
    log = parse_log(lines)
    assert [r.finite for r in log.param_diff_norms] == [True, False]
    assert log.param_diff_norms[0].value == pytest.approx(2.6e21)  # the L1 norm, an upper bound of L2
    assert log.first_sign.reading.line == 3


LOSS_SETUP = [
    "I0101 12:00:00.000000  7 net.cpp:127] Creating Layer fc2",
    "I0101 12:00:00.000000  7 net.cpp:177] Setting up fc2",
    "I0101 12:00:00.000000  7 net.cpp:127] Creating Layer loss",
    "I0101 12:00:00.000000  7 net.cpp:477] loss <- fc2",
    "I0101 12:00:00.000000  7 net.cpp:177] Setting up loss",
    "I0101 12:00:00.000000  7 net.cpp:184] Top shape: (1)",
    "I0101 12:00:00.000000  7 net.cpp:187]     with loss weight 1",
]


def test_a_loss_that_sends_back_a_gradient_a_million_times_its_value_is_the_loss_layer():
    lines = [
        *LOSS_SETUP,
        "I0101 12:00:00.000000  7 net.cpp:651]     [Forward] Layer fc2, top blob fc2 data: 0.72",
        "I0101 12:00:00.000000  7 net.cpp:651]     [Forward] Layer loss, top blob loss data: 29.18",
        "I0101 12:00:00.000000  7 net.cpp:679]     [Backward] Layer loss, bottom blob fc2 diff: 1.95e+18",
        "I0101 12:00:00.000000  7 net.cpp:690]     [Backward] Layer fc2, param blob 0 diff: 1.3e+19",
        "I0101 12:00:00.000000  7 solver.cpp:231] Iteration 0, loss = 29.18",
        "I0101 12:00:00.000000  7 net.cpp:651]     [Forward] Layer fc2, top blob fc2 data: 1.9e+35",
        "I0101 12:00:00.000000  7 net.cpp:651]     [Forward] Layer loss, top blob loss data: 35.3",
        "I0101 12:00:00.000000  7 net.cpp:679]     [Backward] Layer loss, bottom blob fc2 diff: 2.7e+18",
        "I0101 12:00:00.000000  7 net.cpp:690]     [Backward] Layer fc2, param blob 0 diff: inf",
        "I0101 12:00:00.000000  7 solver.cpp:231] Iteration 1, loss = 35.3",
    ]
    log = parse_log(lines)
    assert log.loss_layers == {"loss"} and log.layers_with_bottoms == {"loss"}
    forward, backward = log.loss_spike
    assert (forward.value, backward.value, backward.iteration) == (29.18, 1.95e18, 0)
    verdict = diagnose(log, "spike.log")
    assert (verdict.iteration, verdict.cause.id, verdict.confidence) == (1, "loss_layer", "high")
    assert verdict.details["first_layer"]["layer"] == "fc2"
    assert "layer_arithmetic" not in [c.id for c in verdict.also_possible]  # fc2 only carried it on


def test_a_python_loss_whose_forward_makes_an_infinity_took_log_0():
    lines = [
        "I0101 12:00:00.000000  7 net.cpp:127] Creating Layer xent",
        "I0101 12:00:00.000000  7 net.cpp:477] xent <- prob",
        "I0101 12:00:00.000000  7 net.cpp:177] Setting up xent",
        "I0101 12:00:00.000000  7 net.cpp:187]     with loss weight 1",
        "I0101 12:00:00.000000  7 net.cpp:651]     [Forward] Layer prob, top blob prob data: 0.25",
        "I0101 12:00:00.000000  7 net.cpp:651]     [Forward] Layer xent, top blob loss data: inf",
        "I0101 12:00:00.000000  7 solver.cpp:231] Iteration 0, loss = inf",
    ]
    layer_types = [
        "I0101 12:00:00.000000  7 net.cpp:58] Initializing net from parameters: ",
        "layer {",
        '  name: "xent"',
    ]
    layer_types += ['  type: "Python"', "}"]
    verdict = diagnose(parse_log(layer_types + lines), "xent.log")
    assert (verdict.iteration, verdict.cause.id, verdict.confidence) == (0, "log0", "medium")
    assert verdict.details["first_layer"]["type"] == "Python"
