"""After Caffe stopped on an image list: the image it could not read, found with Caffe's own reader.

Some damage only a decoder sees (a JPEG header with a flipped bit, a format
the build's OpenCV lacks). Caffe's ImageData then ends with ``CHECK failed:
cv_img.data``, and the scan knows only the batches it finished. Caffe's
``convert_imageset`` tool reads a list with the very function ImageData
uses (``ReadImageToCVMat``: the same OpenCV, colour flag and resize) but
skips an image it cannot read instead of stopping, and keys every image it
stores by its line in the list. Run over the lines from the first
unfinished batch into a private LMDB, the first line without a key is the
image Caffe stopped on: decided by the keys, not by reading Caffe's log.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from caffe_nanlayers.scan.image_lists import ImageEntry

# Caffe reads a few batches ahead of the net (its prefetch queue): the image it stopped on lies
# within this many batches of the first one the net did not finish.
BATCHES_AHEAD = 8


def convert_imageset() -> str | None:
    """Caffe's convert_imageset beside this Python (the set-up puts it there), else on PATH."""
    beside = Path(sys.executable).parent / "convert_imageset"
    return str(beside) if beside.is_file() else shutil.which("convert_imageset")


def first_unreadable_image(
    entries: list[ImageEntry], start: int, batch_size: int, root_folder: str, image_param
) -> ImageEntry | None:
    """The first image from ``start`` on that Caffe's reader cannot open or decode, None if not found."""
    window = entries[start : start + BATCHES_AHEAD * max(batch_size, 1)]
    unreadable = unreadable_images(window, root_folder, image_param)
    return unreadable[0] if unreadable else None


def unreadable_images(entries: list[ImageEntry], root_folder: str, image_param) -> list[ImageEntry] | None:
    """The entries Caffe's reader cannot open or decode; None when the reader is missing or died."""
    tool = convert_imageset()
    if tool is None or not entries or importlib.util.find_spec("lmdb") is None:
        return None  # without the scan extra's lmdb the keys cannot be read back: no explanation
    with tempfile.TemporaryDirectory(prefix="nanlayers-probe-") as workdir:
        listing = Path(workdir) / "list.txt"
        listing.write_text("".join(f"{entry.path} 0\n" for entry in entries), encoding="utf-8")
        database = Path(workdir) / "db"
        command = [tool, "--backend=lmdb"]
        if not image_param.is_color:
            command.append("--gray")
        if image_param.new_height and image_param.new_width:
            command += [
                f"--resize_height={image_param.new_height}",
                f"--resize_width={image_param.new_width}",
            ]
        command += [root_folder, str(listing), str(database)]
        env = {**os.environ, "GLOG_minloglevel": "3"}
        done = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False)
        if done.returncode != 0:
            return None  # the reader itself died: which image, the keys cannot tell
        read = _line_numbers_stored(database)
    return [entry for index, entry in enumerate(entries) if index not in read]


def _line_numbers_stored(database: Path) -> set[int]:
    import lmdb

    env = lmdb.open(str(database), readonly=True, lock=False)
    try:
        with env.begin() as txn:
            return {int(key[:8]) for key, _ in txn.cursor()}
    finally:
        env.close()
