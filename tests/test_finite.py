"""The shared measure of non-finite values."""

import tracemalloc
import warnings

import numpy as np
import pytest

from caffe_nanlayers.finite import all_finite, nonfinite_stats


def test_clean_array_has_no_stats():
    x = np.linspace(-1, 1, 1000, dtype=np.float32)
    assert all_finite(x)
    assert nonfinite_stats(x) is None


def test_counts_and_first_index():
    x = np.zeros((2, 3, 4, 5), dtype=np.float32)
    x[1, 2, 3, 4] = np.nan
    x[1, 0, 0, 1] = np.inf
    x[0, 1, 0, 0] = -np.inf
    x[0, 0, 0, 0] = -7.5
    stats = nonfinite_stats(x)
    assert (stats.nan, stats.posinf, stats.neginf) == (1, 1, 1)
    assert stats.first_index == (0, 1, 0, 0)
    assert stats.finite_min == -7.5 and stats.finite_max == 0.0
    assert stats.percent == pytest.approx(300 / 120)
    assert "1 NaN, 1 +Inf, 1 -Inf" in stats.describe()
    assert "(0, 1, 0, 0)" in stats.describe()


def test_overflowing_sum_of_finite_values_is_clean():
    x = np.full(1000, 3e38, dtype=np.float32)
    with np.errstate(over="ignore"):
        assert not np.isfinite(x.sum())
    assert all_finite(x)
    assert nonfinite_stats(x) is None


# finite._STREAMING: past it, one sum first; the dot chunks decide only when the sum is not finite.
@pytest.mark.parametrize("size", [1000, 3 * (1 << 17), (1 << 24) + 1])
def test_overflowing_sum_of_finite_values_is_clean_at_every_size(size):
    x = np.full(size, 3e38, dtype=np.float32)
    with np.errstate(over="ignore"):
        assert np.isinf(x.sum())
    assert all_finite(x)
    x[-1] = np.inf
    x[0] = -np.inf  # their sum is NaN, not Inf: still caught
    assert nonfinite_stats(x).posinf == 1 and nonfinite_stats(x).neginf == 1


def test_all_bad_has_no_finite_range():
    stats = nonfinite_stats(np.full(4, np.nan, dtype=np.float32))
    assert stats.count == 4 and stats.finite_min is None
    assert "no finite values" in stats.describe()


def test_integer_and_empty_arrays_are_finite():
    assert all_finite(np.arange(10))
    assert all_finite(np.zeros(0, dtype=np.float32))


CHUNK = 1 << 17  # finite._CHUNK: the clean path reads the array in chunks of this many elements


@pytest.mark.parametrize("where", [0, CHUNK - 1, CHUNK, 2 * CHUNK + 5, 3 * CHUNK - 1])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_single_bad_value_is_found_on_either_side_of_a_chunk_boundary(where, bad):
    x = np.ones(3 * CHUNK, dtype=np.float32)
    x[where] = bad
    assert not all_finite(x)
    stats = nonfinite_stats(x)
    assert stats.count == 1 and stats.first_index == (where,)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_every_float_width(dtype):
    x = np.zeros((4, 5), dtype=dtype)
    assert all_finite(x)
    x[3, 4] = np.inf
    assert nonfinite_stats(x).posinf == 1


def test_non_contiguous_views_and_complex_arrays():
    x = np.zeros((64, 64), dtype=np.float32)
    x[1, 0] = np.nan
    assert all_finite(x[::2])  # the NaN's row is skipped by the view
    assert not all_finite(x.T)
    assert nonfinite_stats(x.T).first_index == (0, 1)
    z = np.zeros(8, dtype=np.complex64)
    assert all_finite(z)
    z[5] = complex(0, np.inf)
    assert not all_finite(z)


@pytest.mark.parametrize("size", [1, 1000, CHUNK + 3])
@pytest.mark.parametrize("value", [np.finfo(np.float32).smallest_subnormal, 1e-21, -3e38])
def test_tiny_and_huge_values_are_finite(size, value):
    x = np.full(size, value, dtype=np.float32)
    assert all_finite(x)


# Short arrays, and around CHUNK: the tails a BLAS kernel handles apart from its vector loop.
@pytest.mark.parametrize("size", [1, 2, 7, 17, 33, 1000, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 13])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_bad_value_is_found_at_either_end_of_any_size(size, dtype):
    x = np.linspace(-5, 5, size, dtype=dtype)
    assert all_finite(x)
    for where in sorted({0, 1, *range(size - 17, size)} & set(range(size))):
        for bad in (np.nan, np.inf, -np.inf):
            x[where] = bad
            assert not all_finite(x), (where, bad)
        x[where] = 0.5


# inf * 0 raises the "invalid" flag, which np.dot would report (np.vdot does not).
@pytest.mark.parametrize("size", [100, CHUNK + 1, (1 << 24) + 1])
def test_a_bad_value_gives_no_numpy_warning_nor_error(size):
    x = np.ones(size, dtype=np.float32)
    x[size // 2] = np.inf
    x[-1] = -np.inf
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        assert not all_finite(x)
        assert nonfinite_stats(x).count == 2


@pytest.mark.parametrize("shape", [(64, 32, 32), (16, 256, 1024)])
def test_the_clean_path_makes_no_copy(shape):
    x = np.ones(shape, dtype=np.float32)
    all_finite(x)
    tracemalloc.start()
    try:
        assert all_finite(x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < x.nbytes / 100


@pytest.mark.parametrize("dtype", [np.float16, ">f4", ">f8"])
def test_large_arrays_of_other_float_types(dtype):
    x = np.zeros(CHUNK + 5, dtype=dtype)
    assert all_finite(x)
    x[CHUNK + 2] = np.nan
    assert not all_finite(x)
    assert nonfinite_stats(x).first_index == (CHUNK + 2,)
