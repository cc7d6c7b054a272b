"""Run Caffe work in a child process, so that a failed Caffe CHECK becomes a one-line error.

When one of Caffe's ``CHECK``s fails (an HDF5 dataset named differently from
the top, a missing source, a record that does not parse) glog prints a
"Check failed" line and a stack dump, then aborts the whole process: no
Python ``except`` can catch it. The tools that run a user's data or net
through Caffe (``scan``, ``locate``) therefore run that work here: a child
process started with the "spawn" method (no fork of a process that may hold
Caffe's threads), its stderr captured in a file, and its progress sent back
to the parent over a pipe while it runs. If the child dies, the parent reads
glog's FATAL line from the captured stderr and raises a ``UserError`` that
says what Caffe said, in one line:

    Caffe stopped: Check failed: H5LTfind_dataset(file_id, dataset_name_) Failed to find
    HDF5 dataset label (hdf5.cpp:14)

A ``UserError`` raised in the child reaches the parent as itself; any other
exception in the child is a bug and is raised again in the parent as
``IsolatedError`` carrying the child's traceback.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import signal
import sys
import tempfile
import traceback
from typing import Any, Callable

from caffe_nanlayers.errors import UserError

# glog: "F0117 10:00:00.123456 12345 hdf5.cpp:14] Check failed: ..." (severity letter and date,
# time, thread, file:line); glog 0.6 and later write the year too: "F20240117".
_GLOG_FATAL = re.compile(r"^F\d{4,8} [\d:.]+\s+\d+ (?P<where>[^\]\s]+:\d+)\] (?P<message>.*)$")
_CHECK_FAILURE_DUMP = "*** Check failure stack trace: ***"


class IsolatedError(RuntimeError):
    """A bug (not a user mistake) in the function run in the child; carries its traceback."""


class _Reporter:
    """What the child's function gets to send messages to the parent while it runs."""

    def __init__(self, connection):
        self._connection = connection

    def __call__(self, message: Any) -> None:
        self._connection.send(("message", message))


def _child_main(connection, stderr_path: str, function: Callable, args: tuple, kwargs: dict) -> None:
    # glog writes to file descriptor 2 directly: redirect the descriptor, not sys.stderr.
    fd = os.open(stderr_path, os.O_WRONLY | os.O_APPEND)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        result = function(_Reporter(connection), *args, **kwargs)
    except UserError as exc:
        connection.send(("user_error", str(exc)))
    except BaseException as exc:
        connection.send(("bug", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    else:
        connection.send(("result", result))
    finally:
        connection.close()


def caffe_failure(stderr_text: str) -> str | None:
    """The one line that says why Caffe aborted, from glog's output, or None if glog said nothing fatal."""
    for line in stderr_text.splitlines():
        match = _GLOG_FATAL.match(line.strip())
        if match:
            message = " ".join(match.group("message").split())
            where = os.path.basename(match.group("where"))
            return f"Caffe stopped: {message} ({where})"
    return None


def _signal_name(exitcode: int) -> str:
    try:
        return signal.Signals(-exitcode).name
    except ValueError:
        return f"signal {-exitcode}"


def describe_death(exitcode: int, stderr_text: str) -> str:
    """One line for a child that ended without a result: glog's FATAL line if any, else the signal or code."""
    failure = caffe_failure(stderr_text)
    if failure:
        return failure
    how = f"killed by {_signal_name(exitcode)}" if exitcode < 0 else f"exited with code {exitcode}"
    lines = [
        line.strip() for line in stderr_text.splitlines() if line.strip() and _CHECK_FAILURE_DUMP not in line
    ]
    last = f": {lines[-1]}" if lines else ""
    return f"Caffe stopped: the process {how}{last}"


def run_isolated(
    function: Callable,
    *args: Any,
    on_message: Callable[[Any], None] | None = None,
    context: str = "",
    **kwargs: Any,
) -> Any:
    """Run ``function(report, *args, **kwargs)`` in a child process and return its result.

    ``function`` must be importable by name (a module-level function) and its
    arguments and result picklable. It may call ``report(message)`` any number
    of times; the parent passes each message to ``on_message`` as it arrives.
    If the child dies (a Caffe CHECK, a signal) this raises ``UserError`` with
    glog's reason in one line, prefixed by ``context`` when given ("while
    scanning x: ..."); the messages received until then have been delivered.
    """
    spawn = multiprocessing.get_context("spawn")
    receiver, sender = spawn.Pipe(duplex=False)
    fd, stderr_path = tempfile.mkstemp(prefix="nanlayers-child-", suffix=".stderr")
    os.close(fd)
    outcome = None
    try:
        child = spawn.Process(
            target=_child_main, args=(sender, stderr_path, function, args, kwargs), daemon=True
        )
        child.start()
        sender.close()  # the child holds the only writing end: recv() sees EOF when it dies
        outcome = _receive(receiver, on_message)
        child.join()
        if outcome is None:
            with open(stderr_path, encoding="utf-8", errors="replace") as f:
                stderr_text = f.read()
            message = describe_death(child.exitcode, stderr_text)
            raise UserError(f"{context}: {message}" if context else message)
        _replay_stderr(stderr_path)
    finally:
        receiver.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stderr_path)
    kind, payload = outcome
    if kind == "user_error":
        raise UserError(payload)
    if kind == "bug":
        raise IsolatedError(payload)
    return payload


def _receive(receiver, on_message):
    """Deliver messages until the child sends its outcome; None if it died first."""
    while True:
        try:
            kind, payload = receiver.recv()
        except (EOFError, OSError):
            return None
        if kind == "message":
            if on_message is not None:
                on_message(payload)
            continue
        return kind, payload


def _replay_stderr(stderr_path: str) -> None:
    """A child that succeeded may still have warned (glog ERROR lines): pass that on."""
    with open(stderr_path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    if text.strip():
        sys.stderr.write(text if text.endswith("\n") else text + "\n")
