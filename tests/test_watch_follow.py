"""``caffe-nan doctor --follow``: a log written by another process, read as it grows."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

from caffe_nanlayers.diagnose.watch_follow import follow_lines

P = "I1130 10:00:00.000000  4242 "


def test_doctor_follow_reports_the_first_sign_of_a_growing_log(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("")
    follower = subprocess.Popen(
        [sys.executable, "-m", "caffe_nanlayers.cli", "doctor", "--follow", str(log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "CAFFE_NAN_FOLLOW_POLL": "0.02"},
    )
    with log.open("a") as handle:
        for i in range(0, 50, 10):
            handle.write(f"{P}solver.cpp:231] Iteration {i}, loss = {0.5 * 10**i:g}\n")
            handle.flush()
            time.sleep(0.05)
        assert follower.poll() is None  # still following: no sign yet
        handle.write(f"{P}solver.cpp:231] Iteration 50, loss = -nan\n")
    out, err = follower.communicate(timeout=30)
    assert follower.returncode == 1, err
    assert "first NaN/Inf at iteration 50" in out.decode()
    assert "gradient_explosion" in out.decode()


def test_follow_lines_waits_for_complete_lines_and_rereads_a_truncated_file(tmp_path):
    log = tmp_path / "train.log"
    log.write_bytes(b"one\ntw")
    lines = follow_lines(log, poll=0.01)
    assert next(lines) == "one\n"
    threading.Timer(0.1, lambda: log.open("ab").write(b"o\n")).start()
    assert next(lines) == "two\n"  # the half-written line waited for its end
    log.write_bytes(b"new\n")  # truncated and rewritten, as a restarted job does
    assert next(lines) == "new\n"
    replacement = tmp_path / "next.log"
    replacement.write_bytes(b"rotated\n")
    os.replace(replacement, log)
    assert next(lines) == "rotated\n"
    lines.close()


def test_follow_ends_on_a_clean_finish(tmp_path):
    log = tmp_path / "train.log"
    log.write_text(f"{P}solver.cpp:231] Iteration 0, loss = 0.7\n{P}solver.cpp:325] Optimization Done.\n")
    done = subprocess.run(
        [sys.executable, "-m", "caffe_nanlayers.cli", "doctor", "--follow", "--json", str(log)],
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert b'"nan_found": false' in done.stdout
