"""Every rule's PASS and FAIL examples (from its docstring), and the pure pieces behind the rules."""

from __future__ import annotations

import math
import re
import textwrap

import pytest

from caffe_nanlayers.lint import Options, lint_text
from caffe_nanlayers.lint.net import build_net
from caffe_nanlayers.lint.parser import parse_text
from caffe_nanlayers.lint.rules import RULES
from caffe_nanlayers.lint.schema import SCHEMA_CODES
from caffe_nanlayers.lint.shapes import trace_shapes
from caffe_nanlayers.lr_schedule import Schedule, first_bad_iteration, to_float32

_EXAMPLE = re.compile(r"^(PASS|FAIL)::\n\n((?:(?:    .*)?\n)+)", re.MULTILINE)


def examples():
    for code, rule in RULES.items():
        found = _EXAMPLE.findall(rule.doc + "\n")
        assert any(k == "PASS" for k, _ in found) and any(k == "FAIL" for k, _ in found), code
        for i, (kind, block) in enumerate(found):
            yield pytest.param(code, kind, textwrap.dedent(block), id=f"{code}-{kind}-{i}")


def codes_for(text: str, code: str) -> list[str]:
    report = lint_text(text, "example.prototxt", Options(select=[code]))
    assert not report.errors, report.errors
    return [f.code for f in report.findings]


@pytest.mark.parametrize(("code", "kind", "text"), list(examples()))
def test_docstring_examples(code, kind, text, request):
    """FAIL examples yield the rule's code, PASS examples do not.

    Only the schema rules need the real caffe_pb2; every other rule runs where Caffe is not installed.
    """
    if code in SCHEMA_CODES:
        request.getfixturevalue("caffe")
    found = codes_for(text, code)
    if kind == "FAIL":
        assert code in found
    else:
        assert code not in found


def test_every_rule_is_documented():
    for code, rule in RULES.items():
        assert re.fullmatch(r"NAN[0-2]\d\d", code)
        assert rule.severity in ("error", "warning", "info")
        assert rule.scope in ("file", "net", "solver")
        assert "Fix:" in rule.doc, code
        assert len(rule.summary) < 110 and "\n" not in rule.summary


def net(text):
    return build_net(parse_text(text).root)


# ---- learning-rate schedule (Caffe's GetLearningRate) ----


def test_poly_without_max_iter_is_nan_at_iteration_zero():
    bad = first_bad_iteration(Schedule("poly", base_lr=0.01, power=0.9))
    assert bad.iteration == 0 and math.isnan(bad.rate)


def test_step_without_stepsize_is_a_division_by_zero():
    bad = first_bad_iteration(Schedule("step", base_lr=0.01, gamma=0.1, max_iter=100))
    assert bad.iteration == 0 and bad.rate is None


def test_exp_overflow_found_at_the_exact_iteration():
    s = Schedule("exp", base_lr=0.01, gamma=1.5, max_iter=10_000)
    bad = first_bad_iteration(s)
    assert math.isinf(bad.rate)
    assert not math.isinf(s.rate(bad.iteration - 1))  # the first, not just some


def test_step_underflow_to_zero_in_float():
    s = Schedule("step", base_lr=0.01, gamma=1e-10, stepsize=10, max_iter=100)
    bad = first_bad_iteration(s)
    assert (bad.iteration, bad.rate) == (50, 0.0)  # 0.01 * 1e-50 underflows a float, not a double


def test_inv_with_negative_gamma_goes_nan():
    s = Schedule("inv", base_lr=0.01, gamma=-0.001, power=0.75, max_iter=5000)
    bad = first_bad_iteration(s)
    # In float, 1 + (-0.001f * 1000) is exactly 0: 0^-0.75 = inf; beyond it a negative base gives NaN.
    assert bad.iteration == 1000 and math.isinf(bad.rate)
    assert math.isnan(s.rate(1001))


def test_healthy_schedules_have_no_bad_iteration():
    for s in (
        Schedule("fixed", base_lr=0.01, max_iter=100),
        Schedule("step", base_lr=0.01, gamma=0.1, stepsize=100_000, max_iter=450_000),
        Schedule("multistep", base_lr=0.01, gamma=0.1, stepvalues=[5000, 7000], max_iter=10_000),
        Schedule("inv", base_lr=0.01, gamma=1e-4, power=0.75, max_iter=10_000),
        Schedule("poly", base_lr=0.01, power=0.5, max_iter=2_400_000),
        Schedule("sigmoid", base_lr=0.01, gamma=-0.001, stepsize=5000, max_iter=10_000),
    ):
        assert first_bad_iteration(s) is None, s


def test_float32_rounding():
    assert to_float32(1e-50) == 0.0
    assert to_float32(1e39) == math.inf
    assert to_float32(0.1) != 0.1


# ---- shapes and states ----


def test_shapes_follow_caffe_formulas():
    n = net(
        """
        layer { name: "d" type: "Input" top: "d" input_param { shape { dim: 2 dim: 3 dim: 227 dim: 227 } } }
        layer { name: "c" type: "Convolution" bottom: "d" top: "c"
                convolution_param { num_output: 96 kernel_size: 11 stride: 4 } }
        layer { name: "p" type: "Pooling" bottom: "c" top: "p"
                pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
        layer { name: "q" type: "Pooling" bottom: "p" top: "q"
                pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
        layer { name: "f" type: "InnerProduct" bottom: "q" top: "f" inner_product_param { num_output: 10 } }
        """
    )
    trace = trace_shapes(n, n.states()[0])
    assert trace.bottoms[2] == [(2, 96, 55, 55)]
    assert trace.bottoms[3] == [(2, 96, 27, 27)]
    assert trace.bottoms[4] == [(2, 96, 14, 14)]


def test_crop_size_and_input_shape_override():
    n = net(
        """
        layer { name: "d" type: "Data" top: "d" top: "l" transform_param { crop_size: 32 }
                data_param { batch_size: 4 } }
        layer { name: "h" type: "HDF5Data" top: "x" }
        layer { name: "p" type: "Pooling" bottom: "d" bottom: "x" top: "p" pooling_param { kernel_size: 2 } }
        """
    )
    trace = trace_shapes(n, n.states()[0], {"x": (1, 1, 5, 5)})
    assert trace.bottoms[2] == [(4, None, 32, 32), (1, 1, 5, 5)]


def test_states_do_not_invent_stage_combinations():
    n = net(
        """
        layer { name: "a" type: "Data" top: "d" include { phase: TEST stage: "s1" } }
        layer { name: "a" type: "Data" top: "d" include { phase: TEST stage: "s2" } }
        """
    )
    assert all(len(s.stages) <= 1 for s in n.states())
    assert (
        codes_for(
            'layer { name: "a" type: "Data" top: "d" include { phase: TEST stage: "s1" } }\n'
            'layer { name: "a" type: "Data" top: "d" include { phase: TEST stage: "s2" } }\n',
            "NAN109",
        )
        == []
    )


def test_v1_types_are_upgraded():
    n = net('layers { name: "c" type: CONVOLUTION } layers { name: "l" type: SOFTMAX_LOSS }')
    assert [layer.type for layer in n.layers] == ["Convolution", "SoftmaxWithLoss"]
    assert n.is_training_net


POOL_10X10 = """
layer { name: "d" type: "Input" top: "d" input_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } } }
layer { name: "p" type: "Pooling" bottom: "d" top: "p" pooling_param { pool: AVE PARAMS } }
"""


def pooling_findings(params: str, text: str = POOL_10X10) -> list[str]:
    report = lint_text(text.replace("PARAMS", params), "p.prototxt", Options(select=["NAN101"]))
    return [f.severity for f in report.findings]


@pytest.mark.parametrize(
    ("params", "severities"),
    [
        ("kernel_size: 3 stride: 5", ["error"]),  # windows start at 0, 5, 10: the last is past the edge
        ("kernel_size: 3 stride: 4", []),  # 0, 4, 8: every window overlaps the input
        ("kernel_size: 3 stride: 5 pad: 1", []),  # Caffe drops a last window that starts past the image
        ("kernel_size: 3 stride: 5 pad_h: 1", []),  # ... on both axes as soon as one is padded
        ("kernel_size: 3 stride: 5 ceil_mode: false", []),  # floor rounding never reaches past the edge
        ("kernel_size: 3 stride: 5 round_mode: FLOOR", []),
    ],
)
def test_pooling_with_a_known_shape_reports_only_an_empty_window(params, severities):
    assert pooling_findings(params) == severities


def test_pooling_without_a_shape_warns_only_where_a_window_can_be_empty():
    text = 'layer { name: "p" type: "Pooling" bottom: "x" top: "p" pooling_param { pool: AVE PARAMS } }'
    assert pooling_findings("kernel_size: 3 stride: 5", text) == ["warning"]
    assert pooling_findings("kernel_size: 3 stride: 5 pad: 1", text) == []
    assert pooling_findings("kernel_size: 3 stride: 5 ceil_mode: false", text) == []


def test_undefined_bottom_only_produced_in_another_phase():
    text = """
        layer { name: "d" type: "Input" top: "d" include { phase: TRAIN } input_param { shape { dim: 1 } } }
        layer { name: "r" type: "ReLU" bottom: "d" top: "r" include { phase: TEST } }
        """
    (finding,) = lint_text(text, "b.prototxt", Options(select=["NAN110"])).findings
    assert "only later, or only in other phases" in finding.message


def undefined_bottoms(text: str) -> list[tuple[int, str]]:
    report = lint_text(text, "b.prototxt", Options(select=["NAN110"]))
    return [(f.line, f.message) for f in report.findings]


TRAIN_ONLY_DATA = """
layer { name: "d" type: "Data" top: "data" top: "label" include { phase: TRAIN } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" inner_product_param { num_output: 2 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "fc" bottom: "label" top: "acc" include { phase: TEST } }
"""


def test_undefined_bottom_in_one_phase_only():
    """A TRAIN-only data layer: training starts, and the first test aborts with 'Unknown bottom blob'."""
    found = undefined_bottoms(TRAIN_ONLY_DATA)
    assert [line for line, _ in found] == [3, 4, 5]  # data for fc, label for the loss, label for the accuracy
    assert all("in the TEST phase no earlier layer produces it" in message for _, message in found[:2])
    assert "only later, or only in other phases" in found[2][1]  # the accuracy exists in TEST alone
    test_data = 'layer { name: "d" type: "Data" top: "data" top: "label" include { phase: TEST } }\n'
    assert undefined_bottoms(TRAIN_ONLY_DATA + test_data) != []  # after its readers: still missing
    assert undefined_bottoms(test_data + TRAIN_ONLY_DATA) == []


STAGED = """
LAYER { name: "train" type: DATA top: "data" include { phase: TRAIN } }
LAYER { name: "on-train" type: DATA top: "data" include: { phase: TEST stage: "test-on-train" } }
LAYER { name: "on-test" type: DATA top: "data" include: { phase: TEST stage: "test-on-test" } }
LAYER { name: "fc" type: FC bottom: "data" top: "fc" }
"""


@pytest.mark.parametrize(
    ("layer", "data", "fc"), [("layer", '"Data"', '"InnerProduct"'), ("layers", "DATA", "INNER_PRODUCT")]
)
def test_undefined_bottom_stages_are_alternatives(layer, data, fc):
    """As in BVLC's mnist_autoencoder: TEST data exists only in the stages the solver's test_state names."""
    text = STAGED.replace("LAYER", layer).replace("DATA", data).replace("FC", fc)
    assert undefined_bottoms(text) == []
    # Without its TEST layers the file is written for TRAIN alone (a solver's train_net): nothing missing.
    train_only = "\n".join(line for line in text.splitlines() if "phase: TEST" not in line)
    assert undefined_bottoms(train_only) == []
    # Built in TEST too (a solver's net: with test_iter), its last layer has no data there.
    solver = 'base_lr: 0.01 lr_policy: "fixed" max_iter: 10 test_iter: 1 test_interval: 5 net_param {'
    found = undefined_bottoms(solver + train_only + "}")
    assert len(found) == 1 and "in the TEST phase" in found[0][1]


def test_frozen_layers_need_no_filler():
    text = """
        layer { name: "a" type: "InnerProduct" bottom: "x" top: "a" param { lr_mult: 0 }
                inner_product_param { num_output: 2 } }
        layer { name: "b" type: "InnerProduct" bottom: "a" top: "b"
                inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
        layer { name: "loss" type: "SoftmaxWithLoss" bottom: "b" bottom: "label" top: "loss" }
        """
    assert codes_for(text, "NAN102") == []


def test_net_without_any_filler_or_solver_is_taken_as_pretrained():
    text = """
        layer { name: "a" type: "InnerProduct" bottom: "x" top: "a" inner_product_param { num_output: 2 } }
        layer { name: "loss" type: "SoftmaxWithLoss" bottom: "a" bottom: "label" top: "loss" }
        """
    assert codes_for(text, "NAN102") == []
    solver = 'base_lr: 0.01 lr_policy: "fixed" max_iter: 10 net_param {' + text + "}"
    assert codes_for(solver, "NAN102") == ["NAN102"]  # a solver trains it from its (zero) fillers


TWO_FC = """
layer { name: "fc1" type: "InnerProduct" bottom: "x" top: "fc1"
        inner_product_param { num_output: 4 weight_filler { type: "xavier" } FILLER1 } }
layer { name: "fc2" type: "InnerProduct" bottom: "fc1" top: "fc2"
        inner_product_param { num_output: 2 weight_filler { type: "xavier" } FILLER2 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc2" bottom: "label" top: "loss" }
"""


def bias_findings(filler1: str, filler2: str) -> list[str]:
    text = TWO_FC.replace("FILLER1", filler1).replace("FILLER2", filler2)
    return [f.message.split("'")[1] for f in lint_text(text).findings if f.code == "NAN103"]


def test_missing_bias_filler_only_where_the_net_states_others():
    # No layer states a bias filler: Caffe's zero default is relied on, deliberately.
    assert bias_findings("", "") == []
    # One layer states it: the other one was forgotten.
    assert bias_findings('bias_filler { type: "constant" value: 0.1 }', "") == ["fc2"]
    # A layer without a bias needs no bias filler, however it spells false.
    for false in ("false", "False", "f", "0"):
        assert bias_findings('bias_filler { type: "constant" }', f"bias_term: {false}") == []


def test_booleans_are_read_as_protobuf_spells_them():
    root = parse_text("a: true b: t c: 1 d: false e: False f: 0 g: maybe").root
    assert [root.flag(n) for n in "abcdefg"] == [True, True, True, False, False, False, None]
    assert root.flag("absent", default=True) is True


def test_absurd_pooling_geometries_end_quickly_and_quietly():
    # A fuzzed padding of 1e23 made every one of 4e22 windows empty; the rule walked them all. Caffe
    # drops a padded last window that starts past the image, and refuses a negative kernel: no finding.
    for params in ("kernel_size: 3 stride: 5 pad: 99999999999999999999999", "kernel_size: -3 stride: 5"):
        assert pooling_findings(params) == []


@pytest.mark.parametrize(
    ("clip", "reported"),
    [
        ("", True),
        ("clip_gradients: -1", True),
        ("clip_gradients: -0.5", True),
        ("clip_gradients: inf", True),
        ("clip_gradients: 10", False),
        ("clip_gradients: 0.001", False),
        ("clip_gradients: 0", False),
    ],
)
def test_high_lr_counts_only_a_positive_clip_gradients(clip, reported):
    """Caffe's ClipGradients returns early for a negative norm (-1 is the default: off)."""
    text = f'base_lr: 0.5\nlr_policy: "fixed"\nmax_iter: 100\n{clip}\n'
    report = lint_text(text, "s.prototxt", Options(select=["NAN205", "NAN206"]))
    codes = [f.code for f in report.findings]
    assert ("NAN205" in codes) == reported
    if clip and reported:
        assert f"{clip} does not clip".replace(": ", " ") in report.findings[0].message
    assert ("NAN206" in codes) == (clip == "clip_gradients: 0")  # 0 is its own finding, not this one


def test_every_rule_module_is_listed_once_named_after_its_rule_and_its_code_unique():
    """Rules are listed by hand in rules.MODULES: a module left out would never run."""
    import pkgutil

    from caffe_nanlayers.lint import rules

    on_disk = {m.name for m in pkgutil.iter_modules(rules.__path__) if not m.name.startswith("_")}
    listed = [m.__name__.rsplit(".", 1)[1] for m in rules.MODULES]
    assert sorted(listed) == sorted(on_disk) and len(set(listed)) == len(listed)
    for module in rules.MODULES:
        assert module.__name__.rsplit(".", 1)[1] == module.NAME.replace("-", "_"), module.__name__
        assert RULES[module.CODE].name == module.NAME
    assert len(RULES) == len(rules.MODULES)  # no two modules share a code
    assert not any(hasattr(m, "DEFAULT") for m in rules.MODULES)  # every rule is on unless --ignore'd
