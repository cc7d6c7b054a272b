"""The machine and builds a set of bench figures was measured on.

A ratio is only comparable with another measured on the same kind of CPU,
memory and BLAS: the check competes with numpy's own reductions, a train
step is mostly Caffe's BLAS. So every results file starts with these facts.
Only names and versions are recorded, never paths of this machine.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _caches() -> str:
    sizes = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        level, kind, size = (_read(str(index / name)).strip() for name in ("level", "type", "size"))
        if kind != "Instruction" and level and size:
            sizes[f"L{level}"] = size
    return ", ".join(f"{level} {size}" for level, size in sorted(sizes.items()))


def _memory() -> str:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    return "unknown"


def _os() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return f"{line.split('=', 1)[1].strip(chr(34))}, Linux {platform.release()}"
    return platform.platform()


def _numpy() -> str:
    import numpy as np

    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{np.__version__} ({blas.get('name', '?')} {blas.get('version', '')})".strip()
    except Exception:  # older numpy: no dict mode
        return np.__version__


def _loaded_libraries(*words: str) -> list[str]:
    """Base names of the shared libraries mapped into this process that match ``words``."""
    names = set()
    for line in _read("/proc/self/maps").splitlines():
        path = line.split()[-1] if line.split() else ""
        name = os.path.basename(path)
        if name.startswith("lib") and ".so" in name and any(word in name.lower() for word in words):
            names.add(os.path.basename(os.path.realpath(path)))
    return sorted(names)


def _caffe() -> str:
    try:
        from caffe_nanlayers.caffe_net import import_caffe

        caffe = import_caffe()
    except Exception as exc:
        return f"not importable ({exc})"
    parts = [f"pycaffe {getattr(caffe, '__version__', '?')}", "CPU mode"]
    if "Python" in caffe.layer_type_list():
        parts.append("Python layer")
    # numpy (and scipy, if loaded) bundle their own OpenBLAS as libscipy_openblas*;
    # the other BLAS mapped in is Caffe's.
    libraries = [name for name in _loaded_libraries("blas", "glog", "protobuf") if "scipy" not in name]
    if libraries:
        parts.append("linked: " + ", ".join(libraries))
    return "; ".join(parts)


def describe() -> list[tuple[str, str]]:
    """(what, value) pairs, in the order a reader wants them."""
    threads = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or "default"
    return [
        ("CPU", f"{_cpu_model()}, {os.cpu_count()} logical cores ({_caches()})"),
        ("Memory", _memory()),
        ("OS", _os()),
        ("Python", platform.python_version() + f" ({sys.implementation.name})"),
        ("numpy", _numpy()),
        ("Caffe", _caffe()),
        ("BLAS threads", threads),
    ]
