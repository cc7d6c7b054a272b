"""The linter on BVLC Caffe's own 54 net and solver files (known-good): exact findings pinned.

Each pinned finding is one a Caffe expert agrees with:

- ``lenet_auto_solver.prototxt`` names ``mnist/lenet_auto_train.prototxt`` and
  ``mnist/lenet_auto_test.prototxt``, which the ``01-learning-lenet`` notebook
  writes at run time: they are not in the repository, and ``caffe train`` on
  the checkout stops with "Failed to parse NetParameter file" (NAN210).
- ``mnist_autoencoder.prototxt`` has two layers named "loss" (a
  SigmoidCrossEntropyLoss and an EuclideanLoss) in the same phases: harmless
  for weights (losses have none), but pycaffe's ``net.layer_dict["loss"]``
  sees only the second (NAN109 at info severity).
"""

from __future__ import annotations

import os

import pytest

from caffe_nanlayers.lint import Options, lint_paths
from caffe_nanlayers.lint.linter import Linter, expand_paths, file_kind
from caffe_nanlayers.lint.parser import parse_file

PINNED = [
    ("examples/mnist/lenet_auto_solver.prototxt", 2, 12, "NAN210", "error"),
    ("examples/mnist/lenet_auto_solver.prototxt", 3, 11, "NAN210", "error"),
    ("examples/mnist/mnist_autoencoder.prototxt", 317, 9, "NAN109", "info"),
]


@pytest.fixture(scope="module")
def corpus(shared_dir):
    return str(shared_dir / "corpus" / "bvlc")


def pinned(report, root):
    return [(os.path.relpath(f.path, root), f.line, f.column, f.code, f.severity) for f in report.findings]


def test_every_file_parses(corpus):
    files, errors = expand_paths([corpus])
    assert errors == [] and len(files) == 54
    for path in files:
        parse_file(path)  # raises on a syntax error


def test_pinned_findings_with_the_schema(corpus, caffe):
    report = lint_paths([corpus], Options(cwd=corpus))
    assert report.errors == [] and report.notes == []
    assert report.files == 54
    assert pinned(report, corpus) == PINNED


def test_same_findings_without_the_schema_and_from_elsewhere(corpus, tmp_path, monkeypatch):
    """Run from another directory: the nets are found relative to the solvers' parent (with a note)."""
    monkeypatch.chdir(tmp_path)
    report = lint_paths([corpus], Options(use_schema=False))
    assert pinned(report, corpus) == PINNED
    assert report.notes and all("Caffe resolves it against the working directory" in n for n in report.notes)


def test_every_solver_net_is_found(corpus):
    files, _ = expand_paths([corpus])
    linter = Linter(Options(cwd=corpus))
    solvers = missing = 0
    for path in files:
        document = parse_file(path)
        if file_kind(document.root) != "solver":
            continue
        solvers += 1
        for ref in linter._follow(document):
            if ref.found is None:
                missing += 1
                assert os.path.basename(path) == "lenet_auto_solver.prototxt"
            else:
                assert os.path.isfile(ref.found)
    assert solvers == 25 and missing == 2


def test_solvers_and_nets_are_told_apart(corpus):
    files, _ = expand_paths([corpus])
    kinds = {os.path.relpath(p, corpus): file_kind(parse_file(p).root) for p in files}
    assert {name for name, kind in kinds.items() if kind == "solver"} == {
        name for name in kinds if "solver" in os.path.basename(name)
    }
    assert sum(k == "solver" for k in kinds.values()) == 25
