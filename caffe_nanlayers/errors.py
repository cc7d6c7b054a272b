"""The two kinds of error a user of this package meets.

``NonFiniteError`` is what a check raises when it finds NaN/Inf: a
``FloatingPointError``, so code that already catches floating-point trouble
catches it too. It carries, besides its message, where and what it found as
attributes, so tools (``caffe-nan locate``) read them instead of parsing text.
``UserError`` is a mistake in what the user gave us (a file, an option, a
``param_str``): the command-line tools print its message as one line and exit
with code 2, never with a traceback (``run_command``, which every command
goes through, also makes Ctrl-C one line, exit 130).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path
from typing import Callable

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as for a C program whose reader went away
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


class NonFiniteError(FloatingPointError):
    """A blob held NaN or ±Inf where a check was placed.

    Every attribute is optional (``NonFiniteError("msg")`` works) and None
    when unknown:

    - ``layer``: the prototxt name of the layer that found it;
    - ``label``: the ``label`` of its ``param_str``;
    - ``direction``: ``"forward"`` (a bottom's data) or ``"backward"`` (a top's diff);
    - ``blob_index``, ``blob_name``: which bottom (forward) or top (backward);
    - ``stats``: a ``caffe_nanlayers.finite.NonFiniteStats`` of that blob;
    - ``iteration``: how many passes in that direction the layer had completed
      before this one (with ``iter_size: 1`` and a train net, the solver's iteration);
    - ``dump_path``: the ``.npz`` file written by ``mode: 'dump'``.
    """

    def __init__(
        self,
        message: str = "",
        *,
        layer: str | None = None,
        label: str | None = None,
        direction: str | None = None,
        blob_index: int | None = None,
        blob_name: str | None = None,
        stats=None,
        iteration: int | None = None,
        dump_path: str | None = None,
    ):
        super().__init__(message)
        self.layer = layer
        self.label = label
        self.direction = direction
        self.blob_index = blob_index
        self.blob_name = blob_name
        self.stats = stats
        self.iteration = iteration
        self.dump_path = dump_path


class UserError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def run_command(prog: str, body: Callable[[], int], error_prefix: str = "", on_exit=None) -> int:
    """Run a command's ``body``: the one place where an exception becomes the promised line and exit code.

    A ``UserError`` is one line on stderr and exit 2, and so is an ``OSError`` on a file that no
    ``reading``/``writing`` named (a directory the user may not read); Ctrl-C is one line and
    130; a reader of stdout that went away (``| head``) is 141 and no line at all.
    ``on_exit`` (if given) runs first on either way out, e.g. to end a progress bar's line.
    """
    with _whole_writes_to_stdout():
        try:
            code = body()
            sys.stdout.flush()  # here, where a reader that went away is still ours to handle
            return code
        except UserError as exc:
            message, code = f"{prog}: {error_prefix}{exc}", 2
        except KeyboardInterrupt:
            message, code = f"{prog}: interrupted", EXIT_INTERRUPTED
        except BrokenPipeError:
            # Whoever read stdout is gone (`| head`): nothing more to tell it, and nothing to say about it.
            # stdout now points nowhere, so that Python's final flush does not fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_BROKEN_PIPE
        except OSError as exc:
            if exc.filename is None:  # not about a file: a bug of ours, with its traceback
                raise
            message, code = f"{prog}: {error_prefix}{os_error_text(exc)}", 2
    if on_exit is not None:
        on_exit()
    print(message, file=sys.stderr)
    return code


def printable(text: str) -> str:
    """``text`` with control and other unprintable characters escaped (``\\n``, ``\\x1b``).

    A layer or file name is the user's data: a newline in it must not print what looks like another
    finding, nor an ESC sequence clear the terminal, nor a carriage return overwrite the path.
    """
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        else:
            code = ord(ch)
            out.append(
                f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
            )
    return "".join(out)


def os_error_text(exc: OSError) -> str:
    """'PATH: Permission denied' rather than '[Errno 13] Permission denied: 'PATH''."""
    why = exc.strerror or str(exc)
    if exc.filename is None:
        return why
    return f"{os.fsdecode(exc.filename)}: {why}"


@contextlib.contextmanager
def _whole_writes_to_stdout():
    """Make every write to stdout whole, or fail with BrokenPipeError.

    Under ``PYTHONUNBUFFERED=1`` (set by many container images) ``sys.stdout``
    writes straight to the file descriptor, and a write that the pipe cuts
    short returns a partial count that ``print`` ignores: the report would
    be truncated without a word and the exit code would say all is well. A
    buffered writer loops until all is written or the pipe breaks.
    """
    stream = sys.stdout
    if not isinstance(getattr(stream, "buffer", None), io.RawIOBase):
        yield  # already buffered (or captured, as by pytest)
        return
    buffered = io.TextIOWrapper(
        open(stream.fileno(), "wb", closefd=False),  # noqa: SIM115 (detached below; fd 1 stays open)
        encoding=stream.encoding,
        errors=stream.errors,
        line_buffering=stream.line_buffering,
    )
    sys.stdout = buffered
    try:
        yield
    finally:
        sys.stdout = stream
        with contextlib.suppress(OSError, ValueError):
            buffered.flush()


def missing_extra(what: str, package: str, extra: str) -> UserError:
    """The error for an optional dependency that is not installed, naming the extra that brings it.

    The extra (``scan``, ``plot``) installs every package that tool may need, so the user
    installs once, not once per missing module.
    """
    return UserError(f"{what} needs the Python package '{package}': pip install 'caffe-nanlayers[{extra}]'")


def refuse_to_overwrite(output, inputs, option: str) -> None:
    """The tools never write into what they read: ``output`` (named by ``option``) must be none of ``inputs``.

    The same file by another name (``./x``, a symbolic or hard link) counts.
    """
    for given in inputs:
        if given is not None and given != "-" and _same_file(output, given):
            raise UserError(f"{output}: refusing to overwrite the input {given}; give another {option}")


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return Path(a).resolve() == Path(b).resolve()


@contextlib.contextmanager
def reading(path, expected: str):
    """Turn the ways opening or decoding a user's file fails into one-line UserErrors.

    ``expected`` says what the file should have been, e.g. "a .prototxt file".
    """
    with _file_errors(path, expected, write=False):
        yield


@contextlib.contextmanager
def writing(path, expected: str):
    """The same for an output the user named (``-o``, ``--plot``, ``--out``): one line naming it.

    ``expected`` says what was to be written there, e.g. "the PNG plot".
    """
    with _file_errors(path, expected, write=True):
        yield


@contextlib.contextmanager
def _file_errors(path, expected: str, write: bool):
    """The one mapping of OSError (and undecodable text) to UserError, for reading and for writing."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path}: not a text file (byte {exc.start} is not UTF-8), expected {expected}"
        ) from None
    except IsADirectoryError:
        if write:
            raise UserError(f"{path}: is a directory; give a file name for {expected}") from None
        raise UserError(f"{path}: is a directory, expected {expected}") from None
    except FileNotFoundError as exc:
        if not write:
            raise UserError(f"{path}: no such file, expected {expected}") from None
        raise UserError(f"{path}: cannot write {expected}: {_why(exc, path)}") from None
    except OSError as exc:
        if write:
            raise UserError(f"{path}: cannot write {expected}: {_why(exc, path)}") from None
        raise UserError(f"{path}: cannot read: {exc.strerror}") from None


def _why(exc: OSError, path) -> str:
    """strerror, and the directory it is about when that is not ``path`` itself (a missing parent)."""
    why = exc.strerror or str(exc)
    if isinstance(exc, FileExistsError):  # only mkdir raises it: a file where a directory must go
        return f"{os.fsdecode(exc.filename or path)} is a file, not a directory"
    if exc.filename is not None:
        failed = Path(os.fsdecode(exc.filename))
        if failed != Path(path) and failed in Path(path).parents:
            why += f" ({failed})"
    return why
