"""uint8_measure: the finding of a record whose transform is not proven finite, without transforming it all.

Two references: ``findings.nonfinite_finding`` of the record transformed
whole (``Transform.apply``, itself held to Caffe's Data layer in
test_scan_fast_path), for many transforms that fail the proof; and real
Caffe, through a scan with ``--no-fast-path``, whose JSON the fast path's
must equal.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scan_datasets import uint8_datum, write_lmdb
from test_scan_fast_path import write_mean

from caffe_nanlayers.commands.scan import main
from caffe_nanlayers.scan import findings, partition
from caffe_nanlayers.scan.fast_path import Transform
from caffe_nanlayers.scan.uint8_measure import Uint8Measure

SHAPE = (3, 9, 11)
SPECIALS = (np.nan, np.inf, -np.inf, 3.4e38, -3.4e38, 1e30, -1e-30, 0.0, 255.0, 127.5)


def transform(scale=1.0, crop=0, mean=None, mean_values=()) -> Transform:
    return Transform(
        scale=np.float32(scale),
        crop_size=crop,
        mean_values=tuple(np.float32(v) for v in mean_values),
        mean=None if mean is None else np.asarray(mean, np.float32),
    )


def reference(t: Transform, pixels: np.ndarray):
    with np.errstate(all="ignore"):
        return findings.nonfinite_finding(t.apply(pixels))


def assert_same(measure: Uint8Measure, t: Transform, pixels: np.ndarray) -> None:
    expected = reference(t, pixels)
    got = measure.finding(pixels)
    assert got == expected  # 0.0 == -0.0: the sign of a zero extreme is the one freedom allowed


means = st.builds(
    lambda seed, specials, where: _mean(seed, specials, where),
    st.integers(0, 2**32 - 1),
    st.lists(st.sampled_from(SPECIALS), min_size=0, max_size=6),
    st.integers(0, 10_000),
)


def _mean(seed: int, specials: list, where: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mean = rng.uniform(-50, 300, SHAPE).astype(np.float32)
    for offset, value in enumerate(specials):
        mean.reshape(-1)[(where + 37 * offset) % mean.size] = value
    return mean


@settings(max_examples=300, deadline=None)
@given(
    mean=st.one_of(st.none(), means),
    mean_values=st.lists(st.sampled_from((*SPECIALS, 104.0, 117.0, -3.0)), max_size=3).filter(
        lambda v: len(v) in (0, 1, 3)
    ),
    scale=st.sampled_from((1.0, 0.00390625, -0.5, 1e36, -1e36, 3e38, np.inf, -np.inf, np.nan, 0.0, 1e-30)),
    crop=st.sampled_from((0, 5, 9)),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_finding_is_the_whole_transforms(mean, mean_values, scale, crop, seed):
    t = transform(scale, crop, mean, () if mean is not None else mean_values)
    if t.uint8_always_finite(SHAPE):
        return  # no measure is made: the record is not looked at
    measure = Uint8Measure(t, SHAPE)
    if not measure.usable:
        return  # the whole transform is measured instead (the reference itself)
    rng = np.random.default_rng(seed)
    for pixels in (
        rng.integers(0, 256, SHAPE, dtype=np.uint8),
        np.zeros(SHAPE, np.uint8),
        np.full(SHAPE, 255, np.uint8),
        np.where(rng.random(SHAPE) < 0.5, 0, 255).astype(np.uint8),
    ):
        assert_same(measure, t, pixels)


def test_one_nan_in_the_mean_file_is_one_position_transformed():
    mean = np.full(SHAPE, 110, np.float32)
    mean[1, 4, 5] = np.nan
    t = transform(0.0078125, 5, mean)
    measure = Uint8Measure(t, SHAPE)
    assert measure.usable and measure.unsafe.size == 1
    pixels = np.random.default_rng(0).integers(0, 256, SHAPE, dtype=np.uint8)
    got = measure.finding(pixels)
    assert got == reference(t, pixels)
    assert (got["nan"], got["posinf"], got["neginf"], got["size"]) == (1, 0, 0, 75)


@pytest.mark.parametrize("scale", [np.inf, np.nan, 0.0, 1e37])
def test_scales_outside_the_reasoning_are_left_to_the_whole_transform(scale):
    # 1e37 overflows at 0 or 255 wherever the mean is 100: no position is safe.
    assert not Uint8Measure(transform(scale, 0, None, (100,)), SHAPE).usable


# --- against Caffe -----------------------------------------------------------------------------------


@pytest.mark.caffe
@pytest.mark.parametrize(
    "transform_text, mean_specials",
    [
        ("mean_file: 'mean.binaryproto' crop_size: 5", {(0, 4, 5): np.nan, (2, 3, 3): np.inf}),
        ("mean_file: 'mean.binaryproto' scale: -0.25", {(1, 0, 0): -np.inf, (1, 8, 10): 3.4e38}),
        ("mean_value: 128 scale: 1e37 crop_size: 7", {}),
    ],
)
def test_a_scan_of_records_that_fail_the_proof_equals_caffes(
    caffe, tmp_path, monkeypatch, capsys, transform_text, mean_specials
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(partition, "MIN_RECORDS_PER_TASK", 8)
    monkeypatch.setattr(partition, "MIN_PROVEN_RECORDS_PER_TASK", 8)
    mean = np.random.default_rng(3).uniform(0, 255, SHAPE).astype(np.float32)
    for where, value in mean_specials.items():
        mean[where] = value
    write_mean(tmp_path / "mean.binaryproto", mean)
    rng = np.random.default_rng(4)
    records = [uint8_datum(rng.integers(0, 256, SHAPE), label=i % 5) for i in range(40)]
    records[7] = uint8_datum(np.full(SHAPE, 128), label=1)  # clean under the overflowing scale
    write_lmdb(tmp_path / "db", records)
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "data" type: "Data" top: "data" top: "label"\n'
        '  data_param { source: "db" backend: LMDB batch_size: 4 }\n'
        f"  transform_param {{ {transform_text} }} }}\n"
    )

    def scan(*options):
        code = main(["net.prototxt", "--json", "-q", *options])
        return code, json.loads(capsys.readouterr().out)

    code, by_caffe = scan("--no-fast-path")
    assert code == 1 and by_caffe["bad_records"] >= 30
    assert scan("--workers", "1") == (code, by_caffe)
    assert scan("--workers", "3") == (code, by_caffe)
