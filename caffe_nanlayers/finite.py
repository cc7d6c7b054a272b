"""The one measure of non-finite values, shared by every layer and tool.

A check sits in the hot path of training, so the clean case must cost about
one read of the array. The sum of an array is finite only if every element
is (NaN and ±Inf propagate through addition and never come back), so one
``np.add.reduce`` answers "all finite?" with no temporary array. Only when
the sum is not finite (a bad element, or a legitimate float overflow) do we
pay for the element-wise masks that produce the full statistics.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class NonFiniteStats:
    """What a user needs to know about a blob that holds NaN or ±Inf."""

    shape: tuple[int, ...]
    nan: int
    posinf: int
    neginf: int
    first_index: tuple[int, ...]
    finite_min: float | None
    finite_max: float | None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def count(self) -> int:
        return self.nan + self.posinf + self.neginf

    @property
    def percent(self) -> float:
        return 100.0 * self.count / self.size if self.size else 0.0

    def describe(self) -> str:
        """One line: counts, share, shape, first bad index, finite range."""
        if self.finite_min is None:
            finite = "no finite values"
        else:
            finite = f"finite min {self.finite_min:.6g}, max {self.finite_max:.6g}"
        return (
            f"{self.nan} NaN, {self.posinf} +Inf, {self.neginf} -Inf "
            f"({self.count}/{self.size} = {self.percent:.3g}%) in shape {self.shape}, "
            f"first at {self.first_index}, {finite}"
        )

    def as_dict(self) -> dict:
        return {
            "shape": list(self.shape),
            "nan": self.nan,
            "posinf": self.posinf,
            "neginf": self.neginf,
            "count": self.count,
            "percent": self.percent,
            "first_index": list(self.first_index),
            "finite_min": self.finite_min,
            "finite_max": self.finite_max,
        }


def all_finite(array: np.ndarray) -> bool:
    """True when every element is finite; one pass, no temporaries on the clean path."""
    if array.dtype.kind not in "fc" or array.size == 0:
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.add.reduce(array, axis=None)
    if np.isfinite(total):
        return True
    # The sum overflowed or an element is bad: decide element-wise.
    return bool(np.isfinite(array).all())


def nonfinite_stats(array: np.ndarray) -> NonFiniteStats | None:
    """Statistics of the non-finite elements of ``array``, or None if there are none."""
    if all_finite(array):
        return None
    return _measure(np.asarray(array))


def _measure(array: np.ndarray) -> NonFiniteStats:
    finite = np.isfinite(array)
    nan = int(np.count_nonzero(np.isnan(array)))
    posinf = int(np.count_nonzero(array == np.inf))
    neginf = int(np.count_nonzero(array == -np.inf))
    flat_first = int(np.argmin(finite.reshape(-1)))
    first = tuple(int(i) for i in np.unravel_index(flat_first, array.shape))
    finite_values = array[finite]
    if finite_values.size:
        lo, hi = float(finite_values.min()), float(finite_values.max())
    else:
        lo = hi = None
    return NonFiniteStats(
        shape=tuple(int(d) for d in array.shape),
        nan=nan,
        posinf=posinf,
        neginf=neginf,
        first_index=first,
        finite_min=lo,
        finite_max=hi,
    )
