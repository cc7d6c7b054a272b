"""The image list behind an ImageData layer: parsed as Caffe parses it, its images checked before Caffe.

Caffe 1.0's ImageData reads its ``source`` line by line, splits each line at
its *last* space into an image path and a label read with ``atoi``, and
opens ``root_folder + path`` (a plain concatenation, not a path join) with
OpenCV's ``imread``. ``atoi`` never fails: a line without a label, or with
``cat`` or ``2.5`` for one, trains silently on label 0 (or 2), so the scan
refuses such a line with its number. An image ``imread`` cannot open or
decode is a ``LOG(ERROR)`` then a failed ``CHECK`` that ends the training.

The checks here need no decoder (OpenCV's Python package is not a
dependency): a file that is missing, empty or not a file; a file whose first
bytes are no format OpenCV decodes (OpenCV picks the decoder by signature,
never by extension); a PNG whose chunks, checksums or compressed pixels are
damaged (libpng stops on those). A JPEG cut short after its image data
begins is different: libjpeg warns, fills the missing rows with grey and
OpenCV returns the image, so Caffe trains on it without a word. The scan
names it as a bad record instead of stopping. Damage that only a decoder
sees is left to Caffe: when it stops, ``image_probe`` names the image.
"""

from __future__ import annotations

import dataclasses
import re
import struct
import zlib

from caffe_nanlayers.errors import UserError
from caffe_nanlayers.scan import hdf5_lists

MAX_LISTED = 3
_INTEGER = re.compile(r"[+-]?[0-9]+")

# The signatures of the formats an OpenCV build decodes (imgcodecs' decoders, by their magic bytes).
SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\x59\xa6\x6a\x95", "Sun raster"),
    (b"\x76\x2f\x31\x01", "OpenEXR"),
    (b"#?RADIANCE", "Radiance HDR"),
    (b"#?RGBE", "Radiance HDR"),
)


@dataclasses.dataclass(frozen=True)
class ImageEntry:
    line: int  # 1-based line of the list
    path: str  # as written in the list
    resolved: str  # root_folder + path: what Caffe opens
    label: int


@dataclasses.dataclass(frozen=True)
class ImageProblem:
    entry: ImageEntry
    what: str
    caffe_stops: bool  # True: Caffe's CHECK ends the training; False: Caffe trains on a damaged image

    def line(self, source: str) -> str:
        return f"{source}:{self.entry.line}: image {self.entry.path!r} ({self.entry.resolved}): {self.what}"


def _atoi(text: str) -> int:
    """What C's atoi makes of ``text``: the leading integer, 0 when there is none."""
    match = re.match(r"\s*([+-]?[0-9]+)", text)
    return int(match.group(1)) if match else 0


def _shown(text: str, most: int = 60) -> str:
    """``text`` quoted for a one-line message, cut short: a zeroed sector is one long line."""
    quoted = repr(text)
    return quoted if len(quoted) <= most else f"{quoted[:most]}... ({len(text)} characters)"


def parse_list(source: str, root_folder: str, label: str) -> list[ImageEntry]:
    """The entries of an image list, split as Caffe splits them; a line Caffe would misread is one error."""
    text = hdf5_lists.read_text_list(source, label, "an image list, 'IMAGE LABEL' on each line")
    lines = text.split("\n")  # std::getline: only '\n' ends a line; a last line without one still counts
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise UserError(f"{label}: the image list is empty")
    entries = []
    for number, raw in enumerate(lines, 1):
        line = raw[:-1] if raw.endswith("\r") else raw  # atoi stops at the '\r' of a Windows line end
        path, space, token = line.rpartition(" ")
        if not space or not path:
            raise UserError(
                f"{source}:{number}: expected 'IMAGE LABEL' (the label after the last space), "
                f"got {_shown(line)}; Caffe would read the whole line as the image and its label as 0"
            )
        if not _INTEGER.fullmatch(token):
            raise UserError(
                f"{source}:{number}: the label {_shown(token)} is not an integer; "
                f"Caffe's atoi would read it as {_atoi(token)} and train on that"
            )
        entries.append(ImageEntry(number, path, root_folder + path, int(token)))
    return entries


def check_images(entries: list[ImageEntry], label: str, source: str) -> list[ImageProblem]:
    """The images Caffe would train on damaged; a UserError naming those it cannot read at all."""
    problems = [p for p in (_problem(entry) for entry in entries) if p is not None]
    stopping = [p for p in problems if p.caffe_stops]
    if stopping:
        listed = "; ".join(p.line(source) for p in stopping[:MAX_LISTED])
        more = f" (and {len(stopping) - MAX_LISTED} more)" if len(stopping) > MAX_LISTED else ""
        what = f"{len(stopping)} images" if len(stopping) > 1 else "an image"
        raise UserError(f"{label}: {what} that Caffe cannot read (it would stop there): {listed}{more}")
    return problems


def _problem(entry: ImageEntry) -> ImageProblem | None:
    try:
        with open(entry.resolved, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return ImageProblem(entry, "not found (root_folder + the path as written)", True)
    except IsADirectoryError:
        return ImageProblem(entry, "is a directory, expected an image file", True)
    except OSError as exc:
        return ImageProblem(entry, f"cannot be read ({exc.strerror or exc})", True)
    what, stops = image_damage(data)
    return ImageProblem(entry, what, stops) if what else None


def image_damage(data: bytes) -> tuple[str | None, bool]:
    """What is certainly wrong with an image file's bytes without decoding them, and whether Caffe stops."""
    if not data:
        return "is empty", True
    kind = next((name for magic, name in SIGNATURES if data.startswith(magic)), None)
    if kind is None and re.match(rb"P[1-7]\s", data[:3]):
        kind = "PNM"
    if kind is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        kind = "WebP"
    if kind is None:
        return f"is no image format OpenCV reads (it begins with {data[:8].hex(' ')})", True
    if kind == "PNG":
        broken = png_damage(data)
        return (f"is a damaged PNG ({broken})", True) if broken else (None, False)
    if kind == "JPEG":
        return jpeg_truncation(data), False
    return None, False


def png_damage(data: bytes) -> str | None:
    """Why libpng would stop on this PNG (a chunk cut short or failing its CRC, pixels missing), or None."""
    offset, idat, header = 8, [], None
    while True:
        if offset + 8 > len(data):
            return f"cut short at byte {len(data)}, before its IEND chunk"
        length, kind = struct.unpack_from(">I4s", data, offset)
        end = offset + 8 + length + 4
        if end > len(data):
            return f"cut short at byte {len(data)}, inside its {kind!r} chunk"
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack_from(">I", data, end - 4)
        critical = kind[:1].isupper()
        if critical and zlib.crc32(kind + body) != crc:
            return f"the CRC of its {kind.decode('latin-1')!r} chunk at byte {offset} does not match"
        if offset == 8 and (kind != b"IHDR" or length != 13):
            return "its first chunk is not a valid IHDR"
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        offset = end
    if not idat:
        return "it has no IDAT chunk (no pixels)"
    return _pixel_shortfall(header, idat)


def _pixel_shortfall(header, idat: list[bytes]) -> str | None:
    width, height, depth, color, _, _, interlace = header
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(color)
    inflater = zlib.decompressobj()
    produced = 0
    try:
        for part in idat:
            produced += len(inflater.decompress(part, 1 << 24))
            while inflater.unconsumed_tail:
                produced += len(inflater.decompress(inflater.unconsumed_tail, 1 << 24))
    except zlib.error as exc:
        return f"its compressed pixels are corrupt ({exc})"
    if channels is None or interlace:
        return None  # the size of an interlaced image's rows is libpng's to check
    expected = height * (1 + (width * channels * depth + 7) // 8)
    if produced < expected:
        return f"its pixels stop after {produced} of {expected} bytes"
    return None


def jpeg_truncation(data: bytes) -> str | None:
    """A JPEG whose scan data begins but never ends: libjpeg decodes it with grey rows, Caffe trains on it.

    The end marker FF D9 can only appear in the entropy-coded data as the end itself (FF there is
    stuffed as FF 00 or is a restart marker), so it is searched for from the first scan on; a file cut
    before its first scan is left to the decoder, which stops on it.
    """
    offset = 2
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            return None  # not the structure this check knows: the decoder decides
        marker = data[offset + 1]
        if marker == 0xFF:
            offset += 1
            continue
        if marker == 0xD9:
            return None
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            offset += 2
            continue
        (length,) = struct.unpack_from(">H", data, offset + 2)
        if marker == 0xDA:
            if data.find(b"\xff\xd9", offset + 2 + length) < 0:
                return (
                    f"is a JPEG cut short at byte {len(data)} (no end marker): OpenCV decodes it with the "
                    "missing rows grey, and Caffe trains on that"
                )
            return None
        offset += 2 + length
    return None
