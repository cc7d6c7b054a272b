"""How a net file is used: its phases and the origin of its weights, and the rules that depend on them."""

from __future__ import annotations

from caffe_nanlayers.lint import Options, lint_paths, lint_text
from caffe_nanlayers.lint.net import build_net
from caffe_nanlayers.lint.parser import parse_text
from caffe_nanlayers.lint.usage import BOTH, TEST_ONLY, TRAIN_ONLY, SolverUse, usage_of

TRAIN_DATA = 'layer { name: "d" type: "Data" top: "data" top: "label" include { phase: TRAIN } }\n'
TEST_DATA = 'layer { name: "d" type: "Data" top: "data" top: "label" include { phase: TEST } }\n'
BODY = """
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
        inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
"""


def usage(text: str, *uses: SolverUse):
    return usage_of(build_net(parse_text(text).root), list(uses))


def use(field: str, tests: bool = True, weights: bool = False) -> SolverUse:
    return SolverUse("solver.prototxt", field, tests, weights)


def test_phases_come_from_the_solver_field_that_names_the_file():
    assert usage(BODY, use("train_net")).phases == TRAIN_ONLY
    assert usage(BODY, use("test_net")).phases == TEST_ONLY
    assert usage(BODY, use("net")).phases == BOTH
    assert usage(BODY, use("net", tests=False)).phases == TRAIN_ONLY  # no test_iter: no test net
    assert usage(BODY, use("train_net"), use("test_net")).phases == BOTH


def test_without_a_solver_the_phases_come_from_the_data_layers():
    assert usage(TRAIN_DATA + BODY).phases == TRAIN_ONLY
    assert usage(TEST_DATA + BODY).phases == TEST_ONLY
    assert usage(TRAIN_DATA + TEST_DATA + BODY).phases == BOTH
    # A layer included in TEST says the file is built in TEST too, whatever its data layers.
    accuracy = 'layer { name: "a" type: "Accuracy" bottom: "fc" bottom: "label" include { phase: TEST } }'
    assert usage(TRAIN_DATA + BODY + accuracy).phases == BOTH


def filler_net(filled: int, unfilled: int, frozen: bool = False) -> str:
    layers, bottom = [], "data"
    for i in range(unfilled + filled):
        filler = 'weight_filler { type: "xavier" }' if i >= unfilled else ""
        param = "param { lr_mult: 0 }" if frozen and i == 0 else ""
        layers.append(
            f'layer {{ name: "fc{i}" type: "InnerProduct" bottom: "{bottom}" top: "fc{i}" {param}'
            f" inner_product_param {{ num_output: 2 {filler} }} }}"
        )
        bottom = f"fc{i}"
    loss = f'layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "{bottom}" bottom: "label" top: "loss" }}'
    return TRAIN_DATA + "\n".join(layers) + "\n" + loss


def test_fine_tuned_nets_are_recognised():
    assert usage(filler_net(0, 3)).weights_loaded  # no filler anywhere, no solver: a pretrained net
    assert usage(filler_net(0, 3), use("train_net")).weights_loaded is None  # trained from zeros
    assert usage(filler_net(0, 3), use("train_net", weights=True)).weights_loaded
    assert usage(filler_net(1, 5)).weights_loaded  # a new head on a backbone
    assert usage(filler_net(2, 1, frozen=True)).weights_loaded  # a frozen layer
    assert usage(filler_net(3, 1), use("train_net", weights=True)).weights_loaded
    assert usage(filler_net(3, 1)).weights_loaded is None  # one filler forgotten in a net from scratch
    assert usage(filler_net(1, 1)).weights_loaded is None


def codes(text: str, code: str) -> list[str]:
    return [f.code for f in lint_text(text, "n.prototxt", Options(select=[code])).findings]


def test_missing_weight_filler_only_where_fillers_start_the_training():
    assert codes(filler_net(3, 1), "NAN102") == ["NAN102"]
    assert codes(filler_net(1, 5), "NAN102") == []
    test_net = filler_net(3, 1).replace("phase: TRAIN", "phase: TEST")
    assert codes(test_net, "NAN102") == []  # a test net shares the train net's weights


def test_missing_bias_filler_not_when_every_stated_bias_is_zero():
    zero = 'weight_filler { type: "xavier" } bias_filler { type: "constant" value: 0 }'
    text = filler_net(3, 0).replace('weight_filler { type: "xavier" }', zero, 1)
    assert codes(text, "NAN103") == []
    nonzero = 'weight_filler { type: "xavier" } bias_filler { type: "constant" value: 0.1 }'
    text = filler_net(3, 0).replace('weight_filler { type: "xavier" }', nonzero, 1)
    assert codes(text, "NAN103") == ["NAN103", "NAN103"]


def write_pair(tmp_path, field: str, net: str, solver_extra: str = "") -> str:
    (tmp_path / "net.prototxt").write_text(net)
    solver = tmp_path / "solver.prototxt"
    solver.write_text(
        f'{field}: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 10\n{solver_extra}'
    )
    return str(solver)


def test_a_train_net_with_train_only_data_is_not_checked_in_test(tmp_path):
    """SSD's train.prototxt: data layers include { phase: TRAIN }, named only as the solver's train_net."""
    solver = write_pair(tmp_path, "train_net", TRAIN_DATA + BODY)
    report = lint_paths([solver], Options(cwd=str(tmp_path), select=["NAN110"]))
    assert report.findings == []
    solver = write_pair(tmp_path, "net", TRAIN_DATA + BODY, "test_iter: 10\ntest_interval: 100\n")
    found = lint_paths([solver], Options(cwd=str(tmp_path), select=["NAN110"])).findings
    assert [f.line for f in found] == [3, 5] and all("the net of " in f.message for f in found)


def test_a_test_net_named_by_its_solver_gets_no_filler_findings(tmp_path):
    solver = write_pair(tmp_path, "test_net", filler_net(3, 1).replace("phase: TRAIN", "phase: TEST"))
    report = lint_paths([solver], Options(cwd=str(tmp_path), select=["NAN102", "NAN110"]))
    assert report.findings == []
    # The same file with TRAIN data, named as a test net: Caffe finds no data when it builds it.
    solver = write_pair(tmp_path, "test_net", filler_net(3, 1))
    found = lint_paths([solver], Options(cwd=str(tmp_path), select=["NAN102", "NAN110"])).findings
    assert {f.code for f in found} == {"NAN110"} and "the test_net of " in found[0].message


def test_a_layer_level_phase_restricts_nothing():
    """Caffe builds a layer with 'phase: TRAIN' (outside include) in TEST too, where its bottom is missing."""
    text = (
        TRAIN_DATA
        + TEST_DATA.replace('top: "label" ', "")
        + BODY.replace('top: "loss" }', 'top: "loss" phase: TRAIN }')
    )
    (finding,) = lint_text(text, "n.prototxt", Options(select=["NAN110"])).findings
    assert (
        "in the TEST phase" in finding.message and "'phase: TRAIN' field restricts nothing" in finding.message
    )


LABEL_MAP = """item {
  name: "none_of_the_above"
  label: 0
  display_name: "background"
}
item {
  name: "face"
  label: 1
  display_name: "face"
}
"""


def test_a_label_map_is_linted_as_one(tmp_path, caffe):
    path = tmp_path / "labelmap.prototxt"
    path.write_text(LABEL_MAP)
    report = lint_paths([str(path)], Options(cwd=str(tmp_path)))
    assert report.findings == [] and report.errors == [] and report.files == 1
    path.write_text(LABEL_MAP.replace("label: 1", "lable: 1"))
    (finding,) = lint_paths([str(path)], Options(cwd=str(tmp_path))).findings
    assert finding.code == "NAN001" and "LabelMapItem" in finding.message and finding.line == 8


def test_a_label_map_without_the_schema_is_skipped_with_a_note(tmp_path):
    path = tmp_path / "labelmap.prototxt"
    path.write_text(LABEL_MAP)
    report = lint_paths([str(path)], Options(cwd=str(tmp_path), use_schema=False))
    assert report.findings == [] and report.errors == []
    assert any("a LabelMap (not a net or a solver): not checked" in n for n in report.notes)


def solver_codes(tmp_path, text: str, code: str, script: str | None = None) -> list[str]:
    path = tmp_path / "solver.prototxt"
    path.write_text(text)
    if script is not None:
        (tmp_path / "train.py").write_text(script)
    return [f.code for f in lint_paths([str(path)], Options(cwd=str(tmp_path), select=[code])).findings]


def test_larc_solvers_may_have_a_large_base_lr(tmp_path):
    base = 'base_lr: 24\nlr_policy: "poly"\npower: 2\nmax_iter: 7800\n'
    assert solver_codes(tmp_path, base, "NAN205") == ["NAN205"]
    assert solver_codes(tmp_path, base + "larc: true\n", "NAN205") == []


def test_adam_with_a_large_delta_is_held_to_sgd_threshold(tmp_path):
    base = 'type: "Adam"\nbase_lr: 0.1\nlr_policy: "fixed"\nmax_iter: 10\nmomentum: 0.9\n'
    assert solver_codes(tmp_path, base + "delta: 1e-8\n", "NAN205") == ["NAN205"]
    assert solver_codes(tmp_path, base + "delta: 1.0\n", "NAN205") == []


def test_solvers_driven_from_python_need_no_max_iter(tmp_path):
    base = 'base_lr: 0.01\nlr_policy: "fixed"\n'
    assert solver_codes(tmp_path, base, "NAN203") == ["NAN203"]
    script = "import caffe\nsolver = caffe.SGDSolver('solver.prototxt')\nsolver.step(4000)\n"
    assert solver_codes(tmp_path, base, "NAN203", script=script) == []


def test_snapshot_off_and_evaluation_pass_are_not_reported(tmp_path):
    base = 'base_lr: 0.01\nlr_policy: "fixed"\n'
    assert solver_codes(tmp_path, base + "snapshot: 0\n", "NAN203") == []
    evaluation = base + 'net: "n.prototxt"\ntest_iter: 10\nmax_iter: 0\n'
    (tmp_path / "n.prototxt").write_text('layer { name: "x" type: "Input" top: "x" }\n')
    assert solver_codes(tmp_path, evaluation, "NAN203") == []
    no_test = evaluation + "test_initialization: false\n"
    assert solver_codes(tmp_path, no_test, "NAN203") == ["NAN203"]


def test_a_script_beside_the_solver_that_loads_weights_marks_fine_tuning(tmp_path):
    """FCN's solve.py: solver.net.copy_from(weights); the nets state no filler at all."""
    net = filler_net(0, 3)
    solver = write_pair(tmp_path, "train_net", net)
    assert codes_for_solver(solver, tmp_path) == ["NAN102"] * 3
    (tmp_path / "solve.py").write_text(
        "solver = caffe.SGDSolver('solver.prototxt')\nsolver.net.copy_from(w)\n"
    )
    assert codes_for_solver(solver, tmp_path) == []
    (tmp_path / "solve.py").unlink()
    (tmp_path / "train.sh").write_text("caffe train --solver=solver.prototxt --weights=vgg16.caffemodel\n")
    assert codes_for_solver(solver, tmp_path) == []


def codes_for_solver(solver: str, tmp_path) -> list[str]:
    return [f.code for f in lint_paths([solver], Options(cwd=str(tmp_path), select=["NAN102"])).findings]


def test_a_net_path_with_a_tilde_says_caffe_does_not_expand_it(tmp_path):
    solver = tmp_path / "solver.prototxt"
    solver.write_text(
        'train_net: "~/models/train.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 1\n'
    )
    (finding,) = lint_paths([str(solver)], Options(cwd=str(tmp_path), select=["NAN210"])).findings
    assert finding.message.endswith("(Caffe does not expand '~')")
