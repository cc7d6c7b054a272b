"""Start ``caffe train``, hand its log over line by line, and stop it the right way.

Three ways a watched run ends, and each needs a different signal:

- a NaN: Caffe must stop at once *without* a snapshot. Its ``-sigint_effect``
  and ``-sighup_effect`` default to ``stop``, which snapshots the broken
  weights first, and the user may have set them otherwise. SIGKILL cannot be
  caught or turned into a snapshot, so that is what it gets; a snapshot
  Caffe had already begun is told apart from finished ones by the log.
- Ctrl-C: the user asks what plain ``caffe train`` gives on Ctrl-C, so
  Caffe gets SIGINT and does what its ``-sigint_effect`` says (by default,
  a snapshot, then exit); a second Ctrl-C, or a Caffe that takes too long,
  gets SIGKILL.
- the watch itself killed: Caffe runs in its own session (the terminal's
  Ctrl-C reaches only the watch, which decides) and is told by the kernel to
  die with its parent, so nothing is left training unwatched.

The log goes to a file byte for byte as Caffe wrote it (no line lost,
reordered or re-encoded) before anything else looks at it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

PR_SET_PDEATHSIG = 1
# What Caffe is given to finish its own Ctrl-C (a snapshot of a large net takes seconds).
INTERRUPT_GRACE_SECONDS = 60.0


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: Ctrl-C and the normal paths still stop Caffe


def caffe_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for Caffe: glog writes every INFO line to stderr (where the watch reads it).

    Without ``GLOG_logtostderr`` glog also writes its own files under /tmp; a
    ``GLOG_minloglevel`` above 0 hides the very lines the watch reads.
    """
    env = dict(os.environ if base is None else base)
    env["GLOG_logtostderr"] = "1"
    env.pop("GLOG_minloglevel", None)
    env.pop("GLOG_v", None)
    return env


class CaffeProcess:
    """One ``caffe train`` child: its merged output as lines, and the ways to end it."""

    def __init__(self, argv: list[str], log_path: Path, env: dict[str, str] | None = None):
        self.argv = list(argv)
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed by close())
        try:
            self._child = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=caffe_environment(env),
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except BaseException:
            self._log.close()
            raise
        self.started = time.monotonic()
        self.stop_reason: str | None = None  # "nan", "interrupt"

    @property
    def pid(self) -> int:
        return self._child.pid

    def lines(self) -> Iterator[bytes]:
        """Each line of Caffe's output as it comes, already appended to the log."""
        stream = self._child.stdout
        log = self._log
        for raw in iter(stream.readline, b""):
            log.write(raw)
            log.flush()  # a `doctor --follow` elsewhere, or the user's tail -f, sees it now
            yield raw

    def drain(self) -> int:
        """Copy what is left of the output to the log (after a stop); the number of lines."""
        return sum(1 for _ in self.lines())

    def kill_now(self) -> None:
        """SIGKILL: Caffe cannot catch it, so it cannot snapshot the broken weights on its way out."""
        self.stop_reason = self.stop_reason or "nan"
        self._signal(signal.SIGKILL)

    def interrupt(self) -> None:
        """Ctrl-C as plain caffe train gets it: Caffe does what its -sigint_effect says."""
        self.stop_reason = "interrupt"
        self._signal(signal.SIGINT)

    def _signal(self, signum: int) -> None:
        if self._child.poll() is None:
            try:
                os.killpg(self._child.pid, signum)  # its own session: the group is Caffe and what it started
            except ProcessLookupError:
                pass

    def wait(self, timeout: float | None = None) -> int:
        return self._child.wait(timeout=timeout)

    def finish_interrupt(self, grace: float = INTERRUPT_GRACE_SECONDS) -> None:
        """After ``interrupt``: let Caffe finish (its output still logged), then SIGKILL if it lingers."""
        import threading

        deadline = threading.Timer(grace, self._signal, (signal.SIGKILL,))
        deadline.daemon = True
        deadline.start()
        try:
            self.drain()  # until Caffe exits and its output ends
        except KeyboardInterrupt:  # a second Ctrl-C: no more waiting
            self._signal(signal.SIGKILL)
            self.drain()
        finally:
            deadline.cancel()
            self._child.wait()

    @property
    def returncode(self) -> int | None:
        return self._child.poll()

    def close(self) -> None:
        """Never leave Caffe running: kill it if it still is, and close the log."""
        if self._child.poll() is None:
            self._signal(signal.SIGKILL)
            self._child.wait()
        if self._child.stdout is not None:
            self._child.stdout.close()
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
