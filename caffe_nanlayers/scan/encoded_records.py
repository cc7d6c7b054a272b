"""An encoded Datum (a JPEG or PNG in ``data``) judged in a scan worker, as Caffe's transformer would see it.

Caffe's ``DataTransformer::Transform(const Datum&, Blob*)`` decodes an
encoded record with ``cv::imdecode`` (flag -1, or colour or grey under
``force_color`` / ``force_gray``) and hands the image to
``Transform(const cv::Mat&, Blob*)``: the centre crop, the mean, the scale,
rows x columns x channels (BGR) read out as channels x rows x columns. This
module decodes with the same OpenCV (``opencv_decode``) and returns the
image in that CHW order, so the worker's existing checks (the record's
shape against its batch and the transform, the finiteness proof for uint8,
the measure) apply to it as to a raw record.

What it cannot vouch for, it refuses, and the worker hands the pass to
Caffe's own layer: a record that does not decode (Caffe then stops on a
CHECK), an image that is not 8-bit (Caffe CHECKs its depth), transform
fields that Caffe's image path applies and the fast path does not model
(``crop_h`` / ``crop_w``, ``old_resize_param``, ``noise_param``), both
force flags (a CHECK), and a crop under a ``mean_file``: this Caffe's image
path CHECKs the cropped image against the mean file's size as well as the
whole image, so any crop smaller than the image stops it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from caffe_nanlayers.scan import databases, opencv_decode
from caffe_nanlayers.scan.datum_wire import read_header


class Refused(Exception):
    """Caffe's layer, not the worker, must judge this record: the message says why."""


@dataclasses.dataclass(frozen=True)
class Decoding:
    """How Caffe decodes a layer's encoded records: the imdecode flag, or why the worker must not."""

    flag: int = opencv_decode.IMREAD_UNCHANGED
    refusal: str | None = None

    @classmethod
    def of(cls, transform_param) -> Decoding:
        param = transform_param
        if param.force_color and param.force_gray:
            return cls(
                refusal="sets both force_color and force_gray, which Caffe refuses for encoded records"
            )
        if not param.crop_size and (_is_set(param, "crop_h") or _is_set(param, "crop_w")):
            return cls(refusal="sets crop_h / crop_w, which Caffe applies to encoded images only")
        for field in ("old_resize_param", "noise_param"):
            if _is_set(param, field):
                return cls(refusal=f"sets {field}, which Caffe applies to encoded images only")
        if param.force_color:
            return cls(flag=opencv_decode.IMREAD_COLOR)
        if param.force_gray:
            return cls(flag=opencv_decode.IMREAD_GRAYSCALE)
        return cls()


def _is_set(param, name: str) -> bool:
    """Whether a field of this fork's TransformationParameter is set (BVLC's caffe.proto has none of them)."""
    field = param.DESCRIPTOR.fields_by_name.get(name)
    if field is None:
        return False
    return param.HasField(name) if field.message_type is not None else bool(getattr(param, name))


def decoder() -> opencv_decode.Decoder:
    """This process's decoder; ``Refused`` when the set-up did not install one (a Caffe the user built)."""
    loaded, why = opencv_decode.load()
    if loaded is None:
        raise Refused(f"is an encoded image, and {why}")
    return loaded


def decode(data, decoding: Decoding, transform) -> tuple[tuple[int, int, int], np.ndarray]:
    """(channels, height, width) and the pixels, uint8 in that order, of an encoded record's ``data``.

    The pixels are a view of the decoder's buffer: valid until the next decode. ``transform`` is
    the worker's ``fast_path.Transform``, for the one CHECK of Caffe's image path that raw records
    do not have.
    """
    if decoding.refusal is not None:
        raise Refused(f"is an encoded image and its layer {decoding.refusal}")
    try:
        image = decoder().decode(data, decoding.flag)
    except opencv_decode.NotDecoded as exc:
        raise Refused(f"is an encoded image that does not decode ({exc.why}): Caffe stops on it") from None
    if image.pixels is None:
        raise Refused(
            f"is an encoded image of OpenCV depth {image.depth}, not 8-bit, which Caffe's transformer refuses"
        )
    crop = transform.crop_size
    if transform.mean is not None and crop and (image.rows, image.cols) != (crop, crop):
        raise Refused(
            f"is an encoded {image.rows}x{image.cols} image cropped to {crop} under a mean_file, "
            "which Caffe's image path CHECKs against the mean file's size"
        )
    return (image.channels, image.rows, image.cols), image.pixels.transpose(2, 0, 1)


def first_channels(datum, decoding: Decoding) -> int:
    """The channels Caffe's transformer sees in a pass's first record (it replicates one mean_value for them).

    For an encoded record, those of the decoded image, not the stored header; when it cannot be
    decoded here, the header's (the worker that meets it hands the pass to Caffe).
    """
    if not datum.encoded:
        return datum.channels
    try:
        (channels, _, _), _ = decode(datum.data, decoding, _NoTransform)
    except Refused:
        return datum.channels
    return channels


class _NoTransform:
    mean = None
    crop_size = 0


def missing_decoder_notes(layers, sources) -> list[str]:
    """A note for each database whose first record is encoded when this venv has no decoder.

    Its workers then hand every pass to Caffe's own layer, in one process: the user is told why
    the scan did not use the cores it was given, and what installs the decoder.
    """
    loaded, why = opencv_decode.load()
    if loaded is not None:
        return []
    notes = []
    for layer, source in zip(layers, sources):
        if source.kind not in ("LMDB", "LevelDB"):
            continue
        backend = "LMDB" if source.kind == "LMDB" else "LEVELDB"
        first = next(databases.iter_items(source.view, backend, source.label), (None, b""))[1]
        header = read_header(first)
        if header is not None and header.encoded:
            notes.append(
                f"layer {layer.name!r} holds encoded images and {why} (scripts/dev setup builds it): "
                "Caffe's own layer decodes them, in one process"
            )
    return notes
