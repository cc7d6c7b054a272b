"""Process control of the watch, on a small stand-in child: the mechanics only.

What Caffe itself does on each signal is tested with the real binary in
test_watch.py; here a Python child that traps SIGINT and SIGTERM (as a
program that would snapshot on them) shows that the stop for a NaN cannot
be trapped, that Ctrl-C is passed on for the child to handle, and that the
log is the child's output byte for byte.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from caffe_nanlayers.diagnose.watch_process import CaffeProcess, caffe_environment

CHILD = r"""
import os, signal, sys, time
def trapped(signum, frame):
    sys.stdout.write(f"trapped {signum}\n"); sys.stdout.flush()
    open(sys.argv[1], "w").write("snapshot")
    sys.exit(0)
signal.signal(signal.SIGINT, trapped)
signal.signal(signal.SIGTERM, trapped)
sys.stdout.buffer.write(b"caf\xc3\xa9 line \xff raw\r\n")
for i in range(1000000):
    sys.stderr.write(f"Iteration {i}, loss = 0.5\n"); sys.stderr.flush()
    time.sleep(0.01)
"""


def start(tmp_path):
    marker = tmp_path / "snapshot_written"
    return CaffeProcess([sys.executable, "-c", CHILD, str(marker)], tmp_path / "run.log"), marker


def test_the_stop_for_a_nan_cannot_be_trapped(tmp_path):
    process, marker = start(tmp_path)
    with process:
        lines = process.lines()
        for _ in range(3):
            next(lines)
        process.kill_now()
        process.drain()
        assert process.wait(timeout=10) == -9
    assert not marker.exists()


def test_the_log_is_the_output_byte_for_byte(tmp_path):
    process, _ = start(tmp_path)
    with process:
        seen = []
        for raw in process.lines():
            seen.append(raw)
            if len(seen) == 5:
                process.kill_now()
                break
        process.drain()
    logged = (tmp_path / "run.log").read_bytes()
    assert logged.startswith(b"caf\xc3\xa9 line \xff raw\r\n")
    assert logged.startswith(b"".join(seen))
    numbers = [int(line.split()[1].rstrip(b",")) for line in logged.splitlines()[1:]]
    assert numbers == list(range(len(numbers)))  # none lost, none reordered


def test_ctrl_c_is_passed_on_for_the_child_to_handle(tmp_path):
    process, marker = start(tmp_path)
    with process:
        next(process.lines())
        process.interrupt()
        process.finish_interrupt(grace=10)
        assert process.returncode == 0
    assert marker.read_text() == "snapshot"
    assert b"trapped 2" in (tmp_path / "run.log").read_bytes()


def test_a_child_that_ignores_ctrl_c_is_killed_after_the_grace(tmp_path):
    process = CaffeProcess(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print('ready', flush=True); "
            "time.sleep(60)",
        ],
        tmp_path / "run.log",
    )
    started = time.monotonic()
    with process:
        assert next(process.lines()) == b"ready\n"
        process.interrupt()
        process.finish_interrupt(grace=0.5)
        assert process.returncode == -9
    assert time.monotonic() - started < 10


def test_leaving_never_leaves_it_running(tmp_path):
    process, _ = start(tmp_path)
    with process:
        pid = process.pid
    assert process.returncode is not None
    status = Path(f"/proc/{pid}/status")
    assert not status.exists() or "zombie" in status.read_text().lower()


def test_glog_writes_every_line_where_the_watch_reads():
    env = caffe_environment({"GLOG_minloglevel": "2", "PATH": "/bin", "GLOG_v": "3"})
    assert env == {"PATH": "/bin", "GLOG_logtostderr": "1"}
