"""The one way this package imports Caffe and builds nets and solvers from text.

pycaffe only builds nets from files, prints every INFO line of glog unless
told otherwise before import, and has no clean error when it is missing. The
layers, the tools and the tests all go through here so those three problems
are solved once.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from caffe_nanlayers.errors import UserError

_MISSING_CAFFE = (
    "pycaffe is not importable{detail}: run 'scripts/dev setup' in the caffe-nanlayers checkout, "
    "or put your own Caffe's python/ directory on PYTHONPATH"
)


def import_caffe(quiet: bool = True):
    """Import pycaffe in CPU mode; with ``quiet``, glog shows errors only.

    glog reads GLOG_minloglevel when Caffe's shared library loads, so the
    variable must be set before the first import (a user's own setting wins).
    """
    if quiet:
        os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        import caffe
    except ImportError as exc:
        raise UserError(_MISSING_CAFFE.format(detail=f" ({exc})")) from exc
    caffe.set_mode_cpu()
    return caffe


def phase_of(phase):
    """Accept caffe.TRAIN/TEST, 0/1 or 'TRAIN'/'TEST' (any case)."""
    caffe = import_caffe()
    if isinstance(phase, str):
        try:
            return {"TRAIN": caffe.TRAIN, "TEST": caffe.TEST}[phase.upper()]
        except KeyError:
            raise UserError(f"phase must be TRAIN or TEST, not {phase!r}") from None
    return phase


@contextlib.contextmanager
def prototxt_file(text: str, suffix: str = ".prototxt", directory: str | os.PathLike | None = None):
    """A temporary file holding ``text``, removed afterwards."""
    fd, path = tempfile.mkstemp(suffix=suffix, prefix="nanlayers-", dir=directory, text=True)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def net_from_text(text: str, phase="TEST", weights: str | os.PathLike | None = None):
    """Build a ``caffe.Net`` from prototxt text (and optional .caffemodel weights)."""
    caffe = import_caffe()
    with prototxt_file(text) as path:
        if weights is not None:
            net = caffe.Net(path, str(weights), phase_of(phase))
        else:
            net = caffe.Net(path, phase_of(phase))
    return net


def solver_from_text(solver_text: str, net_text: str | None = None, workdir: str | os.PathLike | None = None):
    """Build a solver from text; ``net_text`` becomes its ``net:`` file.

    The files live in ``workdir`` (a new temporary directory when None) and
    stay there: Caffe reads the net again for test nets and writes snapshots
    next to ``snapshot_prefix``.
    """
    caffe = import_caffe()
    workdir = Path(workdir or tempfile.mkdtemp(prefix="nanlayers-solver-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if net_text is not None:
        net_path = workdir / "net.prototxt"
        net_path.write_text(net_text)
        solver_text = f'net: "{net_path}"\n' + solver_text
    solver_path = workdir / "solver.prototxt"
    solver_path.write_text(solver_text)
    return caffe.get_solver(str(solver_path))
