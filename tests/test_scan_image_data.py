"""``caffe-nan scan`` on ImageData lists, through real Caffe built with OpenCV.

Each test writes its JPEG and PNG images and its list, breaks them as
users' lists break (an image gone, cut short, a header only the decoder
sees as broken, a label past the classifier), and checks what the scan
says against what Caffe's own reader does with the same files.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scan_datasets import image_bytes, write_image_list

from caffe_nanlayers.commands.scan import main
from caffe_nanlayers.proto_io import caffe_pb2
from caffe_nanlayers.scan.image_lists import ImageEntry, image_damage
from caffe_nanlayers.scan.image_probe import unreadable_images

pytestmark = pytest.mark.caffe

CLASSIFIER = (
    'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"\n'
    "  inner_product_param { num_output: 2 } }\n"
    'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }\n'
)


def image_net(batch_size: int = 2, extra: str = "") -> str:
    return (
        'layer { name: "data" type: "ImageData" top: "data" top: "label"\n'
        '  image_data_param { source: "list.txt" root_folder: "images/" '
        f"batch_size: {batch_size} {extra} }} }}\n" + CLASSIFIER
    )


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_scan(capsys, *argv):
    code = main(["net.prototxt", *argv, "--json", "-q"])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out else None), captured.err


def damage_header(data: bytes) -> bytes:
    """A JPEG whose frame header says 0x0 pixels: its bytes look whole, only the decoder refuses it."""
    data = bytearray(data)
    frame = data.index(b"\xff\xc0")
    data[frame + 5 : frame + 9] = bytes(4)
    return bytes(data)


def test_verdicts_without_a_decoder_agree_with_caffes_own_reader(caffe, tmp_path):
    # Every image the checks say Caffe stops on, Caffe's ReadImageToCVMat (run by convert_imageset)
    # cannot read; every JPEG they say Caffe trains on although cut short, it reads.
    pixels = np.random.default_rng(1).integers(0, 256, (16, 16, 3))
    png = image_bytes(pixels, "PNG")
    jpeg = image_bytes(pixels, "JPEG")
    flipped = bytearray(png)
    flipped[png.index(b"IDAT") + 9] ^= 0x04
    scan_start = jpeg.index(b"\xff\xda")
    variants = {f"png-cut-{n}.png": png[:n] for n in range(9, len(png), max(1, len(png) // 12))}
    variants |= {
        "png-crc.png": bytes(flipped),
        "zeroed.jpg": bytes(512) + jpeg[512:],
        "empty.png": b"",
        "jpeg-cut-in-scan.jpg": jpeg[: scan_start + 40],
        "jpeg-cut-last.jpg": jpeg[:-2],
    }
    for name, data in variants.items():
        (tmp_path / name).write_bytes(data)
    entries = [ImageEntry(i + 1, name, str(tmp_path / name), 0) for i, name in enumerate(variants)]
    param = caffe_pb2().ImageDataParameter()

    unreadable = {e.path for e in unreadable_images(entries, f"{tmp_path}/", param)}

    verdicts = {name: image_damage(data) for name, data in variants.items()}
    stops = {name for name, (what, caffe_stops) in verdicts.items() if caffe_stops}
    trained_on = {name for name, (what, caffe_stops) in verdicts.items() if what and not caffe_stops}
    assert stops == {n for n in variants if n.startswith(("png-", "zeroed", "empty"))}
    assert trained_on == {"jpeg-cut-in-scan.jpg", "jpeg-cut-last.jpg"}
    assert stops <= unreadable
    assert not trained_on & unreadable


def test_a_missing_image_is_one_line_naming_the_list_line_and_both_paths(caffe, workdir, capsys):
    paths = write_image_list(workdir, 6)
    paths[4].unlink()
    (workdir / "net.prototxt").write_text(image_net())

    code, report, err = run_scan(capsys)

    assert (code, report) == (2, None)
    assert err == (
        "caffe-nan scan: ImageData source 'list.txt' (layer 'data'): an image that Caffe cannot read "
        "(it would stop there): list.txt:5: image 'img4.jpg' (images/img4.jpg): not found "
        "(root_folder + the path as written)\n"
    )


def test_an_image_past_the_limit_is_not_read(caffe, workdir, capsys):
    paths = write_image_list(workdir, 6)
    paths[5].unlink()  # in the third batch of 2
    (workdir / "net.prototxt").write_text(image_net())

    code, report, _ = run_scan(capsys, "--limit", "4")

    assert (code, report["records_scanned"]) == (0, 4)


def test_a_label_past_the_classifier_is_named_by_line_and_image(caffe, workdir, capsys):
    write_image_list(workdir, 5, labels=[0, 1, 1, 2, 0])
    (workdir / "net.prototxt").write_text(image_net())

    code, report, _ = run_scan(capsys)

    assert code == 1
    [bad] = report["bad"]
    assert (bad["file"], bad["line"], bad["image"], bad["resolved"]) == (
        "list.txt",
        4,
        "img3.png",
        "images/img3.png",
    )
    assert (bad["problem"], bad["label"], bad["num_classes"]) == ("label", 2, 2)


def test_a_jpeg_cut_short_is_trained_on_by_caffe_and_named_by_the_scan(caffe, workdir, capsys):
    paths = write_image_list(workdir, 6, size=(24, 24))
    paths[2].write_bytes(paths[2].read_bytes()[:-30])
    (workdir / "net.prototxt").write_text(image_net(extra="new_height: 8 new_width: 8"))

    code, report, _ = run_scan(capsys)

    # Caffe read every image (it did not stop on the cut one), and the scan names the cut one.
    assert (code, report["records_scanned"]) == (1, 6)
    [bad] = report["bad"]
    assert (bad["line"], bad["image"], bad["problem"]) == (3, "img2.jpg", "image")
    assert "JPEG cut short" in bad["message"] and "Caffe trains on that" in bad["message"]


def test_an_image_only_the_decoder_refuses_is_named_after_caffe_stops(caffe, workdir, capsys):
    paths = write_image_list(workdir, 10)
    paths[6].write_bytes(damage_header(paths[6].read_bytes()))
    (workdir / "net.prototxt").write_text(image_net(batch_size=3))

    code, report, err = run_scan(capsys)

    assert (code, report) == (2, None)
    assert err.count("\n") == 1 and "Caffe stopped" in err
    assert err.endswith(
        "ImageData source 'list.txt' (layer 'data'): list.txt:7: image 'img6.jpg' (images/img6.jpg): "
        "OpenCV cannot decode it (Caffe's own reader, run on the list, skips it)\n"
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("img1.png", "list.txt:2: expected 'IMAGE LABEL' (the label after the last space), got 'img1.png'"),
        ("img1.png one", "list.txt:2: the label 'one' is not an integer; Caffe's atoi would read it as 0"),
    ],
)
def test_a_list_line_without_an_integer_label_is_one_line(caffe, workdir, capsys, line, expected):
    write_image_list(workdir, 3)
    lines = (workdir / "list.txt").read_text().splitlines()
    lines[1] = line
    (workdir / "list.txt").write_text("\n".join(lines) + "\n")
    (workdir / "net.prototxt").write_text(image_net())

    code, _, err = run_scan(capsys)

    assert code == 2 and err.startswith(f"caffe-nan scan: {expected}") and err.count("\n") == 1
