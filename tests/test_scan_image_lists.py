"""The image list parsed as Caffe 1.0's ImageData parses it; checks of image bytes that need no decoder."""

from __future__ import annotations

import numpy as np
import pytest
from scan_datasets import image_bytes

from caffe_nanlayers.errors import UserError
from caffe_nanlayers.scan.image_lists import (
    ImageEntry,
    check_images,
    image_damage,
    jpeg_truncation,
    parse_list,
    png_damage,
)

LABEL = "ImageData source 'list.txt' (layer 'data')"


def pixels(seed=0, size=(8, 6)):
    return np.random.default_rng(seed).integers(0, 256, (*size, 3))


def parse(tmp_path, text: str, root: str = "images/") -> list[ImageEntry]:
    path = tmp_path / "list.txt"
    path.write_bytes(text.encode())
    return parse_list(str(path), root, LABEL)


def test_lines_split_at_the_last_space_and_root_folder_is_prepended_as_caffe_concatenates(tmp_path):
    entries = parse(tmp_path, "a.jpg 0\r\nmy photos/b c.png 12\nd.jpg -1", root="imgs")
    assert [(e.line, e.path, e.resolved, e.label) for e in entries] == [
        (1, "a.jpg", "imgsa.jpg", 0),  # no separator added: Caffe's root_folder + path
        (2, "my photos/b c.png", "imgsmy photos/b c.png", 12),
        (3, "d.jpg", "imgsd.jpg", -1),  # the last line needs no newline; -1 is the range check's business
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "a.jpg 0\nb.jpg\n",
            "list.txt:2: expected 'IMAGE LABEL' (the label after the last space), got 'b.jpg'",
        ),
        (
            "a.jpg 0\n\nb.jpg 1\n",
            "list.txt:2: expected 'IMAGE LABEL' (the label after the last space), got ''",
        ),
        ("a.jpg cat\n", "list.txt:1: the label 'cat' is not an integer; Caffe's atoi would read it as 0"),
        (
            "a.jpg 0\nb.jpg 2.5\n",
            "list.txt:2: the label '2.5' is not an integer; Caffe's atoi would read it as 2",
        ),
        ("a.jpg 1 \n", "list.txt:1: the label '' is not an integer; Caffe's atoi would read it as 0"),
        (" 1\n", "list.txt:1: expected 'IMAGE LABEL'"),
    ],
)
def test_a_line_caffe_would_misread_is_one_error_naming_the_list_and_line(tmp_path, text, expected):
    with pytest.raises(UserError) as error:
        parse(tmp_path, text)
    assert str(error.value).startswith(f"{tmp_path}/{expected}")
    assert "\n" not in str(error.value)


def test_an_empty_list_is_refused(tmp_path):
    with pytest.raises(UserError, match="the image list is empty"):
        parse(tmp_path, "")


def test_clean_images_have_no_damage():
    for fmt in ("JPEG", "PNG"):
        assert image_damage(image_bytes(pixels(), fmt)) == (None, False)
    # Bytes after a JPEG's end marker (some cameras pad their files) are no damage: libjpeg stops at the end.
    assert image_damage(image_bytes(pixels(), "JPEG") + b"\0" * 100) == (None, False)


def test_a_png_cut_anywhere_is_damage_caffe_stops_on():
    data = image_bytes(pixels(), "PNG")
    for size in range(8, len(data)):
        what = png_damage(data[:size])
        assert what is not None, size
    assert image_damage(data[:40])[1] is True


def test_a_flipped_bit_in_a_critical_png_chunk_fails_its_crc():
    data = bytearray(image_bytes(pixels(), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 6] ^= 0x10
    assert "CRC of its 'IDAT' chunk" in png_damage(bytes(data))


def test_a_jpeg_cut_inside_its_scan_is_named_but_does_not_stop_caffe():
    data = image_bytes(pixels(size=(32, 32)), "JPEG")
    scan_data = data.index(b"\xff\xda")
    for size in (scan_data + 20, len(data) - 1):
        what, stops = image_damage(data[:size])
        assert (stops, what) == (False, jpeg_truncation(data[:size]))
        assert f"cut short at byte {size}" in what
    # Cut inside its header: whether the decoder copes is the decoder's to say.
    assert jpeg_truncation(data[: scan_data - 10]) is None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "is empty"),
        (b"\0" * 512, "is no image format OpenCV reads (it begins with 00 00 00 00 00 00 00 00)"),
        (b"GIF89a....", "is no image format OpenCV reads"),  # OpenCV has no GIF decoder
    ],
)
def test_bytes_no_decoder_opens_stop_caffe(data, expected):
    what, stops = image_damage(data)
    assert stops and what.startswith(expected)


def test_other_formats_opencv_reads_pass_on_their_signature():
    for data in (
        b"P6 5 4 255\n" + bytes(60),
        b"BM" + bytes(60),
        b"II*\x00" + bytes(8),
        b"RIFF\0\0\0\0WEBPVP8 ",
    ):
        assert image_damage(data) == (None, False)


def test_images_caffe_cannot_read_are_one_line_with_each_list_line_and_the_count(tmp_path):
    (tmp_path / "ok.png").write_bytes(image_bytes(pixels(), "PNG"))
    (tmp_path / "cut.jpg").write_bytes(image_bytes(pixels(size=(32, 32)), "JPEG")[:-5])
    (tmp_path / "dir.jpg").mkdir()
    names = ["ok.png", "gone1.jpg", "cut.jpg", "dir.jpg", "gone2.jpg", "gone3.jpg"]
    entries = [ImageEntry(i + 1, n, f"{tmp_path}/{n}", 0) for i, n in enumerate(names)]

    with pytest.raises(UserError) as error:
        check_images(entries, LABEL, "list.txt")
    message = str(error.value)
    assert message.startswith(f"{LABEL}: 4 images that Caffe cannot read (it would stop there): ")
    assert f"list.txt:2: image 'gone1.jpg' ({tmp_path}/gone1.jpg): not found" in message
    assert "list.txt:4: image 'dir.jpg'" in message and "is a directory" in message
    assert message.endswith("(and 1 more)") and "\n" not in message

    # Without the images Caffe stops on, the cut JPEG is what is left: Caffe would train on it.
    problems = check_images([entries[0], entries[2]], LABEL, "list.txt")
    assert [(p.entry.line, p.caffe_stops) for p in problems] == [(3, False)]


def test_a_zeroed_sector_of_the_list_is_quoted_cut_short(tmp_path):
    with pytest.raises(UserError) as error:
        parse(tmp_path, "a.jpg 0\n" + "\0" * 512 + "\n")
    assert "... (512 characters); Caffe would read the whole line as the image" in str(error.value)
    assert len(str(error.value)) < 400


def test_locate_checks_the_list_lines_before_training_without_reading_the_images(tmp_path, monkeypatch):
    from caffe_nanlayers.proto_io import caffe_pb2
    from caffe_nanlayers.scan.sources import check_for_training

    monkeypatch.chdir(tmp_path)
    layer = caffe_pb2().LayerParameter(name="data", type="ImageData", top=["data", "label"])
    layer.image_data_param.source = "list.txt"
    (tmp_path / "list.txt").write_text("gone.jpg 0\n")
    check_for_training([layer], tmp_path)  # a missing image is the scan's to find, not locate's

    (tmp_path / "list.txt").write_text("a.jpg 0\nb.jpg two\n")
    with pytest.raises(UserError, match=r"^list.txt:2: the label 'two' is not an integer"):
        check_for_training([layer], tmp_path)
