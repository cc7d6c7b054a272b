#!/usr/bin/env python3
"""Build a CPU-only Caffe with the Python layer and install it into a venv.

No wheel of pycaffe exists for Python 3.11 and Debian 12 dropped its caffe
packages, so the project builds one from the ``brocolli-caffe`` sdist (a Caffe
1.0 tree with a CMake build) on whatever Debian/Ubuntu machine it lands on.
Most users train with the ``caffe`` binary, not pycaffe, so the command-line
tools are built too, linked against the very ``_caffe.so`` that ``import
caffe`` loads (one copy of Caffe, one layer registry per process), with
OpenCV (ImageData, WindowData) and BVLC Caffe 1.0's logging restored where
the fork demoted it, so the logs look like the ones users paste.

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
RECIPE_REVISION = "3"

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
    # OpenCV, for the ImageData and WindowData layers and convert_imageset.
    "libopencv-core-dev",
    "libopencv-imgproc-dev",
    "libopencv-imgcodecs-dev",
    "libopencv-highgui-dev",
    "libopencv-videoio-dev",
]

OPENCV_LIBRARIES = ["opencv_core", "opencv_imgproc", "opencv_imgcodecs", "opencv_highgui", "opencv_videoio"]

# Caffe's command-line tools, built from the sdist's tools/ (its CMakeLists
# leaves them out) and installed into the venv's bin/.
TOOLS = [
    "caffe",
    "convert_imageset",
    "compute_image_mean",
    "upgrade_net_proto_text",
    "upgrade_solver_proto_text",
]

# BVLC Caffe 1.0 logs the net's set-up ("Creating Layer", "Top shape") and
# debug_info's per-layer [Forward] / [Backward] / [Update] lines with LOG_IF;
# this fork demoted them to DLOG_IF, which a Release build drops. The doctor
# reads those lines in the logs users paste, so the build puts them back. The
# count is checked: an sdist that changed fails here, not silently.
NET_LOGGING_PATCH = ("DLOG_IF(INFO, Caffe::root_solver())", "LOG_IF(INFO, Caffe::root_solver())", 22)

# The fork's OpenCV code uses OpenCV 3's C names (CV_LOAD_IMAGE_COLOR,
# CV_FILLED, CV_CAP_PROP_FRAME_COUNT, ...), which OpenCV 4 keeps only in its
# legacy C headers: every C++ file of the build includes them first.
OPENCV_COMPAT_HEADER = """\
#if defined(USE_OPENCV) && defined(__cplusplus)
#include <opencv2/core/version.hpp>
#if CV_VERSION_MAJOR >= 4
#include <opencv2/core/core_c.h>
#include <opencv2/imgproc/imgproc_c.h>
#include <opencv2/imgcodecs/legacy/constants_c.h>
#include <opencv2/videoio/legacy/constants_c.h>
#endif
#endif
"""

# The caffe binary embeds Python for the Python layer. Left alone, the
# embedded interpreter looks for "python3" on PATH and takes the first one's
# prefix: not the venv (no numpy, no caffe_nanlayers), or with a minimal PATH
# the system Python, whose stdlib does not match. Linked into the binary,
# this starts the Python installed next to it (the venv's bin/python, so its
# site-packages) before main() runs; Caffe's own Py_Initialize() is then a
# no-op. A constructor rather than a main() of ours: tools/caffe.cpp's main()
# stays main(), whose falling off the end means return 0. Python's signal
# handlers stay off: Ctrl-C keeps Caffe's meaning.
PINNED_PYTHON = """\
#include <Python.h>
#include <limits.h>
#include <unistd.h>
#include <string>

__attribute__((constructor)) static void start_python_next_to_this_binary() {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) return;
  exe[n] = '\\0';
  std::string python(exe);
  python = python.substr(0, python.rfind('/') + 1) + "python";
  if (access(python.c_str(), X_OK) != 0) return;
  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  config.install_signal_handlers = 0;
  PyStatus status = PyConfig_SetBytesString(&config, &config.program_name, python.c_str());
  if (!PyStatus_Exception(status)) status = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(status)) Py_ExitStatusException(status);
}
"""

# Written into the installed package: says this venv's Caffe is this
# project's build, and of which recipe, so a later set-up can tell it from a
# Caffe the user brought and knows when it is stale.
BUILD_STAMP = ".nanlayers-build"

# What `import caffe` needs besides numpy and protobuf: net_spec imports six.
# caffe/io.py imports skimage and scipy at the top, for its image helpers
# alone (load_image, resize_image), which no tool here calls; the installer
# makes those imports lazy (see lazy_image_imports), so a set-up does not
# download and unpack them (about two thirds of its pip time) and every
# `import caffe` (each Caffe child, each Python layer) skips loading them.
CAFFE_PYTHON_DEPS = ["six"]
# The io.py imports made lazy; anything else in that file is a changed sdist.
EAGER_IMAGE_IMPORTS = "import skimage.io\nfrom scipy.ndimage import zoom\n"
LAZY_IMAGE_IMPORTS = """\
# Made lazy by caffe-nanlayers' installer: `import caffe` needs neither
# scikit-image nor scipy; caffe.io's image helpers import them when called.
class _ImportedOnUse:
    def __init__(self, name):
        self._name = name

    def __getattr__(self, attribute):
        import importlib

        return getattr(importlib.import_module(self._name), attribute)


skimage = _ImportedOnUse("skimage")


def zoom(*args, **kwargs):
    from scipy.ndimage import zoom as scipy_zoom

    return scipy_zoom(*args, **kwargs)
"""
# The scan's workers decode encoded Datums with Caffe's own OpenCV without
# loading Caffe: a small library around cv::imdecode, compiled against the
# system OpenCV that _caffe.so links and installed into the venv where
# caffe_nanlayers/scan/opencv_decode.py looks for it. Its source is in the
# package; it is compiled once per source and OpenCV, and cached.
DECODE_SOURCE = Path(__file__).resolve().parent.parent / "caffe_nanlayers" / "scan" / "opencv_decode.cpp"
DECODE_LIBRARY = "libnanlayers_opencv_decode.so"
DECODE_OPENCV_LIBRARIES = ["opencv_imgcodecs", "opencv_core"]

# Bumped when what install_into_venv does to the cached package changes, so
# that venvs installed the old way are installed again.
INSTALL_REVISION = "1"

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
        " 'purelib': sysconfig.get_paths()['purelib'], 'executable': sys.executable,"
        " 'base_prefix': sys.base_prefix, 'prefix': sys.prefix,"
        " 'libdir': sysconfig.get_config_var('LIBDIR'),"
        " 'ldlibrary': sysconfig.get_config_var('LDLIBRARY')}\n"
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


def restore_bvlc_logging(net_cpp: str) -> str:
    """net.cpp's text with BVLC's LOG_IF back where the fork wrote DLOG_IF."""
    old, new, expected = NET_LOGGING_PATCH
    found = net_cpp.count(old)
    if found != expected:
        raise StepFailed(
            f"src/caffe/net.cpp: expected {expected} '{old}' to turn back into '{new}', found {found}: "
            "the sdist changed, check the logging patch"
        )
    return net_cpp.replace(old, new)


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


def opencv_include_dirs() -> list[str]:
    flags = pkg_config("--cflags-only-I", "opencv4")
    dirs = [f[2:] for f in flags if f.startswith("-I")]
    return dirs or [d for d in glob.glob("/usr/include/opencv4") if Path(d, "opencv2").is_dir()]


# -DOPENCV_VERSION=3 makes the fork's video_data_layer.hpp include
# opencv2/videoio.hpp alone instead of opencv2/opencv.hpp, which pulls the
# header of every OpenCV module (calib3d, dnn, ...) that the packages above
# do not install.
DEFINES = [
    "-DWITH_PYTHON_LAYER",
    "-DUSE_LMDB",
    "-DUSE_LEVELDB",
    "-DUSE_HDF5",
    "-DUSE_OPENCV",
    "-DOPENCV_VERSION=3",
]


def compile_flags(probe: dict, compat_header: Path) -> list[str]:
    """Preprocessor and optimisation flags shared by _caffe.so and the tools: they must agree."""
    includes = [probe["include"], probe["numpy_include"], *hdf5_include_dirs(), *opencv_include_dirs()]
    return [*DEFINES, "-O2", "-include", str(compat_header), *(f"-I{d}" for d in includes)]


def build_flags(probe: dict, shim_dir: Path, no_conda: Path, compat_header: Path) -> tuple[list[str], str]:
    cxx_flags = " ".join(compile_flags(probe, compat_header))
    # The sdist's CMake does not link what USE_* turn on: link it here, kept even
    # though _caffe.so's own objects are what need it (hence --no-as-needed).
    extra_libs = ["lmdb", "leveldb", "snappy", *OPENCV_LIBRARIES]
    linker_flags = f"-L{shim_dir} -Wl,--no-as-needed " + " ".join(f"-l{lib}" for lib in extra_libs)
    cmake_args = [
        "-DCMAKE_BUILD_TYPE=Release",
        "-DCPU_ONLY=ON",
        "-DBUILD_python=ON",
        "-DBUILD_python_layer=ON",
        "-DUSE_OPENCV=ON",
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
    # The interpreter's own prefix is in: the tools link its libpython.
    material = "|".join(
        [
            CAFFE_SDIST,
            CAFFE_VERSION,
            CAFFE_SHA256,
            RECIPE_REVISION,
            probe["version"],
            probe["numpy_major"],
            probe.get("base_prefix", ""),
        ]
    )
    return (
        f"{CAFFE_VERSION}-py{probe['version']}-np{probe['numpy_major']}-"
        + hashlib.sha256(material.encode()).hexdigest()[:12]
    )


def build_caffe(progress: Progress, probe: dict, build_root: Path, sdist: Path) -> tuple[Path, Path]:
    """Configure and build pycaffe and the tools; return the package and the tools' directories."""
    src_parent = build_root / "src"
    if src_parent.exists():
        shutil.rmtree(src_parent)
    src_parent.mkdir(parents=True)
    with progress.timed("unpack sdist"):
        shutil.unpack_archive(str(sdist), str(src_parent))
    source = src_parent / f"{CAFFE_SDIST}-{CAFFE_VERSION}"
    net_cpp = source / "src" / "caffe" / "net.cpp"
    net_cpp.write_text(restore_bvlc_logging(net_cpp.read_text()))
    progress.say(f"net.cpp: BVLC's logging restored ({NET_LOGGING_PATCH[2]} lines)")
    compat_header = build_root / "opencv3_names.h"
    compat_header.write_text(OPENCV_COMPAT_HEADER)
    shim_dir = build_root / "libshims"
    progress.say("library names: " + ", ".join(link_shims(shim_dir, probe["version"])))
    no_conda = build_root / "no-conda"
    no_conda.mkdir(exist_ok=True)
    cmake_args, summary = build_flags(probe, shim_dir, no_conda, compat_header)
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
    tools = build_tools(progress, probe, source, build_dir, package / "_caffe.so", shim_dir, compat_header)
    return package, tools


def python_library(probe: dict) -> Path:
    """The interpreter's shared libpython, which the tools embed."""
    libdir, name = probe.get("libdir"), probe.get("ldlibrary") or ""
    if libdir and name.endswith(".so") and Path(libdir, name).exists():
        return Path(libdir, name)
    return find_library([f"python{probe['version']}"])


def venv_site_packages_from_bin(probe: dict) -> str:
    """Where the venv's caffe package is, seen from its bin/: the tools' run path."""
    return f"$ORIGIN/../lib/python{probe['version']}/site-packages/caffe"


def tool_commands(probe, source, build_dir, caffe_so, shim_dir, compat_header, out_dir) -> list[list[str]]:
    """One g++ command per tool, each linked against the very _caffe.so of the package.

    The generated ``build/include`` comes before the sdist's ``include``: the
    sdist ships a ``caffe.pb.h`` from an older protoc that does not compile.
    """
    libpython = python_library(probe)
    includes = [f"-I{build_dir / 'include'}", f"-I{source / 'include'}"]
    link = [
        f"-L{caffe_so.parent}",
        f"-l:{caffe_so.name}",
        f"-L{shim_dir}",
        "-lglog",
        "-lgflags",
        "-lprotobuf",
        "-lboost_system",
        "-lboost_python",
        f"-L{libpython.parent}",
        f"-l:{libpython.name}",
        f"-Wl,-rpath,{venv_site_packages_from_bin(probe)}:{libpython.parent}",
    ]
    # CAFFE_VERSION as Caffe's CMake defines it for its own files (caffe --version prints it).
    flags = ["g++", "-std=c++14", "-DCPU_ONLY", "-DCAFFE_VERSION=1.0.0", *compile_flags(probe, compat_header)]
    flags += includes
    commands = []
    for tool in TOOLS:
        sources = [str(source / "tools" / f"{tool}.cpp")]
        if tool == "caffe":
            pinned = build_dir / "pinned_python.cpp"
            pinned.write_text(PINNED_PYTHON)
            sources.append(str(pinned))
        commands.append([*flags, *sources, "-o", str(out_dir / tool), *link])
    return commands


def build_tools(progress, probe, source, build_dir, caffe_so, shim_dir, compat_header) -> Path:
    """Compile Caffe's command-line tools, as many at once as there are cores."""
    out_dir = build_dir / "tools-bin"
    out_dir.mkdir(exist_ok=True)
    commands = tool_commands(probe, source, build_dir, caffe_so, shim_dir, compat_header, out_dir)
    jobs = max(1, os.cpu_count() or 1)
    log_path = progress.log_dir / "compile-tools.log"
    t0 = time.monotonic()
    progress.say(f"compile {', '.join(TOOLS)} ...")
    with open(log_path, "w") as log:
        pending = list(commands)
        running: list[tuple[list[str], subprocess.Popen]] = []
        failed = None
        while (pending or running) and failed is None:
            while pending and len(running) < jobs:
                command = pending.pop(0)
                log.write("$ " + " ".join(command) + "\n")
                log.flush()
                running.append((command, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)))
            command, proc = running.pop(0)
            if proc.wait() != 0:
                failed = command
        for _, proc in running:
            proc.wait()
    if failed is not None:
        tail = log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        raise StepFailed(
            f"compiling {Path(failed[failed.index('-o') + 1]).name} failed\n"
            + "\n".join("    " + line for line in tail)
            + f"\n  full log: {log_path}"
        )
    progress.say(f"compile tools done in {time.monotonic() - t0:.1f} s")
    return out_dir


def stage_build(built: Path, tools: Path, cache_dir: Path, key: str) -> Path:
    """Copy the built package (symlinks resolved, tests left out) and the tools into the cache.

    Both land in one directory renamed into place, so a set-up that stops
    half-way leaves no cache entry that looks complete.
    """
    final = cache_dir / "build-result"
    tmp = Path(tempfile.mkdtemp(dir=cache_dir, prefix=".staging-"))
    shutil.copytree(
        built, tmp / "caffe", symlinks=False, ignore=shutil.ignore_patterns("test", "__pycache__")
    )
    (tmp / "caffe" / BUILD_STAMP).write_text(key + "\n")
    shutil.copytree(tools, tmp / "bin", symlinks=False)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    return final


def cached_build_complete(result: Path) -> bool:
    return (result / "caffe" / "_caffe.so").exists() and all(
        (result / "bin" / tool).exists() for tool in TOOLS
    )


def venv_bin_dir(probe: dict) -> Path:
    return Path(probe["executable"]).parent


def lazy_image_imports(io_py: str) -> str:
    """caffe/io.py with its scikit-image and scipy imports made lazy."""
    if io_py.count(EAGER_IMAGE_IMPORTS) != 1:
        raise StepFailed(
            "caffe/io.py does not start with the imports this installer makes lazy "
            f"({EAGER_IMAGE_IMPORTS.strip()!r}): the sdist changed, update lazy_image_imports"
        )
    return io_py.replace(EAGER_IMAGE_IMPORTS, LAZY_IMAGE_IMPORTS)


def install_stamp(key: str) -> str:
    """What a venv's caffe package records: the build it came from and how it was installed."""
    return f"{key}+install{INSTALL_REVISION}"


def installed_stamp(probe: dict) -> str | None:
    """The recipe key of this project's Caffe installed in the venv, None if absent or not ours."""
    stamp = Path(probe["purelib"]) / "caffe" / BUILD_STAMP
    return stamp.read_text().strip() if stamp.exists() else None


def tools_installed(probe: dict) -> bool:
    return all((venv_bin_dir(probe) / tool).exists() for tool in TOOLS)


def copy_atomically(source: Path, target: Path) -> None:
    """Replace target by a copy of source in one rename: a running binary keeps its old file."""
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    if source.is_dir():
        shutil.copytree(source, tmp, symlinks=False)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    else:
        shutil.copy2(source, tmp)
        os.replace(tmp, target)


def install_into_venv(progress: Progress, result: Path, probe: dict, python: str) -> None:
    bin_dir = venv_bin_dir(probe)
    site_caffe = Path(probe["purelib"]) / "caffe"
    # The tools find _caffe.so by a run path relative to their own directory.
    expected = venv_site_packages_from_bin(probe).replace("$ORIGIN", str(bin_dir))
    if Path(os.path.normpath(expected)) != Path(os.path.normpath(site_caffe)):
        raise StepFailed(
            f"this venv's layout is not the one the tools expect: {site_caffe} is not {expected}"
        )
    with progress.timed(f"install caffe into the virtual environment and {', '.join(TOOLS)} into {bin_dir}"):
        staged = Path(tempfile.mkdtemp(dir=site_caffe.parent, prefix=".caffe-install-")) / "caffe"
        try:
            shutil.copytree(result / "caffe", staged, symlinks=False)
            io_py = staged / "io.py"
            io_py.write_text(lazy_image_imports(io_py.read_text()))
            key = (staged / BUILD_STAMP).read_text().strip()
            (staged / BUILD_STAMP).write_text(install_stamp(key) + "\n")
            copy_atomically(staged, site_caffe)
        finally:
            shutil.rmtree(staged.parent, ignore_errors=True)
        for tool in TOOLS:
            copy_atomically(result / "bin" / tool, bin_dir / tool)
    deps_present = run_capture([python, "-c", "import six"]).returncode == 0
    if not deps_present:
        progress.run(
            "install caffe's Python dependencies",
            [[python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *CAFFE_PYTHON_DEPS]],
        )


def check_tools(probe: dict) -> None:
    caffe_bin = venv_bin_dir(probe) / "caffe"
    proc = run_capture([str(caffe_bin), "--version"])
    if proc.returncode != 0 or "caffe" not in (proc.stdout + proc.stderr):
        raise StepFailed(
            f"{caffe_bin} --version failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()}"
        )


def decode_library_target(probe: dict) -> Path:
    """Where caffe_nanlayers.scan.opencv_decode looks for the library: under the venv's prefix."""
    return Path(probe["prefix"]) / "lib" / "caffe-nanlayers" / DECODE_LIBRARY


def decode_library_key() -> str:
    """The decoder's cache key: its source and the OpenCV it links (the versioned file names)."""
    material = [DECODE_SOURCE.read_text()]
    material += [find_library([name]).name for name in DECODE_OPENCV_LIBRARIES]
    material += opencv_include_dirs()
    return hashlib.sha256("|".join(material).encode()).hexdigest()[:12]


def decode_compile_command(output: Path) -> list[str]:
    includes = [f"-I{d}" for d in opencv_include_dirs()]
    libraries = [f"-l{name}" for name in DECODE_OPENCV_LIBRARIES]
    return [
        "g++",
        "-std=c++14",
        "-O2",
        "-shared",
        "-fPIC",
        *includes,
        str(DECODE_SOURCE),
        "-o",
        str(output),
        *libraries,
    ]


def install_opencv_decoder(progress: Progress, probe: dict, cache_root: Path) -> None:
    """Compile (once per source and OpenCV, cached) and install the scan's OpenCV decoder into the venv."""
    target = decode_library_target(probe)
    key = decode_library_key()
    stamp = target.with_name(target.name + ".key")
    if target.exists() and stamp.exists() and stamp.read_text().strip() == key:
        return
    cached = cache_root / f"opencv-decode-{key}" / DECODE_LIBRARY
    with CacheLock(cache_root / f"opencv-decode-{key}.lock", progress):
        if not cached.exists():
            cached.parent.mkdir(parents=True, exist_ok=True)
            partial = cached.with_name(f".{DECODE_LIBRARY}.tmp{os.getpid()}")
            progress.run("compile opencv_decode.cpp", [decode_compile_command(partial)])
            os.replace(partial, cached)
    target.parent.mkdir(parents=True, exist_ok=True)
    copy_atomically(cached, target)
    tmp_stamp = stamp.with_name(f".{stamp.name}.tmp{os.getpid()}")
    tmp_stamp.write_text(key + "\n")
    os.replace(tmp_stamp, stamp)
    progress.say(f"the scan's OpenCV decoder installed: {target}")


class CacheLock:
    """An exclusive lock on one cache key: two set-ups of the same key take turns.

    Other clones on this machine share the cache; without the lock, two first
    set-ups at once would build into the same directory and corrupt it.
    """

    def __init__(self, path: Path, progress: Progress):
        self.path = path
        self.progress = progress

    def __enter__(self):
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.progress.say(f"waiting for another set-up that holds {self.path} ...")
            fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.handle.close()  # closing releases the lock


def build_or_reuse(progress: Progress, probe: dict, cache_root: Path, python: str, force: bool) -> Path:
    """The cached build of this recipe, built first if missing (under the cache key's lock)."""
    key = cache_key(probe)
    cache_dir = cache_root / key
    result = cache_dir / "build-result"
    with CacheLock(cache_root / f"{key}.lock", progress):
        if cached_build_complete(result) and not force:
            progress.say(f"reusing cached build {result}")
            return result
        sdist = fetch_sdist(progress, cache_root / "downloads", python)
        built, tools = build_caffe(progress, probe, cache_dir / "build", sdist)
        result = stage_build(built, tools, cache_dir, key)
        shutil.rmtree(cache_dir / "build", ignore_errors=True)
        progress.say(f"build cached in {result}")
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter of the target venv")
    parser.add_argument(
        "--cache-dir",
        default=os.environ.get("CAFFE_NANLAYERS_CACHE", str(Path.home() / ".cache" / "caffe-nanlayers")),
    )
    parser.add_argument(
        "--print-python-deps", action="store_true", help="print what `import caffe` needs from PyPI, and exit"
    )
    args = parser.parse_args(argv)
    if args.print_python_deps:
        print(" ".join(CAFFE_PYTHON_DEPS))
        return 0
    cache_root = Path(args.cache_dir)
    progress = Progress(cache_root / "logs")
    t0 = time.monotonic()
    force = os.environ.get("CAFFE_NANLAYERS_FORCE_BUILD") == "1"
    try:
        probe = venv_probe(args.python)
        if probe["numpy_include"] is None:
            raise StepFailed(
                f"numpy is not installed in {args.python}: install the project first (pip install -e .)"
            )
        key = cache_key(probe)
        stamp = installed_stamp(probe)
        if not force and stamp == install_stamp(key) and tools_installed(probe):
            install_opencv_decoder(progress, probe, cache_root)
            progress.say(f"this recipe's Caffe and tools are installed already ({key})")
            return 0
        if not force and stamp is None:
            ok, where = check_caffe(args.python)
            # A caffe package copied into the venv's site-packages without a stamp
            # is an earlier recipe's of this installer: replaced, not kept.
            if ok and Path(where).resolve() != (Path(probe["purelib"]) / "caffe").resolve():
                progress.say(f"using the Caffe already importable here, with the Python layer: {where}")
                progress.say(f"its caffe binary: {shutil.which('caffe') or 'none on PATH'}")
                progress.say("(set CAFFE_NANLAYERS_FORCE_BUILD=1 to build one anyway)")
                return 0
        install_debian_packages(progress, probe)
        progress = Progress(cache_root / key / "logs")
        result = build_or_reuse(progress, probe, cache_root, args.python, force)
        install_into_venv(progress, result, probe, args.python)
        with progress.timed("check: import caffe, Python layer forward and backward; caffe --version"):
            ok, detail = check_caffe(args.python)
            if not ok:
                tail = "\n".join("    " + line for line in detail.splitlines()[-LOG_TAIL_LINES:])
                raise StepFailed(f"the installed caffe does not work:\n{tail}")
            check_tools(probe)
        install_opencv_decoder(progress, probe, cache_root)
        progress.say(
            f"Caffe ready in {time.monotonic() - t0:.1f} s: {detail}, tools in {venv_bin_dir(probe)}"
        )
        return 0
    except StepFailed as exc:
        print(f"[install-caffe] FAILED: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
