"""The pycaffe installer: what it derives from this system, and its idempotent path."""

import importlib.util
import subprocess
import sys

import pytest
from conftest import REPO

spec = importlib.util.spec_from_file_location("install_caffe", REPO / "scripts" / "install_caffe.py")
install_caffe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install_caffe)


def probe(version="3.11", numpy_major="2"):
    return {"version": version, "numpy_major": numpy_major}


def test_cache_key_changes_with_python_and_numpy_major():
    key = install_caffe.cache_key(probe())
    assert key.startswith(f"{install_caffe.CAFFE_VERSION}-py3.11-np2-")
    assert key == install_caffe.cache_key(probe())
    assert key != install_caffe.cache_key(probe(version="3.12"))
    assert key != install_caffe.cache_key(probe(numpy_major="1"))


def test_library_names_are_derived_from_the_interpreter(tmp_path, caffe):
    # caffe is importable, so the build's libraries exist on this system.
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    found = install_caffe.link_shims(tmp_path, version)
    assert {line.split(" -> ")[0] for line in found} == {"boost_python", "hdf5", "hdf5_hl"}
    boost = (tmp_path / "libboost_python.so").resolve().name
    assert boost.startswith("libboost_python" + version.replace(".", ""))


def test_missing_library_is_a_clear_failure():
    with pytest.raises(install_caffe.StepFailed, match="no_such_library_xyz"):
        install_caffe.find_library(["no_such_library_xyz"])


def test_second_run_reuses_the_importable_caffe(caffe):
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "install_caffe.py"), "--python", sys.executable],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "using the Caffe already importable here, with the Python layer" in proc.stdout


def test_check_reports_a_python_without_caffe(tmp_path):
    # A bare interpreter (isolated mode: no site-packages) cannot import caffe.
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\nexec {sys.executable} -I -S "$@"\n')
    fake.chmod(0o755)
    ok, detail = install_caffe.check_caffe(str(fake))
    assert not ok and "caffe" in detail


def test_build_keeps_the_sdist_conda_paths_out(tmp_path):
    # The sdist's CMakeLists defaults ANACONDA_HOME to /root/miniconda3 and puts it
    # on the include, link and run paths: unreadable to a non-root compiler, and a
    # conda's headers and libraries wherever one is installed there.
    venv_probe = {"include": "/usr/include/python3.11", "numpy_include": "/np", "executable": "/v/bin/python"}
    args, _ = install_caffe.build_flags(venv_probe, tmp_path / "shims", tmp_path / "no-conda")
    assert f"-DANACONDA_HOME={tmp_path / 'no-conda'}" in args
    assert "-DCMAKE_SKIP_RPATH=ON" in args


def test_apt_get_through_sudo_stays_noninteractive(monkeypatch, tmp_path):
    # sudo resets the environment, so the front end must be part of the command.
    monkeypatch.setattr(install_caffe.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(install_caffe.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(install_caffe, "dpkg_installed", lambda package: package != "cmake")
    ran = []

    class Recorder(install_caffe.Progress):
        def run(self, step, commands, cwd=None, env=None):
            ran.extend(commands)

    include = tmp_path / "include"
    include.mkdir()
    (include / "Python.h").touch()
    venv_probe = {"include": str(include), "version": "3.11"}
    install_caffe.install_debian_packages(Recorder(tmp_path / "logs"), venv_probe)
    assert [c[c.index("apt-get") + 1] for c in ran] == ["update", "install"]
    for command in ran:
        assert command[0] == "sudo"
        before_apt_get = command[command.index("apt-get") - 2 : command.index("apt-get")]
        assert before_apt_get == ["env", "DEBIAN_FRONTEND=noninteractive"], command
    assert ran[1][-1] == "cmake"
