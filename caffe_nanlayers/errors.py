"""The two kinds of error a user of this package meets.

``NonFiniteError`` is what a check raises when it finds NaN/Inf: a
``FloatingPointError``, so code that already catches floating-point trouble
catches it too. It carries, besides its message, where and what it found as
attributes, so tools (``caffe-nan locate``) read them instead of parsing text.
``UserError`` is a mistake in what the user gave us (a file, an option, a
``param_str``): the command-line tools print its message as one line and exit
with code 2, never with a traceback.
"""

from __future__ import annotations

import contextlib


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


@contextlib.contextmanager
def reading(path, expected: str):
    """Turn the ways opening or decoding a user's file fails into one-line UserErrors.

    ``expected`` says what the file should have been, e.g. "a .prototxt file".
    """
    try:
        yield
    except FileNotFoundError:
        raise UserError(f"{path}: no such file, expected {expected}") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, expected {expected}") from None
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path}: not a text file (byte {exc.start} is not UTF-8), expected {expected}"
        ) from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror}") from None
