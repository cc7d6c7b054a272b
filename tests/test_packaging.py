"""The package as a user gets it: a wheel installed into a fresh environment without Caffe.

The linter and the log doctor promise to work on machines with no pycaffe;
only a real install from the built wheel (not this checkout on sys.path)
shows that the package data, the entry points and the dependencies say so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile

import pytest
from conftest import EXAMPLES, REPO

LOG = """\
I1130 10:00:00.000000  1234 solver.cpp:218] Iteration 0 (0 iter/s, 0.1s/20 iters), loss = 2.30
I1130 10:00:00.000000  1234 solver.cpp:237]     Train net output #0: loss = 2.30 (* 1 = 2.30 loss)
I1130 10:00:00.000000  1234 sgd_solver.cpp:105] Iteration 0, lr = 0.01
I1130 10:00:01.000000  1234 solver.cpp:218] Iteration 20 (20 iter/s, 1s/20 iters), loss = nan
I1130 10:00:01.000000  1234 solver.cpp:237]     Train net output #0: loss = nan (* 1 = nan loss)
I1130 10:00:01.000000  1234 sgd_solver.cpp:105] Iteration 20, lr = 0.01
"""


def _run(command, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    result = _run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(REPO)])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory):
    """A fresh venv with only the wheel and its declared dependencies: no caffe, no extras."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    wheel = next(built.glob("*.whl"))
    result = _run([*pip, str(wheel)])
    assert result.returncode == 0, result.stderr[-2000:]
    return env_dir / "bin"


def test_the_sdist_and_the_wheel_carry_the_license_and_every_package(built):
    sdist = next(built.glob("*.tar.gz"))
    wheel = next(built.glob("*.whl"))
    assert sdist.name.startswith("caffe_nanlayers-") or sdist.name.startswith("caffe-nanlayers-")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.endswith("licenses/LICENSE") for n in names), names
    packages = {str(p.parent.relative_to(REPO)) for p in (REPO / "caffe_nanlayers").rglob("__init__.py")}
    for package in packages:
        assert f"{package}/__init__.py" in names, f"{package} is missing from the wheel"


def test_the_installed_wheel_lints_and_reads_logs_without_caffe(installed, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    python = installed / "python"
    probe = _run([str(python), "-c", "import importlib.util as u; print(u.find_spec('caffe'))"], env=env)
    assert probe.stdout.strip() == "None", "the fresh environment must not see a caffe"

    lint = _run(
        [str(installed / "lint-prototxt"), str(EXAMPLES / "lint" / "solver_poly_bad.prototxt")],
        cwd=tmp_path,
        env=env,
    )
    assert lint.returncode == 1 and "NAN203" in lint.stdout, lint.stdout + lint.stderr

    log = tmp_path / "train.log"
    log.write_text(LOG)
    doctor = _run([str(installed / "caffe-nan"), "doctor", "--json", str(log)], cwd=tmp_path, env=env)
    assert doctor.returncode == 1, doctor.stdout + doctor.stderr
    verdict = json.loads(doctor.stdout)
    assert (verdict["nan_found"], verdict["iteration"]) == (True, 20)
