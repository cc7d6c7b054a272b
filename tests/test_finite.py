"""The shared measure of non-finite values."""

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
    assert not np.isfinite(x.sum())
    assert all_finite(x)
    assert nonfinite_stats(x) is None


def test_all_bad_has_no_finite_range():
    stats = nonfinite_stats(np.full(4, np.nan, dtype=np.float32))
    assert stats.count == 4 and stats.finite_min is None
    assert "no finite values" in stats.describe()


def test_integer_and_empty_arrays_are_finite():
    assert all_finite(np.arange(10))
    assert all_finite(np.zeros(0, dtype=np.float32))
