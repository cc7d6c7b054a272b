#!/usr/bin/env python3
"""Build a CPU-only pycaffe with the Python layer and install it into a venv.

No wheel of pycaffe exists for Python 3.11 and Debian 12 dropped its caffe
packages, so the project builds one from the ``brocolli-caffe`` sdist (a Caffe
1.0 tree with a CMake build) on whatever Debian/Ubuntu machine it lands on.

The build is cached outside the work tree, keyed on everything that changes
the binary (Caffe version, flags, Python version, numpy major version), so a
fresh clone on the same machine only copies the cached package.  If the
interpreter already imports a Caffe that has the Python layer, that Caffe is
used as it is (``CAFFE_NANLAYERS_FORCE_BUILD=1`` builds anyway).

Runs with the standard library only: it is the first thing a fresh machine
executes.  Usage: ``python scripts/install_caffe.py [--python VENV_PYTHON]``.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CAFFE_SDIST = "brocolli-caffe"
CAFFE_VERSION = "9.0.2"
CAFFE_SHA256 = "c6410cc60bdd6db685d441b66be7df05410f8850ac88d6b75d48ef9b2315c08a"
# Bump when the way the build is driven changes, so old caches are not reused.
RECIPE_REVISION = "2"

DEBIAN_BUILD_PACKAGES = [
    "build-essential",
    "cmake",
    "pkg-config",
    "protobuf-compiler",
    "libprotobuf-dev",
    "libboost-system-dev",
    "libboost-thread-dev",
    "libboost-filesystem-dev",
    "libboost-regex-dev",
    "libboost-python-dev",
    "libgoogle-glog-dev",
    "libgflags-dev",
    "libhdf5-dev",
    "liblmdb-dev",
    "libleveldb-dev",
    "libsnappy-dev",
    "libopenblas-dev",
    "libgtest-dev",
]

# What `import caffe` needs besides numpy and protobuf (caffe/io.py imports
# skimage and scipy; net_spec imports six).
CAFFE_PYTHON_DEPS = ["six", "scikit-image", "scipy"]

LOG_TAIL_LINES = 25


class StepFailed(Exception):
    """A step of the install failed; the message says which and where its log is."""


class Progress:
    """Names each step and its duration, keeps each step's output in a log file."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()

    def say(self, message: str) -> None:
        print(f"[install-caffe] {message}", flush=True)

    def run(self, step: str, commands: list[list[str]], cwd: Path | None = None, env=None) -> None:
        """Run commands as one named step; on failure raise with the log's tail."""
        log_path = self.log_dir / (step.replace(" ", "-") + ".log")
        t0 = time.monotonic()
        self.say(f"{step} ...")
        with open(log_path, "w") as log:
            for command in commands:
                log.write("$ " + " ".join(command) + "\n")
                log.flush()
                proc = subprocess.run(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
                if proc.returncode != 0:
                    log.close()
                    tail = log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
                    raise StepFailed(
                        f"step '{step}' failed (exit {proc.returncode}) running: {' '.join(command)}\n"
                        + "\n".join("    " + line for line in tail)
                        + f"\n  full log: {log_path}"
                    )
        self.say(f"{step} done in {time.monotonic() - t0:.1f} s")

    def timed(self, step: str):
        progress = self

        class _Timed:
            def __enter__(self):
                self.t0 = time.monotonic()
                progress.say(f"{step} ...")

            def __exit__(self, exc_type, exc, tb):
                if exc_type is None:
                    progress.say(f"{step} done in {time.monotonic() - self.t0:.1f} s")

        return _Timed()


def run_capture(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, **kwargs)


def venv_probe(python: str) -> dict:
    """Ask the target interpreter for what the build needs to know about it."""
    code = (
        "import sys, sysconfig, json\n"
        "info = {'version': '%d.%d' % sys.version_info[:2],"
        " 'include': sysconfig.get_paths()['include'],"
        " 'purelib': sysconfig.get_paths()['purelib'], 'executable': sys.executable}\n"
        "try:\n"
        "    import numpy\n"
        "    info['numpy_include'] = numpy.get_include()\n"
        "    info['numpy_major'] = numpy.__version__.split('.')[0]\n"
        "except ImportError:\n"
        "    info['numpy_include'] = None\n"
        "print(json.dumps(info))\n"
    )
    import json

    proc = run_capture([python, "-c", code])
    if proc.returncode != 0:
        raise StepFailed(f"cannot run the target interpreter {python}: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


CHECK_CAFFE = r"""
import os, sys, tempfile, textwrap
os.environ.setdefault("GLOG_minloglevel", "2")
import caffe
assert "Python" in caffe.layer_type_list(), "this Caffe was built without the Python layer"
mod_dir = tempfile.mkdtemp()
with open(os.path.join(mod_dir, "nanlayers_probe_layer.py"), "w") as f:
    f.write(textwrap.dedent('''
        import caffe
        class Double(caffe.Layer):
            def setup(self, bottom, top): pass
            def reshape(self, bottom, top): top[0].reshape(*bottom[0].data.shape)
            def forward(self, bottom, top): top[0].data[...] = 2 * bottom[0].data
            def backward(self, top, propagate_down, bottom): bottom[0].diff[...] = 2 * top[0].diff
    '''))
sys.path.insert(0, mod_dir)
net_txt = '''
name: "probe" force_backward: true
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "double" type: "Python" bottom: "x" top: "y"
        python_param { module: "nanlayers_probe_layer" layer: "Double" } }
'''
with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
    f.write(net_txt)
net = caffe.Net(f.name, caffe.TEST)
net.blobs["x"].data[...] = 1.5
net.forward()
assert (net.blobs["y"].data == 3.0).all(), net.blobs["y"].data
net.blobs["y"].diff[...] = 1.0
net.backward()
assert (net.blobs["x"].diff == 2.0).all(), net.blobs["x"].diff
print(os.path.dirname(caffe.__file__))
"""


def check_caffe(python: str) -> tuple[bool, str]:
    """Import caffe in the target interpreter and run a Python layer forward and backward."""
    proc = run_capture([python, "-c", CHECK_CAFFE])
    if proc.returncode == 0:
        return True, proc.stdout.strip().splitlines()[-1]
    return False, (proc.stderr or proc.stdout).strip()


def dpkg_installed(package: str) -> bool:
    proc = run_capture(["dpkg-query", "-W", "-f=${Status}", package])
    return proc.returncode == 0 and "install ok installed" in proc.stdout


def privileged(command: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return command
    if shutil.which("sudo") is None:
        raise StepFailed(f"need root for {' '.join(command)}: run as root or install sudo")
    return ["sudo", "-n", *command] if not sys.stdin.isatty() else ["sudo", *command]


def install_debian_packages(progress: Progress, probe: dict) -> None:
    if shutil.which("dpkg-query") is None or shutil.which("apt-get") is None:
        progress.say("not a Debian/Ubuntu system: install Caffe's build dependencies yourself")
        return
    wanted = list(DEBIAN_BUILD_PACKAGES)
    if not Path(probe["include"], "Python.h").exists():
        wanted.append(f"libpython{probe['version']}-dev")
    missing = [p for p in wanted if not dpkg_installed(p)]
    if not missing:
        progress.say("Debian build packages: all present")
        return
    # sudo resets the environment, so the front end is set on the command line.
    apt_get = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]
    progress.run(
        f"apt-get install {len(missing)} packages",
        [
            privileged([*apt_get, "update", "-qq"]),
            privileged([*apt_get, "install", "-y", "-qq", "--no-install-recommends", *missing]),
        ],
    )


def fetch_sdist(progress: Progress, downloads: Path, python: str) -> Path:
    """Download the sdist by exact version with pip and verify its sha256."""
    target = downloads / f"{CAFFE_SDIST}-{CAFFE_VERSION}.tar.gz"
    if not target.exists():
        downloads.mkdir(parents=True, exist_ok=True)
        progress.run(
            f"download {CAFFE_SDIST}=={CAFFE_VERSION}",
            [
                [
                    python,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--no-binary",
                    ":all:",
                    "--disable-pip-version-check",
                    "-d",
                    str(downloads),
                    f"{CAFFE_SDIST}=={CAFFE_VERSION}",
                ]
            ],
        )
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    if digest != CAFFE_SHA256:
        target.unlink()
        raise StepFailed(f"sha256 mismatch for {target.name}: got {digest}, expected {CAFFE_SHA256}")
    progress.say(f"sdist verified: sha256 {digest[:16]}...")
    return target


def find_library(stem_candidates: list[str]) -> Path:
    """Find the first lib<stem>.so in the linker's search path."""
    dirs: list[str] = []
    proc = run_capture(["gcc", "-print-search-dirs"])
    for line in proc.stdout.splitlines():
        if line.startswith("libraries:"):
            dirs += [d for d in line.split("=", 1)[1].split(":") if d]
    dirs += [*glob.glob("/usr/lib/*-linux-gnu"), "/usr/lib", "/usr/local/lib", "/usr/lib64"]
    for stem in stem_candidates:
        for d in dirs:
            candidate = Path(d, f"lib{stem}.so")
            if candidate.exists():
                return candidate.resolve()
    raise StepFailed(f"none of the libraries {stem_candidates} was found (searched {len(dirs)} directories)")


def pkg_config(flag: str, package: str) -> list[str]:
    proc = run_capture(["pkg-config", flag, package])
    return proc.stdout.split() if proc.returncode == 0 else []


def link_shims(shim_dir: Path, version: str) -> list[str]:
    """Symlink this system's library names under the names Caffe's CMake links.

    Caffe links ``-lboost_python -lhdf5_hl -lhdf5``; Debian and Ubuntu call them
    ``boost_python311`` (after the interpreter) and ``hdf5_serial(_hl)``.
    """
    nodot = version.replace(".", "")
    major = version.split(".")[0]
    wanted = {
        "boost_python": [f"boost_python{nodot}", f"boost_python{major}", "boost_python"],
        "hdf5": ["hdf5_serial", "hdf5"],
        "hdf5_hl": ["hdf5_serial_hl", "hdf5_hl"],
    }
    shim_dir.mkdir(parents=True, exist_ok=True)
    found = []
    for name, stems in wanted.items():
        real = find_library(stems)
        link = shim_dir / f"lib{name}.so"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(real)
        found.append(f"{name} -> {real.name}")
    return found


def hdf5_include_dirs() -> list[str]:
    flags = pkg_config("--cflags-only-I", "hdf5-serial") or pkg_config("--cflags-only-I", "hdf5")
    dirs = [f[2:] for f in flags if f.startswith("-I")]
    dirs += [d for d in glob.glob("/usr/include/hdf5/serial") if d not in dirs]
    return dirs


def build_flags(probe: dict, shim_dir: Path, no_conda: Path) -> tuple[list[str], str]:
    includes = [probe["include"], probe["numpy_include"], *hdf5_include_dirs()]
    cxx_flags = " ".join(
        ["-DWITH_PYTHON_LAYER", "-DUSE_LMDB", "-DUSE_LEVELDB", "-DUSE_HDF5", "-O2"]
        + [f"-I{d}" for d in includes]
    )
    linker_flags = f"-L{shim_dir} -Wl,--no-as-needed -llmdb -lleveldb -lsnappy"
    cmake_args = [
        "-DCMAKE_BUILD_TYPE=Release",
        "-DCPU_ONLY=ON",
        "-DBUILD_python=ON",
        "-DBUILD_python_layer=ON",
        "-DUSE_OPENCV=OFF",
        f"-DPython3_EXECUTABLE={probe['executable']}",
        f"-DCMAKE_CXX_FLAGS={cxx_flags}",
        f"-DCMAKE_SHARED_LINKER_FLAGS={linker_flags}",
        # The sdist's CMakeLists puts its packager's conda (ANACONDA_HOME=/root/miniconda3)
        # first on the include, link and run paths: as a non-root user the compiler stops
        # on the unreadable /root ("Permission denied"), and a conda that is there would
        # lend its headers to the build and its libraries to `import caffe`. Point it at
        # an empty directory, and write no run path: every library is a system one.
        f"-DANACONDA_HOME={no_conda}",
        "-DCMAKE_SKIP_RPATH=ON",
    ]
    return cmake_args, cxx_flags + " | " + linker_flags


def cache_key(probe: dict) -> str:
    # Machine paths (venv, numpy include) are left out on purpose: the same
    # build serves every clone of the project on this machine.
    material = "|".join(
        [CAFFE_SDIST, CAFFE_VERSION, CAFFE_SHA256, RECIPE_REVISION, probe["version"], probe["numpy_major"]]
    )
    return (
        f"{CAFFE_VERSION}-py{probe['version']}-np{probe['numpy_major']}-"
        + hashlib.sha256(material.encode()).hexdigest()[:12]
    )


def build_caffe(progress: Progress, probe: dict, build_root: Path, sdist: Path) -> Path:
    """Configure and build pycaffe; return the finished ``caffe`` package directory."""
    src_parent = build_root / "src"
    if src_parent.exists():
        shutil.rmtree(src_parent)
    src_parent.mkdir(parents=True)
    with progress.timed("unpack sdist"):
        shutil.unpack_archive(str(sdist), str(src_parent))
    source = src_parent / f"{CAFFE_SDIST}-{CAFFE_VERSION}"
    shim_dir = build_root / "libshims"
    progress.say("library names: " + ", ".join(link_shims(shim_dir, probe["version"])))
    no_conda = build_root / "no-conda"
    no_conda.mkdir(exist_ok=True)
    cmake_args, summary = build_flags(probe, shim_dir, no_conda)
    progress.say(f"flags: {summary}")
    build_dir = source / "build"
    build_dir.mkdir()
    jobs = str(max(1, os.cpu_count() or 1))
    progress.run("cmake configure", [["cmake", "..", *cmake_args]], cwd=build_dir)
    progress.run(
        f"compile pycaffe (make -j{jobs}, a few minutes)", [["make", f"-j{jobs}", "pycaffe"]], cwd=build_dir
    )
    package = source / "python" / "caffe"
    if not (package / "_caffe.so").exists() or not (package / "proto" / "caffe_pb2.py").exists():
        raise StepFailed(f"the build finished but {package} has no _caffe.so or proto/caffe_pb2.py")
    return package


def stage_package(built: Path, cache_dir: Path) -> Path:
    """Copy the built package (symlinks resolved, tests left out) into the cache, atomically."""
    final = cache_dir / "caffe"
    tmp = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".caffe-"))
    staged = tmp / "caffe"
    shutil.copytree(built, staged, symlinks=False, ignore=shutil.ignore_patterns("test", "__pycache__"))
    if final.exists():
        shutil.rmtree(final)
    staged.rename(final)
    shutil.rmtree(tmp)
    return final


def install_into_venv(progress: Progress, package: Path, probe: dict, python: str) -> None:
    with progress.timed("install caffe into the virtual environment"):
        target = Path(probe["purelib"]) / "caffe"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(package, target, symlinks=False)
    progress.run(
        "install caffe's Python dependencies",
        [[python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *CAFFE_PYTHON_DEPS]],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter of the target venv")
    parser.add_argument(
        "--cache-dir",
        default=os.environ.get("CAFFE_NANLAYERS_CACHE", str(Path.home() / ".cache" / "caffe-nanlayers")),
    )
    args = parser.parse_args(argv)
    cache_root = Path(args.cache_dir)
    progress = Progress(cache_root / "logs")
    t0 = time.monotonic()
    force = os.environ.get("CAFFE_NANLAYERS_FORCE_BUILD") == "1"
    try:
        if not force:
            ok, where = check_caffe(args.python)
            if ok:
                progress.say(f"using the Caffe already importable here, with the Python layer: {where}")
                progress.say("(set CAFFE_NANLAYERS_FORCE_BUILD=1 to build one anyway)")
                return 0
        probe = venv_probe(args.python)
        if probe["numpy_include"] is None:
            raise StepFailed(
                f"numpy is not installed in {args.python}: install the project first (pip install -e .)"
            )
        install_debian_packages(progress, probe)
        cache_dir = cache_root / cache_key(probe)
        progress = Progress(cache_dir / "logs")
        cached = cache_dir / "caffe"
        if (cached / "_caffe.so").exists() and not force:
            progress.say(f"reusing cached build {cached}")
        else:
            sdist = fetch_sdist(progress, cache_root / "downloads", args.python)
            built = build_caffe(progress, probe, cache_dir / "build", sdist)
            cached = stage_package(built, cache_dir)
            shutil.rmtree(cache_dir / "build", ignore_errors=True)
            progress.say(f"build cached in {cached}")
        install_into_venv(progress, cached, probe, args.python)
        with progress.timed("check: import caffe, Python layer forward and backward"):
            ok, detail = check_caffe(args.python)
            if not ok:
                tail = "\n".join("    " + line for line in detail.splitlines()[-LOG_TAIL_LINES:])
                raise StepFailed(f"the installed caffe does not work:\n{tail}")
        progress.say(f"pycaffe ready in {time.monotonic() - t0:.1f} s: {detail}")
        return 0
    except StepFailed as exc:
        print(f"[install-caffe] FAILED: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
