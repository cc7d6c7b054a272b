"""The one writer: a regular file replaced whole, a link written through, a device or FIFO written directly.

Devices are made here with mknod when the tests run as root (as CI does),
so that a regression replaces a device of the test's own, never the
system's ``/dev/null``; without root, ``/dev/null`` itself is safe to use
(its directory is not writable, so nothing can replace it).
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import REPO

from caffe_nanlayers.atomic import atomic_path, write_atomic
from caffe_nanlayers.errors import UserError, writing


@pytest.fixture
def null_device(tmp_path) -> Path:
    if os.geteuid() == 0:
        path = tmp_path / "null"
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # the same device as /dev/null
        return path
    return Path("/dev/null")


def test_a_regular_file_is_replaced_whole_and_nothing_is_left_beside_it(tmp_path):
    target = tmp_path / "net.prototxt"
    target.write_text("old")
    write_atomic(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.prototxt"]


def test_a_symbolic_link_is_written_through_and_stays_a_link(tmp_path):
    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / "out.prototxt"
    real.write_text("old")
    link = tmp_path / "out.prototxt"
    link.symlink_to(real)
    chained = tmp_path / "chained.prototxt"
    chained.symlink_to(link)

    write_atomic(chained, "new")

    assert chained.is_symlink() and link.is_symlink()
    assert real.read_text() == "new"
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["out.prototxt"]


def test_a_dangling_link_creates_its_target(tmp_path):
    link = tmp_path / "out.prototxt"
    link.symlink_to(tmp_path / "made.prototxt")
    write_atomic(link, "new")
    assert link.is_symlink() and (tmp_path / "made.prototxt").read_text() == "new"


def test_a_character_device_is_written_directly_never_replaced(null_device):
    before = os.stat(null_device)
    write_atomic(null_device, "x" * 100_000)
    with atomic_path(null_device, suffix=".caffemodel") as path:  # as net.save and np.savez use it
        assert path == str(null_device)
        Path(path).write_bytes(b"weights")
    after = os.stat(null_device)
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev and after.st_ino == before.st_ino
    if null_device.parent != Path("/dev"):
        assert sorted(p.name for p in null_device.parent.iterdir()) == ["null"]


def test_a_fifo_is_written_directly_to_its_reader(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    write_atomic(fifo, "through the pipe")
    reader.join(timeout=10)
    assert received == [b"through the pipe"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_socket_is_refused_in_one_line_and_left_alone(tmp_path):
    path = tmp_path / "s"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    try:
        with pytest.raises(UserError) as err, writing(path, "the instrumented net"):
            write_atomic(path, "x")
    finally:
        server.close()
    assert str(err.value) == (
        f"{path}: cannot write the instrumented net: is a socket, not a regular file, a device or a FIFO"
    )
    assert stat.S_ISSOCK(os.stat(path).st_mode)


def test_instrument_writes_through_a_link_and_into_a_device(tmp_path, null_device):
    (tmp_path / "net.prototxt").write_text(
        'input: "x"\ninput_shape { dim: 1 dim: 2 }\nlayer { name: "r" type: "ReLU" bottom: "x" top: "y" }\n'
    )
    (tmp_path / "real.prototxt").write_text("")
    (tmp_path / "link.prototxt").symlink_to(tmp_path / "real.prototxt")

    for output in ("link.prototxt", str(null_device)):
        result = subprocess.run(
            [sys.executable, "-m", "caffe_nanlayers.cli", "instrument", "net.prototxt", "-o", output],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr

    assert (tmp_path / "link.prototxt").is_symlink()
    assert "r/check_finite" in (tmp_path / "real.prototxt").read_text()
    assert stat.S_ISCHR(os.stat(null_device).st_mode)


def test_doctor_plots_through_a_link_and_into_a_device(tmp_path, null_device):
    pytest.importorskip("matplotlib")
    lines = []
    for iteration, loss in ((0, "2.3"), (10, "1.9"), (20, "nan")):
        stamp = f"I1130 10:00:{iteration:02d}.000000  1234"
        lines += [
            f"{stamp} solver.cpp:228] Iteration {iteration}, loss = {loss}",
            f"{stamp} solver.cpp:244]     Train net output #0: loss = {loss} (* 1 = {loss} loss)",
            f"{stamp} sgd_solver.cpp:106] Iteration {iteration}, lr = 0.01",
        ]
    (tmp_path / "train.log").write_text("\n".join(lines) + "\n")
    (tmp_path / "link.png").symlink_to(tmp_path / "real.png")

    for plot in ("link.png", str(null_device)):
        result = subprocess.run(
            [sys.executable, "-m", "caffe_nanlayers.cli", "doctor", "train.log", "--plot", plot],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
        )
        assert result.returncode == 1, result.stderr  # a NaN found

    assert (tmp_path / "link.png").is_symlink()
    assert (tmp_path / "real.png").read_bytes().startswith(b"\x89PNG")
    assert stat.S_ISCHR(os.stat(null_device).st_mode)
