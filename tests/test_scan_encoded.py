"""Encoded Datums (JPEG, PNG) decoded in the scan's workers: Caffe's own Data layer is the oracle.

Every dataset here is read by a real Caffe Data layer (phase TEST, batch 1
so that each image may have its own size) and by the workers' path
(``encoded_records.decode`` with the OpenCV Caffe links, then
``fast_path.Transform``): the values must be equal bit for bit. Records that
Caffe stops on (an image that does not decode, a 16-bit PNG read unchanged,
a crop under a mean file) are handed to Caffe, so the scan's answer with
workers is the answer of Caffe's layer alone.
"""

from __future__ import annotations

import io
import subprocess

import lmdb
import numpy as np
import pytest
from google.protobuf import text_format
from PIL import Image
from scan_datasets import write_lmdb
from test_scan_fast_path import write_mean

from caffe_nanlayers.proto_io import caffe_pb2
from caffe_nanlayers.scan import encoded_records, fast_path, opencv_decode

pytestmark = pytest.mark.caffe


@pytest.fixture(scope="module")
def decoder():
    loaded, why = opencv_decode.load()
    if loaded is None:
        pytest.fail(f"the set-up installs the decoder: {why}")
    return loaded


def encode(pixels: np.ndarray, fmt: str, **options) -> bytes:
    """An image file's bytes written by Pillow (RGB order in, as a camera or a script writes them)."""
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, fmt, **options)
    return out.getvalue()


def encoded_datum(data: bytes, shape=(3, 1, 1), label: int = 0) -> bytes:
    """A Datum as convert_imageset --encoded writes it: the file's bytes, encoded set, its shape."""
    datum = caffe_pb2().Datum()
    datum.channels, datum.height, datum.width = shape
    datum.data, datum.encoded, datum.label = data, True, label
    return datum.SerializeToString()


def smooth(height: int, width: int, channels: int, seed: int) -> np.ndarray:
    """A photo-like image: gradients and noise, so that JPEG's chroma subsampling matters."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    planes = [
        (rows * (3 + c) + cols * (5 - c) + rng.integers(0, 40, (height, width))) % 256
        for c in range(channels)
    ]
    image = np.stack(planes, axis=-1).astype(np.uint8)
    return image[..., 0] if channels == 1 else image


def colour_images(seed: int = 0) -> list[bytes]:
    return [
        encode(smooth(16, 16, 3, seed), "JPEG", quality=85),  # 4:2:0, Pillow's default
        encode(smooth(13, 17, 3, seed + 1), "JPEG", quality=90, subsampling=0),  # 4:4:4, odd size
        encode(smooth(21, 11, 3, seed + 2), "JPEG", quality=75, progressive=True),
        encode(smooth(15, 9, 3, seed + 3), "JPEG", quality=95, subsampling=1),  # 4:2:2
        encode(smooth(12, 14, 3, seed + 4), "PNG"),
    ]


def grey_images(seed: int = 0) -> list[bytes]:
    return [
        encode(smooth(11, 13, 1, seed), "JPEG", quality=80),
        encode(smooth(9, 10, 1, seed + 1), "PNG"),
        encode(smooth(12, 8, 1, seed + 2), "JPEG", progressive=True),
    ]


def caffe_output(make_net, source: str, transform: str, count: int) -> list[np.ndarray]:
    """Each record as Caffe's Data layer delivers it (phase TEST, batch 1)."""
    net = make_net(
        f'layer {{ name: "d" type: "Data" top: "data" top: "label"\n'
        f'  data_param {{ source: "{source}" backend: LMDB batch_size: 1 }}\n'
        f"  transform_param {{ {transform} }} }}\n",
        phase="TEST",
    )
    out = []
    for _ in range(count):
        net.forward()
        out.append(np.array(net.blobs["data"].data[0]))
    return out


def worker_output(source, transform: str) -> list[np.ndarray]:
    """Each record as a scan worker sees it: decoded by ``encoded_records``, transformed by ``fast_path``."""
    pb2 = caffe_pb2()
    param = pb2.TransformationParameter()
    text_format.Merge(transform, param)
    apply = fast_path.Transform.of(param, pb2)
    decoding = encoded_records.Decoding.of(param)
    out = []
    env = lmdb.open(str(source), readonly=True, lock=False)
    with env.begin() as txn:
        for _, value in txn.cursor():
            datum = pb2.Datum()
            datum.ParseFromString(value)
            shape, pixels = encoded_records.decode(datum.data, decoding, apply)
            assert pixels.shape == shape
            with np.errstate(all="ignore"):
                out.append(apply.apply(pixels))
    env.close()
    return out


def assert_same_as_caffe(make_net, tmp_path, images: list[bytes], transform: str) -> None:
    write_lmdb(tmp_path / "db", [encoded_datum(data, label=i) for i, data in enumerate(images)])
    expected = caffe_output(make_net, str(tmp_path / "db"), transform, len(images))
    got = worker_output(tmp_path / "db", transform)
    for record, (mine, caffes) in enumerate(zip(got, expected)):
        assert mine.dtype == np.float32
        np.testing.assert_array_equal(mine, caffes, err_msg=f"record {record}, transform {transform!r}")


@pytest.mark.parametrize(
    "transform",
    [
        "",
        "scale: 0.00390625",
        "mean_value: 104 mean_value: 117 mean_value: 123 scale: 0.017",
        "mean_value: 128",
        "crop_size: 7 mean_value: 100 scale: 0.5",
        "force_color: true crop_size: 9",
        "force_gray: true mean_value: 128 scale: 0.0078125",
    ],
)
def test_colour_images_equal_caffes_data_layer(caffe, make_net, decoder, tmp_path, monkeypatch, transform):
    monkeypatch.chdir(tmp_path)
    assert_same_as_caffe(make_net, tmp_path, colour_images(), transform)


@pytest.mark.parametrize(
    "transform",
    ["", "mean_value: 3 scale: 2", "force_color: true crop_size: 5", "force_gray: true", "crop_size: 8"],
)
def test_grey_images_equal_caffes_data_layer(caffe, make_net, decoder, tmp_path, monkeypatch, transform):
    monkeypatch.chdir(tmp_path)
    assert_same_as_caffe(make_net, tmp_path, grey_images(), transform)


@pytest.mark.parametrize("transform", ["", "force_color: true", "force_gray: true scale: 0.5"])
def test_png_with_alpha_and_16_bit_png_decoded_as_caffe_asks(caffe, make_net, decoder, tmp_path, transform):
    rgba = encode(smooth(10, 12, 4, 9), "PNG")
    images = [rgba]
    if transform:  # read unchanged, a 16-bit PNG is refused by Caffe: see the hand-over test below
        images.append(encode((smooth(9, 11, 1, 3).astype(np.uint16) * 257), "PNG"))
    assert_same_as_caffe(make_net, tmp_path, images, transform)


def test_mean_file_of_the_images_size_equals_caffes(caffe, make_net, decoder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mean = np.random.default_rng(3).uniform(0, 255, (3, 16, 16)).astype(np.float32)
    write_mean(tmp_path / "mean.binaryproto", mean)
    images = [encode(smooth(16, 16, 3, seed), "JPEG", subsampling=seed % 3) for seed in range(4)]
    assert_same_as_caffe(make_net, tmp_path, images, "mean_file: 'mean.binaryproto' scale: 0.25")


def test_a_truncated_jpeg_is_refused_as_caffe_cannot_decode_it(decoder):
    whole = encode(smooth(32, 32, 3, 1), "JPEG")
    decoding = encoded_records.Decoding()
    plain = fast_path.Transform.of(caffe_pb2().TransformationParameter(), caffe_pb2())
    for cut in (whole[: len(whole) // 2], whole[:10], b"not an image at all", b""):
        with pytest.raises(encoded_records.Refused, match="does not decode"):
            encoded_records.decode(cut, decoding, plain)


def test_layers_whose_encoded_images_caffe_treats_otherwise_are_refused():
    pb2 = caffe_pb2()

    def decoding(text: str) -> encoded_records.Decoding:
        param = pb2.TransformationParameter()
        text_format.Merge(text, param)
        return encoded_records.Decoding.of(param)

    assert decoding("").flag == opencv_decode.IMREAD_UNCHANGED and decoding("").refusal is None
    assert decoding("force_color: true").flag == opencv_decode.IMREAD_COLOR
    assert decoding("force_gray: true").flag == opencv_decode.IMREAD_GRAYSCALE
    assert "both" in decoding("force_color: true force_gray: true").refusal
    assert "crop_h" in decoding("crop_h: 4 crop_w: 4").refusal
    assert decoding("crop_size: 4 crop_h: 3").refusal is None  # crop_size wins in Caffe
    assert "noise_param" in decoding("noise_param { prob: 0.5 }").refusal


def test_the_decoder_links_the_opencv_caffe_links(caffe, decoder):
    """The point of the library: the same libopencv_imgcodecs file as _caffe.so, not another OpenCV."""
    from pathlib import Path

    def imgcodecs(library: str) -> str:
        lines = subprocess.run(["ldd", library], capture_output=True, text=True, check=True).stdout
        found = [
            line.split("=>")[1].split("(")[0].strip() for line in lines.splitlines() if "imgcodecs" in line
        ]
        assert found, lines
        return str(Path(found[0]).resolve())

    caffe_so = str(Path(caffe.__file__).parent / "_caffe.so")
    assert imgcodecs(str(opencv_decode.library_path())) == imgcodecs(caffe_so)
    assert decoder.opencv_version.startswith("4.")


def test_first_channels_are_the_decoded_images(decoder):
    datum = caffe_pb2().Datum()
    datum.ParseFromString(encoded_datum(encode(smooth(6, 6, 1, 0), "PNG"), shape=(3, 6, 6)))
    assert encoded_records.first_channels(datum, encoded_records.Decoding()) == 1
    assert (
        encoded_records.first_channels(datum, encoded_records.Decoding(flag=opencv_decode.IMREAD_COLOR)) == 3
    )


def test_a_missing_library_hands_encoded_records_to_caffe(tmp_path):
    loaded, why = opencv_decode.load(prefix=str(tmp_path))
    assert loaded is None and str(tmp_path) in why
