"""Decode an encoded Datum's image with the OpenCV that Caffe links, in a process that never loads Caffe.

Caffe decodes an encoded Datum with ``cv::imdecode``; a scan worker that
decoded with another library (Pillow, a wheel's own OpenCV) would judge
other pixels: decoders differ on cut files, on chroma upsampling, on EXIF
orientation. The set-up compiles ``opencv_decode.cpp`` against the system's
OpenCV, the one ``_caffe.so`` links, into the venv (``library_path``), and
this module calls it with ctypes. Where it is missing (a Caffe the user
built), ``load()`` says why and the scan leaves encoded records to Caffe.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np

LIBRARY_NAME = "libnanlayers_opencv_decode.so"
# A library compiled against another OpenCV (that of a Caffe the user built) is named here.
LIBRARY_ENV = "CAFFE_NANLAYERS_OPENCV_DECODE"
# cv::ImreadModes, as Caffe passes them: DecodeDatumToCVMatNative uses -1, DecodeDatumToCVMat
# CV_LOAD_IMAGE_COLOR or CV_LOAD_IMAGE_GRAYSCALE.
IMREAD_UNCHANGED, IMREAD_GRAYSCALE, IMREAD_COLOR = -1, 0, 1
CV_8U = 0
DECODED, TOO_SMALL, NOT_DECODED, FAILED = range(4)
MESSAGE_SIZE = 512


def library_path(prefix: str | None = None) -> Path:
    """Where the set-up installs the library (one per venv, under its prefix), or where $LIBRARY_ENV says."""
    if prefix is None and os.environ.get(LIBRARY_ENV):
        return Path(os.environ[LIBRARY_ENV])
    return Path(prefix or sys.prefix) / "lib" / "caffe-nanlayers" / LIBRARY_NAME


@dataclasses.dataclass(frozen=True)
class Image:
    """A decoded image: ``pixels`` (rows, cols, channels) uint8 as OpenCV lays it out, or None.

    ``pixels`` is None when the depth is not 8-bit (a 16-bit PNG under IMREAD_UNCHANGED): Caffe's
    transformer refuses it, so its values are never needed.
    """

    rows: int
    cols: int
    channels: int
    depth: int
    pixels: np.ndarray | None


class NotDecoded(Exception):
    """cv::imdecode gave no image (``why`` says what OpenCV said, if it threw)."""

    def __init__(self, why: str):
        super().__init__(why)
        self.why = why


class Decoder:
    """One process's handle on the library, with a buffer reused from image to image."""

    def __init__(self, library: ctypes.CDLL):
        self._decode = library.nanlayers_imdecode
        self._decode.restype = ctypes.c_int
        self._decode.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.POINTER(ctypes.c_int),
            ctypes.c_char_p,
            ctypes.c_size_t,
        ]
        version = library.nanlayers_opencv_version
        version.restype = ctypes.c_char_p
        self.opencv_version = version().decode()
        self._buffer = np.empty(0, np.uint8)
        self._shape = (ctypes.c_int * 4)()
        self._message = ctypes.create_string_buffer(MESSAGE_SIZE)

    def decode(self, data, flag: int) -> Image:
        """The image of ``data`` (bytes or a buffer of them) as ``cv::imdecode(data, flag)`` gives it.

        Raises ``NotDecoded`` where Caffe's decode gives an empty image or OpenCV throws.
        """
        source = np.frombuffer(data, np.uint8)
        pointer = ctypes.cast(source.ctypes.data, ctypes.c_char_p)
        while True:
            outcome = self._decode(
                pointer,
                source.size,
                flag,
                self._buffer.ctypes.data,
                self._buffer.size,
                self._shape,
                self._message,
                MESSAGE_SIZE,
            )
            rows, cols, channels, depth = self._shape
            if outcome != TOO_SMALL:
                break
            # Decoded once more into a buffer that fits: this happens only when an image is the
            # largest seen yet, a few times a scan.
            self._buffer = np.empty(rows * cols * channels, np.uint8)
        if outcome == NOT_DECODED:
            raise NotDecoded("OpenCV could not decode it")
        if outcome == FAILED:
            raise NotDecoded(f"OpenCV stopped: {self._message.value.decode(errors='replace').strip()}")
        pixels = None
        if depth == CV_8U:
            pixels = self._buffer[: rows * cols * channels].reshape(rows, cols, channels)
        return Image(rows, cols, channels, depth, pixels)


_loaded: dict = {}


def load(prefix: str | None = None) -> tuple[Decoder | None, str | None]:
    """(the decoder, None), or (None, why there is none): loaded once a process."""
    path = library_path(prefix)
    if path not in _loaded:
        if not path.exists():
            _loaded[path] = (None, f"Caffe's OpenCV decoder is not installed here ({path} is missing)")
        else:
            try:
                _loaded[path] = (Decoder(ctypes.CDLL(str(path))), None)
            except (OSError, AttributeError) as exc:
                _loaded[path] = (None, f"Caffe's OpenCV decoder at {path} does not load ({exc})")
    return _loaded[path]
