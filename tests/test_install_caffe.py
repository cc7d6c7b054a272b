"""The Caffe installer: what it derives from this system, its patch, its cache, and its idempotent path."""

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

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


def test_cache_key_changes_with_the_recipe_and_the_interpreter(monkeypatch):
    # The tools link the interpreter's libpython: another 3.11 is another build.
    key = install_caffe.cache_key(probe())
    assert key != install_caffe.cache_key({**probe(), "base_prefix": "/opt/python3.11"})
    monkeypatch.setattr(install_caffe, "RECIPE_REVISION", install_caffe.RECIPE_REVISION + "-next")
    assert key != install_caffe.cache_key(probe())


def net_cpp(demoted: int) -> str:
    """A net.cpp-like text with ``demoted`` logging statements the fork turned into DLOG_IF."""
    statement = [
        "  DLOG_IF(INFO, Caffe::root_solver())",
        '      << "Creating Layer " << layer_param.name();',
        '  LOG(INFO) << "unchanged";',
    ]
    return "\n".join(statement * demoted)


def test_logging_patch_restores_bvlc_log_if_and_nothing_else():
    _, _, expected = install_caffe.NET_LOGGING_PATCH
    text = net_cpp(expected)
    patched = install_caffe.restore_bvlc_logging(text)
    assert "DLOG_IF" not in patched
    assert patched.count("  LOG_IF(INFO, Caffe::root_solver())") == expected
    assert patched.replace("  LOG_IF(", "  DLOG_IF(") == text


def test_logging_patch_fails_loudly_on_a_changed_sdist():
    _, _, expected = install_caffe.NET_LOGGING_PATCH
    for count in (0, expected - 1, expected + 1):
        text = net_cpp(count)
        with pytest.raises(install_caffe.StepFailed, match=f"expected {expected} .* found {count}"):
            install_caffe.restore_bvlc_logging(text)


def test_logging_patch_matches_the_real_sdist(tmp_path):
    # The downloaded sdist, where an earlier set-up left it.
    cache = os.environ.get("CAFFE_NANLAYERS_CACHE", str(Path.home() / ".cache" / "caffe-nanlayers"))
    sdist = Path(cache, "downloads", f"{install_caffe.CAFFE_SDIST}-{install_caffe.CAFFE_VERSION}.tar.gz")
    if not sdist.exists():
        pytest.skip(f"no downloaded sdist at {sdist}")
    import tarfile

    member = f"{install_caffe.CAFFE_SDIST}-{install_caffe.CAFFE_VERSION}/src/caffe/net.cpp"
    with tarfile.open(sdist) as archive:
        text = archive.extractfile(member).read().decode()
    patched = install_caffe.restore_bvlc_logging(text)
    assert "DLOG_IF" not in patched and "Top shape" in patched


IO_PY_HEAD = "import numpy as np\nimport skimage.io\nfrom scipy.ndimage import zoom\n\ndef load_image(f):\n"


def test_image_imports_are_made_lazy_and_nothing_else():
    patched = install_caffe.lazy_image_imports(IO_PY_HEAD)
    assert patched.startswith("import numpy as np\n") and patched.endswith("\ndef load_image(f):\n")
    assert "import skimage.io" not in patched and "skimage = _ImportedOnUse" in patched
    with pytest.raises(install_caffe.StepFailed, match="the sdist changed"):
        install_caffe.lazy_image_imports(IO_PY_HEAD.replace("import skimage.io\n", ""))


def test_import_caffe_loads_neither_scikit_image_nor_scipy(caffe):
    """The venv's caffe is the installed one: its io.py imports them only when its helpers run."""
    code = "import sys, caffe; print(sorted(m for m in ('skimage', 'scipy') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    stamp = Path(caffe.__file__).parent / install_caffe.BUILD_STAMP
    if not stamp.exists():
        pytest.skip("this venv's caffe was not installed by scripts/install_caffe.py")
    assert stamp.read_text().strip().endswith(f"+install{install_caffe.INSTALL_REVISION}")


LOCK_CHILD = textwrap.dedent("""
    import importlib.util, sys
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("install_caffe", sys.argv[1])
    install_caffe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(install_caffe)
    with install_caffe.CacheLock(Path(sys.argv[2]), install_caffe.Progress(Path(sys.argv[3]))):
        print("acquired", flush=True)
""")


def test_cache_lock_makes_a_second_set_up_wait(tmp_path):
    lock_path = tmp_path / "key.lock"
    script = [sys.executable, "-c", LOCK_CHILD, str(REPO / "scripts" / "install_caffe.py"), str(lock_path)]
    with install_caffe.CacheLock(lock_path, install_caffe.Progress(tmp_path / "logs")):
        child = subprocess.Popen([*script, str(tmp_path / "logs")], stdout=subprocess.PIPE, text=True)
        # The child says it waits before it blocks; it cannot have the lock while we hold it.
        assert "waiting for another set-up" in child.stdout.readline()
    out, _ = child.communicate(timeout=30)
    assert child.returncode == 0 and out.strip() == "acquired"


def test_a_free_lock_is_taken_at_once(tmp_path, capsys):
    with install_caffe.CacheLock(tmp_path / "key.lock", install_caffe.Progress(tmp_path / "logs")):
        pass
    assert "waiting" not in capsys.readouterr().out


def test_tools_link_the_venvs_own_caffe_by_a_relative_run_path(tmp_path):
    # The binary must load the very _caffe.so that `import caffe` loads: one layer registry.
    venv_probe = {
        "version": "3.11",
        "include": "/usr/include/python3.11",
        "numpy_include": "/np",
        "libdir": str(tmp_path),
        "ldlibrary": "libpython3.11.so",
    }
    (tmp_path / "libpython3.11.so").touch()
    (tmp_path / "build").mkdir()
    commands = install_caffe.tool_commands(
        venv_probe,
        tmp_path / "src",
        tmp_path / "build",
        tmp_path / "pkg" / "_caffe.so",
        tmp_path / "shims",
        tmp_path / "compat.h",
        tmp_path / "out",
    )
    assert [Path(c[c.index("-o") + 1]).name for c in commands] == install_caffe.TOOLS
    for command in commands:
        assert "-l:_caffe.so" in command
        rpath = next(arg for arg in command if arg.startswith("-Wl,-rpath,"))
        assert rpath.startswith("-Wl,-rpath,$ORIGIN/../lib/python3.11/site-packages/caffe:")
        # generated proto headers before the sdist's stale ones
        includes = [arg for arg in command if arg.startswith("-I") and str(tmp_path) in arg]
        assert includes.index(f"-I{tmp_path / 'build' / 'include'}") < includes.index(
            f"-I{tmp_path / 'src' / 'include'}"
        )
    caffe_command = commands[install_caffe.TOOLS.index("caffe")]
    assert str(tmp_path / "src" / "tools" / "caffe.cpp") in caffe_command
    assert str(tmp_path / "build" / "pinned_python.cpp") in caffe_command
    assert "Py_InitializeFromConfig" in (tmp_path / "build" / "pinned_python.cpp").read_text()


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


def test_second_run_does_nothing(caffe_bin):
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "install_caffe.py"), "--python", sys.executable],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "this recipe's Caffe and tools are installed already" in proc.stdout


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
    args, _ = install_caffe.build_flags(
        venv_probe, tmp_path / "shims", tmp_path / "no-conda", tmp_path / "c.h"
    )
    assert f"-DANACONDA_HOME={tmp_path / 'no-conda'}" in args
    assert "-DCMAKE_SKIP_RPATH=ON" in args


def test_build_turns_opencv_on_and_links_it(tmp_path):
    venv_probe = {"include": "/usr/include/python3.11", "numpy_include": "/np", "executable": "/v/bin/python"}
    args, _ = install_caffe.build_flags(
        venv_probe, tmp_path / "shims", tmp_path / "no-conda", tmp_path / "c.h"
    )
    cxx = next(a for a in args if a.startswith("-DCMAKE_CXX_FLAGS="))
    linker = next(a for a in args if a.startswith("-DCMAKE_SHARED_LINKER_FLAGS="))
    assert "-DUSE_OPENCV" in cxx.split() and f"-include {tmp_path / 'c.h'}" in cxx
    assert "-lopencv_imgcodecs" in linker.split()
    assert linker.index("--no-as-needed") < linker.index("-lopencv_core")


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
