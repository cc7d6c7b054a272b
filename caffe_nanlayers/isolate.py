"""Run Caffe work in a child process, so that a failed Caffe CHECK becomes a one-line error.

When one of Caffe's ``CHECK``s fails (an HDF5 dataset named differently from
the top, a missing source, a record that does not parse) glog prints a
"Check failed" line and a stack dump, then aborts the whole process: no
Python ``except`` can catch it. The tools that run a user's data or net
through Caffe (``scan``, ``locate``) therefore run that work here, in a
fresh Python interpreter (no fork of a process that may hold Caffe's
threads, and, unlike multiprocessing's "spawn", no re-import of the
caller's main script, which breaks scripts without a ``__main__`` guard),
with its output captured in a file and its progress sent back over a pipe
while it runs. If the child dies, the parent reads glog's FATAL line from
the captured output and raises a ``UserError`` that says what Caffe said,
in one line:

    Caffe stopped: Check failed: H5LTfind_dataset(file_id, dataset_name_) Failed to find
    HDF5 dataset label (hdf5.cpp:14)

A ``UserError`` raised in the child reaches the parent as itself; any other
exception in the child is a bug and is raised again in the parent as
``IsolatedError`` carrying the child's traceback. The user's own Python
layers are code we did not write: ``UserPythonLayers`` turns what they raise
(an import that fails, an error in their setup or forward) into a
``UserError`` naming the layer, so that only our own bugs show a traceback.
"""

from __future__ import annotations

import difflib
import importlib
import os
import pickle
import re
import signal
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterable
from multiprocessing.connection import Connection
from typing import Any, Callable

from caffe_nanlayers.errors import UserError, os_error_text

# glog: "F0117 10:00:00.123456 12345 hdf5.cpp:14] Check failed: ..." (severity letter and date,
# time, thread, file:line); glog 0.6 and later write the year too: "F20240117".
_GLOG_FATAL = re.compile(r"^F\d{4,8} [\d:.]+\s+\d+ (?P<where>[^\]\s]+:\d+)\] (?P<message>.*)$")
_CHECK_FAILURE_DUMP = "*** Check failure stack trace: ***"


class IsolatedError(RuntimeError):
    """A bug (not a user mistake) in the function run in the child; carries its traceback."""


class CaffeStopped(UserError):
    """The child died before answering (a Caffe CHECK, a signal): one line that says why.

    ``exitcode`` is the child's (negative: the signal that killed it), None when not known.
    """

    def __init__(self, message: str = "", exitcode: int | None = None):
        super().__init__(message)
        self.exitcode = exitcode


class _Reporter:
    """What the child's function gets to send messages to the parent while it runs."""

    def __init__(self, connection):
        self._connection = connection

    def __call__(self, message: Any) -> None:
        self._connection.send(("message", message))


# The child starts from nothing: it takes the parent's sys.path first, so that the
# functions (pickled by reference) are importable, then runs _child_main.
_BOOTSTRAP = (
    "import pickle, sys; sys.path[:] = pickle.load(sys.stdin.buffer); "
    "from caffe_nanlayers.isolate import _child_main; _child_main()"
)


def _child_main() -> None:
    # Ctrl-C reaches the whole process group: the parent stops and kills this child, which must not
    # answer first with a KeyboardInterrupt of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for warm_up in pickle.load(sys.stdin.buffer):
        try:
            warm_up()
        except Exception:
            pass  # the call proper meets the same problem and reports it
    try:
        fd, function, args, kwargs = pickle.load(sys.stdin.buffer)
    except EOFError:
        return  # the parent closed the worker without a call
    connection = Connection(fd, readable=False)
    try:
        result = function(_Reporter(connection), *args, **kwargs)
    except UserError as exc:
        connection.send(("user_error", str(exc)))
    except OSError as exc:
        # A file the user gave that could not be read (a directory they may not enter): the same one
        # line as run_command gives it in the parent; an OSError about no file is a bug, as below.
        kind = "user_error" if exc.filename is not None else "bug"
        text = (
            os_error_text(exc)
            if exc.filename is not None
            else f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        )
        connection.send((kind, text))
    except BaseException as exc:
        connection.send(("bug", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    else:
        connection.send(("result", result))
    finally:
        connection.close()


class UserPythonLayers:
    """The user's Python layers of a net: what their code raises is the user's problem, in one line.

    Caffe imports a Python layer's module while it builds the net, and when
    that import fails it prints the Python error and raises only "SystemError:
    ... returned NULL without setting an exception", which names nothing. So
    the modules are imported here first, and a failure names the layer and
    the module. Later, an exception raised from inside one of their classes
    (setup, reshape, forward, backward) is a mistake in the user's layer, not
    a bug of ours: ``blame`` says which layer raised what. The package's own
    layers (``caffe_nanlayers.*``) are checked for their module and class
    like the others (a typo in either is the user's), but left out of the
    blame: what they raise is our bug, or already a ``UserError``.

    Used as a context manager, it turns those exceptions into ``UserError``.
    An exception raised while Caffe creates a layer (its ``__init__``, or a
    call that does not fit its signature) never reaches Python as itself:
    Caffe prints it with ``PyErr_Print``, which clears it, and pycaffe then
    raises a ``SystemError`` that names nothing. ``PyErr_Print`` calls
    ``sys.excepthook``, so inside the context a hook keeps what Caffe printed,
    and the ``SystemError`` that follows is blamed on the layer that raised it.
    """

    def __init__(self, layers: Iterable):
        self._layers: dict[type, list] = {}
        self._printed: list[BaseException] = []
        for layer in layers:
            if layer.type != "Python":
                continue
            module_name, class_name = layer.python_param.module, layer.python_param.layer
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:
                raise UserError(
                    f"layer {layer.name!r}: cannot import its Python module {module_name!r}: {_one_line(exc)}"
                ) from None
            cls = getattr(module, class_name, None)
            if not isinstance(cls, type):
                classes = [name for name, value in vars(module).items() if isinstance(value, type)]
                close = difflib.get_close_matches(class_name, classes, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise UserError(
                    f"layer {layer.name!r}: Python module {module_name!r} has no class {class_name!r}{hint}"
                )
            if module_name.split(".")[0] != "caffe_nanlayers":  # ours: what they raise is not the user's
                self._layers.setdefault(cls, []).append(layer)

    def blame(self, exc: BaseException) -> str | None:
        """ "layer 'x' (module.Class): forward() raised E: message" if one of the layers raised ``exc``."""
        tb = exc.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            layers = self._layers.get(type(frame.f_locals.get("self")))
            if layers:
                cls = type(frame.f_locals["self"])
                mine = [
                    layer
                    for layer in layers
                    if layer.python_param.param_str == getattr(frame.f_locals["self"], "param_str", None)
                ] or layers
                return f"{_names(mine, cls)}: {frame.f_code.co_name}() raised {_one_line(exc)}"
            tb = tb.tb_next
        return None

    def _blame_creation(self, printed: list[BaseException]) -> str | None:
        """Which layer Caffe failed to create, from the exceptions it printed (None if not one of ours)."""
        for exc in printed:
            blamed = self.blame(exc)
            if blamed:
                return blamed
        for exc in printed:
            if exc.__traceback__ is None and isinstance(exc, TypeError):
                # Calling the class failed before any of its code ran: "Cls.__init__() takes 1 positional
                # argument but 2 were given" (Caffe passes the layer's parameters).
                for cls, layers in self._layers.items():
                    if str(exc).startswith(f"{cls.__qualname__}."):
                        return f"{_names(layers, cls)}: Caffe could not create it: {_one_line(exc)}"
        return None

    def __enter__(self):
        self._printed = []
        self._saved_hook = sys.excepthook
        sys.excepthook = self._keep_what_caffe_printed
        return self

    def _keep_what_caffe_printed(self, kind, exc, tb) -> None:
        self._printed.append(exc)

    def __exit__(self, kind, exc, tb):
        sys.excepthook = self._saved_hook
        printed, self._printed = self._printed, []
        blamed = None
        if isinstance(exc, Exception) and not isinstance(exc, UserError):
            blamed = self.blame(exc)
            if blamed is None and isinstance(exc, SystemError):
                blamed = self._blame_creation(printed)
        if blamed is None:
            for kept in printed:  # not the user's layers: printed as Caffe meant to
                self._saved_hook(type(kept), kept, kept.__traceback__)
            return False
        raise UserError(blamed) from None


def _names(layers: list, cls: type) -> str:
    names = " or ".join(repr(layer.name) for layer in layers)
    return f"layer {names} ({cls.__module__}.{cls.__name__})"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def caffe_failure(stderr_text: str) -> str | None:
    """The one line that says why Caffe aborted, from glog's output, or None if glog said nothing fatal."""
    for line in stderr_text.splitlines():
        match = _GLOG_FATAL.match(line.strip())
        if match:
            message = " ".join(match.group("message").split())
            where = os.path.basename(match.group("where"))
            return f"Caffe stopped: {message} ({where})"
    return None


def signal_name(exitcode: int) -> str:
    try:
        return signal.Signals(-exitcode).name
    except ValueError:
        return f"signal {-exitcode}"


def describe_death(exitcode: int, stderr_text: str) -> str:
    """One line for a child that ended without a result: glog's FATAL line if any, else the signal or code."""
    failure = caffe_failure(stderr_text)
    if failure:
        return failure
    how = f"killed by {signal_name(exitcode)}" if exitcode < 0 else f"exited with code {exitcode}"
    lines = [
        line.strip() for line in stderr_text.splitlines() if line.strip() and _CHECK_FAILURE_DUMP not in line
    ]
    last = f": {lines[-1]}" if lines else ""
    return f"Caffe stopped: the process {how}{last}"


class IsolatedWorker:
    """A child process started now, warmed up, and given one call later.

    Importing pycaffe takes about a second; a tool that starts its worker
    first (``warm_up=[import_caffe]``) and then reads and checks the user's
    files pays that second once, in parallel, instead of twice in a row.
    Use it as a context manager: leaving it without a call ends the child.
    """

    def __init__(self, warm_up: tuple[Callable[[], object], ...] | list = ()):
        read_fd, self._write_fd = os.pipe()
        self._receiver = Connection(read_fd, writable=False)
        self._output = tempfile.TemporaryFile(prefix="nanlayers-child-")  # noqa: SIM115 (closed by run, __exit__)
        self._child = subprocess.Popen(
            [sys.executable, "-c", _BOOTSTRAP],
            stdin=subprocess.PIPE,
            stdout=self._output,
            stderr=self._output,
            pass_fds=(self._write_fd,),
        )
        os.close(self._write_fd)  # the child holds the only writing end: recv() sees EOF when it dies
        pickle.dump(list(sys.path), self._child.stdin)
        pickle.dump(list(warm_up), self._child.stdin)
        self._child.stdin.flush()

    def run(self, function: Callable, *args: Any, on_message=None, context: str = "", **kwargs: Any) -> Any:
        """Run ``function(report, *args, **kwargs)`` in the child (see ``run_isolated``); once per worker."""
        try:
            pickle.dump((self._write_fd, function, args, kwargs), self._child.stdin)
            self._child.stdin.close()
        except BrokenPipeError:
            pass  # the child died while warming up: its output says why
        try:
            outcome = _receive(self._receiver, on_message)
            exitcode = self._child.wait()
        except BaseException:
            self._kill()
            raise
        finally:
            self.close()
        self._output.seek(0)
        text = self._output.read().decode("utf-8", errors="replace")
        self._output.close()
        if outcome is None:
            message = describe_death(exitcode, text)
            raise CaffeStopped(f"{context}: {message}" if context else message, exitcode)
        if text.strip():  # a child that succeeded may still have warned (glog ERROR lines): pass that on
            sys.stderr.write(text if text.endswith("\n") else text + "\n")
        kind, payload = outcome
        if kind == "user_error":
            raise UserError(payload)
        if kind == "bug":
            raise IsolatedError(payload)
        return payload

    def close(self) -> None:
        """End the child if it still runs (no call given, Ctrl-C, an error): never leave Caffe running."""
        self._receiver.close()
        if self._child.stdin and not self._child.stdin.closed:
            try:
                self._child.stdin.close()  # EOF: a child still waiting for its call exits by itself
            except BrokenPipeError:
                pass
        if self._child.poll() is None:
            try:
                self._child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait()

    def _kill(self) -> None:
        if self._child.poll() is None:
            self._child.kill()
            self._child.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if exc_info[0] is not None:
            self._kill()
        self.close()
        if not self._output.closed:
            self._output.close()


def run_isolated(
    function: Callable,
    *args: Any,
    on_message: Callable[[Any], None] | None = None,
    context: str = "",
    **kwargs: Any,
) -> Any:
    """Run ``function(report, *args, **kwargs)`` in a child process and return its result.

    ``function`` must be importable by name (a module-level function of an
    importable module) and its arguments and result picklable. It may call
    ``report(message)`` any number of times; the parent passes each message to
    ``on_message`` as it arrives. If the child dies (a Caffe CHECK, a signal)
    this raises ``CaffeStopped`` (a ``UserError``) with glog's reason in one line, prefixed by
    ``context`` when given; the messages received until then have been
    delivered. The child's stdout and stderr are captured (a report printed
    on stdout stays clean) and passed on to stderr once it has succeeded.
    """
    with IsolatedWorker() as worker:
        return worker.run(function, *args, on_message=on_message, context=context, **kwargs)


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
