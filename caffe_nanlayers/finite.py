"""The one measure of non-finite values, shared by every layer and tool.

A check sits in the hot path of training, so the clean case must cost about
one read of the array, with no temporary array.

The clean path is a BLAS dot product of the array with zeros: ``x * 0`` is
0 for every finite ``x`` and NaN for NaN and ±Inf, so the dot is 0 exactly
when every element is finite and NaN otherwise. No overflow however large
the values (a sum, or a sum of squares, would need an exact second look),
no slow path on subnormal numbers (a sum of squares of values near 1e-21
runs 35x slower, its products being subnormal), and one SIMD read, faster
than ``numpy.sum`` and than a maximum plus a minimum. The zeros are one
fixed chunk that stays in the core's cache, so the chunk loop is the only
per-size Python cost.

It is ``np.vdot``, not ``np.dot``: NaN times zero raises the "invalid"
flag, which ``np.dot`` reports as a RuntimeWarning (or an error, under
``np.seterr``) and ``np.vdot`` does not. ``np.errstate`` would silence it,
but inside a training step, where the layers before a check have flushed
the interpreter's own data out of the caches, entering one costs about
10 µs, more than the whole check of most blobs. A step has a dozen checks,
so every call on the clean path counts.

A blob too large for any cache streams from memory, and there one sum is
the cheapest read (as cheap as the dots at 32M elements, a quarter cheaper
at 64M on the benchmark machine), so such a blob is checked by one sum: NaN
propagates and ±Inf stays ±Inf or turns NaN, so a finite sum proves every
element finite. A sum that is not finite means a bad element or finite
values whose sum overflowed float32; only then the dots decide, exactly.
Other dtypes and non-contiguous views take a maximum and a minimum (a
finite maximum and a finite minimum mean every element is finite). Only
when something is not finite do we pay for the element-wise masks that
produce the full statistics.
"""

from __future__ import annotations

import dataclasses
import math

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


# 128K float32 = 512 KiB of zeros: fits in a core's L2 cache with room to
# spare, and is large enough that the per-chunk Python overhead stays under
# a few %.
_CHUNK = 1 << 17
# 16M float32 = 64 MiB: past this, a blob no longer sits in a last-level
# cache and one streaming sum beats the dot chunks (the crossover measured
# on the benchmark machine lies between 16M and 32M elements).
_STREAMING = 1 << 24


def _read_only_zeros(dtype) -> np.ndarray:
    zeros = np.zeros(_CHUNK, dtype=dtype)
    zeros.flags.writeable = False
    return zeros


_ZEROS = {np.dtype(t): _read_only_zeros(t) for t in (np.float32, np.float64)}
_max = np.maximum.reduce
_min = np.minimum.reduce
_sum = np.add.reduce
_vdot = np.vdot
_finite = math.isfinite


def all_finite(array: np.ndarray) -> bool:
    """True when every element is finite; about one read, no temporaries on the clean path."""
    zeros = _ZEROS.get(array.dtype)
    if zeros is None or not array.flags.c_contiguous:
        return _all_finite_other(array)
    n = array.size
    if n <= _CHUNK:
        return _finite(_vdot(array, zeros[:n]))  # vdot flattens a contiguous array without a copy
    flat = array.reshape(-1)
    if n > _STREAMING:
        with np.errstate(over="ignore", invalid="ignore"):
            if _finite(_sum(flat)):
                return True
    whole = n - n % _CHUNK
    for i in range(0, whole, _CHUNK):
        if not _finite(_vdot(flat[i : i + _CHUNK], zeros)):
            return False  # the dirty path stops at the first bad chunk
    return whole == n or _finite(_vdot(flat[whole:], zeros[: n - whole]))


def _max_min_chunks(flat: np.ndarray) -> bool:
    for i in range(0, flat.size, _CHUNK):
        chunk = flat[i : i + _CHUNK]
        if not (_finite(_max(chunk)) and _finite(_min(chunk))):
            return False
    return True


def _all_finite_other(array: np.ndarray) -> bool:
    """Other dtypes and non-contiguous views: a maximum and a minimum, which make no temporary."""
    kind = array.dtype.kind
    if kind == "c":
        return all_finite(array.real) and all_finite(array.imag)
    if kind != "f":
        return True  # integers, booleans, objects: nothing to check
    if array.dtype.itemsize > 8:  # long double: its extremes would not fit a Python float
        return bool(np.isfinite(array).all())
    if array.size == 0:
        return True
    if not array.flags.c_contiguous:
        return _finite(_max(array, axis=None)) and _finite(_min(array, axis=None))
    return _max_min_chunks(array.reshape(-1))


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
