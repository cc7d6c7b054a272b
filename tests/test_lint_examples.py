"""The shipped examples: lint's own faulty files give exactly their findings, every fixed file none."""

from __future__ import annotations

import os
import re

import pytest
from conftest import EXAMPLES, REPO

from caffe_nanlayers.lint import Options, lint_paths
from caffe_nanlayers.lint.schema import SCHEMA_CODES

LINT = EXAMPLES / "lint"

# (file, line, column, code, severity) for every finding on prototxt_examples/lint/
PINNED = {
    "net_pooling_bad.prototxt": [(24, 44, "NAN101", "error")],
    "net_v1_bad.prototxt": [(16, 44, "NAN101", "error")],
    "solver_adam_bad.prototxt": [
        (7, 10, "NAN205", "warning"),
        (9, 12, "NAN208", "error"),
        (10, 8, "NAN209", "error"),
        (13, 13, "NAN207", "info"),
    ],
    "solver_poly_bad.prototxt": [(4, 1, "NAN203", "error"), (6, 1, "NAN202", "error")],
    "solver_step_bad.prototxt": [(5, 1, "NAN201", "error"), (5, 1, "NAN202", "error")],
    "solver_typo_bad.prototxt": [
        (4, 6, "NAN210", "error"),
        (6, 1, "NAN001", "warning"),
        (7, 12, "NAN204", "error"),
    ],
    "train_val_bad.prototxt": [
        (16, 3, "NAN102", "warning"),
        (16, 3, "NAN103", "info"),
        (26, 27, "NAN107", "error"),
        (46, 3, "NAN103", "info"),
        (48, 5, "NAN104", "warning"),
        (56, 34, "NAN112", "error"),
        (59, 9, "NAN109", "warning"),
        (78, 3, "NAN105", "warning"),
        (79, 11, "NAN110", "error"),
    ],
}


def lint(path, **options):
    return lint_paths([str(path)], Options(cwd=str(REPO), **options))


def findings_of(report, name):
    assert report.errors == []
    return [(f.line, f.column, f.code, f.severity) for f in report.findings if f.path.endswith(name)]


@pytest.mark.parametrize("name", sorted(PINNED))
def test_faulty_lint_examples(name):
    """Every pinned finding but the schema's: these need no Caffe."""
    found = findings_of(lint(LINT / name, use_schema=False), name)
    assert found == [pin for pin in PINNED[name] if pin[2] not in SCHEMA_CODES]


@pytest.mark.parametrize("name", sorted(PINNED))
def test_faulty_lint_examples_with_the_schema(name, caffe):
    found = findings_of(lint(LINT / name), name)
    assert found == PINNED[name]
    expected = re.search(r"^# expect: (.*)$", (LINT / name).read_text(), re.MULTILINE).group(1).split()
    assert sorted(expected) == sorted({code for _, _, code, _ in found})


def test_missing_bias_filler_names_another_layer_even_under_the_same_name():
    """train_val_bad has two layers named 'fc1': the one without bias_filler points at the other, by line."""
    report = lint(LINT / "train_val_bad.prototxt", select=["NAN103"])
    messages = {f.line: f.message for f in report.findings}
    assert messages[46] == (
        "InnerProduct 'fc1' has a bias and no bias_filler (as 'fc1' on line 58 does): it starts at constant 0"
    )


def test_every_faulty_lint_example_is_pinned():
    assert sorted(p.name for p in LINT.glob("*_bad*.prototxt")) == sorted(PINNED)


def clean_examples():
    for path in sorted(EXAMPLES.rglob("*.prototxt")):
        if "_bad" not in path.name:
            yield pytest.param(path, id=str(path.relative_to(EXAMPLES)))


def shown(report):
    assert report.errors == []
    return [f"{f.path}:{f.line}: {f.code} {f.message}" for f in report.findings]


@pytest.mark.parametrize("path", list(clean_examples()))
def test_fixed_examples_are_clean(path):
    """Every example not named *_bad* (lint's and the other tools') has no finding, nor do its nets."""
    assert shown(lint(path, use_schema=False)) == []


@pytest.mark.parametrize("path", list(clean_examples()))
def test_fixed_examples_fit_the_schema(path, caffe):
    assert shown(lint(path, select=list(SCHEMA_CODES))) == []


def test_pooling_stride_example_names_the_empty_row_and_column():
    report = lint(EXAMPLES / "pooling_stride" / "deploy_bad.prototxt")
    (finding,) = report.findings
    assert (finding.code, finding.severity, finding.line) == ("NAN101", "error", 16)
    assert "output row 2 (window from input row 10)" in finding.message
    assert "output column 2" in finding.message
    assert "AVE pooling yields NaN" in finding.message


def test_solver_nets_are_linted_once():
    report = lint(LINT, use_schema=False)
    paths = [os.path.basename(f.path) for f in report.findings]
    assert "train_val_fixed.prototxt" not in paths
    assert report.files == len(list(LINT.glob("*.prototxt")))
