"""``caffe-nan doctor --follow LOG``: read a log as another process writes it, report the first sign.

For a run started elsewhere (a cluster job, a colleague's ``nohup``): the
file is followed as ``tail -F`` follows it (a truncated or replaced file is
read again from its start), each complete line goes through the watch's
reader, and at the first sign the doctor's verdict on the log so far is
printed. Nothing is stopped: the run is not ours.

Exit codes: 0 the run ended clean ("Optimization Done."), 1 a NaN found,
3 Caffe failed by itself (its FATAL line), 130 Ctrl-C.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

from caffe_nanlayers.diagnose.watch_log import WatchReader, verdict
from caffe_nanlayers.errors import UserError, reading

EXIT_CAFFE_FAILED = 3
# How often a quiet file is looked at again; the environment may shorten it (tests).
POLL_SECONDS = float(os.environ.get("CAFFE_NAN_FOLLOW_POLL", "0.5"))


def follow_lines(path: Path, poll: float = POLL_SECONDS) -> Iterator[str]:
    """Complete lines of ``path`` as they come, forever; from the start again when truncated or replaced."""
    handle = None
    identity = None
    pending = b""
    try:
        while True:
            if handle is None:
                try:
                    handle = open(path, "rb")  # noqa: SIM115 (closed below, or on reopening)
                except FileNotFoundError:
                    time.sleep(poll)  # replaced: the new file is not there yet
                    continue
                identity = os.fstat(handle.fileno()).st_ino
                pending = b""
            chunk = handle.read(1 << 16)
            if chunk:
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    yield line.decode("utf-8", errors="replace") + "\n"
                continue
            if _replaced(path, identity) or _truncated(handle):
                handle.close()
                handle = None
                continue
            time.sleep(poll)
    finally:
        if handle is not None:
            handle.close()


def _replaced(path: Path, identity) -> bool:
    try:
        return os.stat(path).st_ino != identity
    except FileNotFoundError:
        return False  # gone for now: keep reading the open file until another appears


def _truncated(handle) -> bool:
    return os.fstat(handle.fileno()).st_size < handle.tell()


def follow_log(path: str, fmt: str = "text") -> int:
    """Follow ``path`` until the first sign, the end of training, or Caffe's failure; print the outcome."""
    with reading(path, "a caffe train log"):
        Path(path).open("rb").close()
    if path == "-":
        raise UserError("--follow needs a file, not stdin")
    reader = WatchReader()
    for line in follow_lines(Path(path)):
        sign = reader.feed(line)
        if sign is not None or reader.done or reader.fatal:
            break
    if reader.fatal and reader.sign is None:
        print(f"{path}: caffe failed: {reader.fatal}")
        return EXIT_CAFFE_FAILED
    with open(path, encoding="utf-8", errors="replace") as handle:
        diagnosis = verdict(_first(handle, reader.lines), path)
    if reader.sign is not None:
        diagnosis.details["sign"] = reader.sign.as_dict()
    print(diagnosis.to_json() if fmt == "json" else diagnosis.to_text())
    return diagnosis.exit_code


def _first(lines, count: int) -> Iterator[str]:
    """The lines the follower had read: the verdict is on the log up to the sign, not what came after."""
    for number, line in enumerate(lines, 1):
        if number > count:
            return
        yield line
