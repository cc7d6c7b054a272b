"""Schema checks against the real caffe_pb2, and the linter without Caffe at all."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO

from caffe_nanlayers.lint import Options, lint_text
from caffe_nanlayers.lint.schema import load_schema

pytestmark = pytest.mark.caffe


def schema_findings(text):
    report = lint_text(text, "s.prototxt", Options(select=["NAN0"]))
    return [(f.code, f.line, f.column, f.message) for f in report.findings]


def test_private_schema_is_caffe_pb2(caffe):
    """The descriptor read out of caffe_pb2.py is the one pycaffe itself uses."""
    schema, why = load_schema()
    assert schema is not None, why
    from caffe.proto import caffe_pb2

    for name in ("NetParameter", "LayerParameter", "V1LayerParameter", "SolverParameter", "PoolingParameter"):
        ours = schema.message(f"caffe.{name}")
        theirs = getattr(caffe_pb2, name).DESCRIPTOR
        assert sorted(ours.fields_by_name) == sorted(theirs.fields_by_name)


def test_near_miss_field_gets_a_suggestion(caffe):
    text = 'layer {\n  name: "c"\n  type: "Convolution"\n  convolution_param { kernal_size: 3 }\n}\n'
    assert schema_findings(text) == [
        (
            "NAN001",
            4,
            23,
            "unknown field 'kernal_size' in ConvolutionParameter (did you mean 'kernel_size'?)",
        )
    ]


def test_unknown_field_without_near_miss_is_still_a_warning(caffe):
    report = lint_text('layer { name: "x" type: "ReLU" my_fork_field: 1 }')
    (finding,) = [f for f in report.findings if f.code == "NAN001"]
    assert finding.severity == "warning" and "did you mean" not in finding.message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("layer { pooling_param { pool: AVG } }", "found AVG (did you mean 'AVE'?)"),
        ("layer { name: x }", "'name' is a string: expected a quoted value, found x"),
        ("layer { pooling_param { kernel_size: 2.5 } }", "expected an integer, found 2.5"),
        ("layer { pooling_param { kernel_size: -1 } }", "is out of range [0, 4294967295]"),
        ("layer { inner_product_param { bias_term: maybe } }", "expected true or false, found maybe"),
        ("layer { convolution_param: 3 }", "is a ConvolutionParameter message: expected '{', found 3"),
        ("layer { name { x: 1 } }", "'name' is a scalar field"),
        ("layer { dropout_param { dropout_ratio: 1e39 } }", "1e39 overflows to inf"),
        ("max_iter: 99999999999 base_lr: 0.1", "is out of range"),
    ],
)
def test_bad_values(caffe, text, fragment):
    found = schema_findings(text)
    assert [c for c, *_ in found] == ["NAN002"], found
    assert fragment in found[0][3]


def test_values_caffe_accepts(caffe):
    text = """
    name: 'single quotes'
    force_backward: t
    layer { name: "p" type: "Pooling" pooling_param { pool: 1 kernel_size: 0x3 stride: 2 } }
    layer { name: "c" type: "Convolution" convolution_param { kernel_size: [3, 3] bias_term: false } }
    layer { name: "s" type: "Scale" param { lr_mult: 1 } param { lr_mult: 2 } scale_param { bias_term: 1 } }
    layers { name: "v1" type: CONVOLUTION blobs_lr: 1 blobs_lr: 2 }
    """
    assert schema_findings(text) == []


def test_repeated_singular_field(caffe):
    found = schema_findings("base_lr: 0.01\nmax_iter: 10\nbase_lr: 1\n")
    assert found == [
        (
            "NAN003",
            3,
            1,
            "'base_lr' is set twice (first on line 1): Caffe refuses the file "
            '(Non-repeated field "base_lr" is specified multiple times)',
        )
    ]


def test_repeated_message_blocks_and_lists_for_singular_fields(caffe):
    text = (
        'layer { name: "p" type: "Pooling" bottom: "x" top: "p"\n'
        "  pooling_param { kernel_size: 2 }\n  pooling_param { stride: 1 }\n"
        "  convolution_param { kernel_size: [3, 3] pad: [1, 1] stride: [1] dilation: [1, 2] }\n}\n"
    )
    found = schema_findings(text)
    assert [(code, line) for code, line, *_ in found] == [("NAN003", 3)]  # conv's fields are repeated
    found = schema_findings("device_id: [0, 1, 2, 3]\nbase_lr: 0.1\n")
    assert [(code, line) for code, line, *_ in found] == [("NAN003", 1)]
    assert "not a repeated field: Caffe refuses a list" in found[0][3]


def test_inline_net_of_a_solver_is_checked_as_a_net(caffe):
    found = schema_findings('base_lr: 0.1\nnet_param {\n  layer { nme: "x" }\n}\n')
    assert [(c, line) for c, line, *_ in found] == [("NAN001", 3)]
    assert "did you mean 'name'" in found[0][3]


def test_no_schema_flag_skips_the_schema(caffe):
    report = lint_text("layer { kernal: 1 }", options=Options(use_schema=False))
    assert [f.code for f in report.findings if f.code.startswith("NAN0")] == []


_WITHOUT_CAFFE = """
import sys
sys.path = [p for p in sys.path if "site-packages" not in p and "dist-packages" not in p]
sys.path.insert(0, {repo!r})
from caffe_nanlayers.commands.lint import main
sys.exit(main(sys.argv[1:]))
"""


def test_without_pycaffe_everything_else_runs(tmp_path):
    """A Python that cannot import caffe (nor numpy, nor protobuf): one note, every other rule."""
    path = tmp_path / "solver.prototxt"
    path.write_text('base_lr: 0.01\nlr_polcy: "x"\nlr_policy: "poly"\npower: 1\n')
    code = _WITHOUT_CAFFE.format(repo=str(REPO))
    result = subprocess.run(
        [sys.executable, "-S", "-c", code, str(path)],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert "Traceback" not in result.stderr
    assert result.stderr.count("schema checks (NAN001, NAN002, NAN003) skipped") == 1
    codes = [line.split()[1] for line in result.stdout.splitlines() if line.startswith(str(path))]
    assert codes == ["NAN203", "NAN202"]
    assert result.returncode == 1


def run_without_caffe(*paths):
    result = subprocess.run(
        [sys.executable, "-S", "-c", _WITHOUT_CAFFE.format(repo=str(REPO)), *map(str, paths)],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert "Traceback" not in result.stderr
    return result


def test_without_pycaffe_a_parse_error_alone_is_one_line(tmp_path):
    """Nothing was linted, so there is nothing the skipped schema checks could have missed: no note."""
    broken = tmp_path / "broken.prototxt"
    broken.write_text('layer {\n  name: "x"\n')
    result = run_without_caffe(broken)
    assert result.returncode == 2
    assert result.stderr == f"{broken}:3:1: expected '}}' closing the '{{' of line 1, found end of file\n"
    good = tmp_path / "good.prototxt"
    good.write_text('layer { name: "r" type: "ReLU" bottom: "x" top: "x" }\n')
    result = run_without_caffe(broken, good)  # a file was linted: the note belongs, once
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 2
    assert result.stderr.count("schema checks (NAN001, NAN002, NAN003) skipped") == 1
