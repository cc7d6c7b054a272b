"""Shared test harness: real pycaffe nets built from a few lines of prototxt.

Tests that touch Caffe take the ``caffe`` fixture (or ``make_net`` /
``make_solver``). Where pycaffe is missing they skip with a reason, except in
CI (CI=true), where a missing Caffe is a failure: a skipped Caffe test is not
a passed one.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from caffe_nanlayers import caffe_net
from caffe_nanlayers.errors import UserError

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "prototxt_examples"
SHARED = REPO.parent / "shared"
IN_CI = os.environ.get("CI", "").lower() == "true"

# Local runs keep exploring new fuzz inputs; CI replays the same ones, so a
# red CI means a change broke something, not that a new input was drawn.
settings.register_profile("ci", derandomize=True, database=None)
if IN_CI:
    settings.load_profile("ci")


def _load_caffe():
    try:
        return caffe_net.import_caffe()
    except UserError as exc:
        if IN_CI:
            pytest.fail(f"CI needs a real pycaffe and has none: {exc}")
        pytest.skip(f"pycaffe not importable: {exc}")


@pytest.fixture(scope="session")
def caffe():
    """The real pycaffe module (CPU mode, glog quiet)."""
    return _load_caffe()


@pytest.fixture
def make_net(caffe):
    """make_net(text, phase='TEST', weights=None) -> caffe.Net built from prototxt text."""
    return caffe_net.net_from_text


@pytest.fixture
def make_solver(caffe, tmp_path):
    """make_solver(solver_text, net_text) -> solver; files live in the test's tmp_path."""

    def build(solver_text: str, net_text: str | None = None):
        return caffe_net.solver_from_text(solver_text, net_text, workdir=tmp_path / "solver")

    return build


@pytest.fixture(scope="session")
def caffe_bin(caffe):
    """The ``caffe`` binary installed next to this venv's python (see tests/caffe_binary.py)."""
    from caffe_binary import CAFFE_BIN

    if not CAFFE_BIN.exists():
        message = f"no caffe binary at {CAFFE_BIN}: run scripts/dev setup"
        if IN_CI:
            pytest.fail(f"CI needs the caffe binary: {message}")
        pytest.skip(message)
    return CAFFE_BIN


@pytest.fixture(scope="session")
def shared_dir():
    """../shared beside the checkout: present in CI, absent on a user's machine."""
    if not SHARED.is_dir():
        if IN_CI:
            pytest.fail(f"CI must have the shared directory beside the checkout ({SHARED.name}/)")
        pytest.skip("the shared corpus is not beside this checkout (it exists only in CI)")
    return SHARED


def pytest_sessionfinish(session, exitstatus):
    """In CI a skip is a failure: every test, Caffe's included, must really run."""
    if not IN_CI:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and session.exitstatus == 0:
        for report in skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
            reporter.write_line(f"CI: skipped test counts as a failure: {report.nodeid}: {reason}", red=True)
        session.exitstatus = 1
