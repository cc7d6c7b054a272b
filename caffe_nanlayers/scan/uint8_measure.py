"""The finding of a uint8 record whose transform is not proven finite, without transforming all of it.

When the transform of 0 or of 255 is not finite somewhere in the crop (a
mean file holding a NaN, a scale that overflows), every record may come out
bad, and the scan must say for each one how many NaN and Inf it holds and
its finite minimum and maximum, as the net sees it. Transforming and then
measuring 150,528 values a record costs numpy several passes and a
temporary per test. This costs one subtraction and two reductions:

- a position where the transform of 0 and of 255 is finite (a *safe* one)
  is finite for every uint8 value, since ``(v - mean) * scale`` rounds
  monotonically in ``v``; only the few other positions are transformed one
  by one and counted;
- for the same reason the minimum and maximum of the safe positions'
  outputs are the outputs of the least and greatest ``v - mean``: the scale
  is applied to those two numbers only (swapped when it is negative).

Each operation is the float32 operation Caffe's DataTransformer does, in
its order, so the counts and extremes are those of the transformed record
(a test holds them to ``findings.nonfinite_finding`` of ``Transform.apply``).
Where that reasoning does not hold (a scale of 0, Inf or NaN, so tiny that
products lose their sign to zero, or no safe position at all), ``finding``
answers None and the caller transforms the record whole.
"""

from __future__ import annotations

import numpy as np

# Below this a product of the scale may round to a zero whose sign depends on the value: the
# extremes could then be -0.0 where the record holds +0.0 too, or the reverse.
SMALLEST_SCALE = 2.0**-64
_min = np.minimum.reduce
_max = np.maximum.reduce


class Uint8Measure:
    """Measures the uint8 records of one shape under one transform (see the module's docstring)."""

    def __init__(self, transform, shape: tuple[int, int, int]):
        _, height, width = shape
        self.rows, self.cols = transform.window(height, width)
        with np.errstate(all="ignore"):
            low = transform.apply(np.zeros(shape, np.float32))
            high = transform.apply(np.full(shape, 255.0, np.float32))
        unsafe = ~(np.isfinite(low) & np.isfinite(high))
        self.scale = np.float32(transform.scale)
        usable = np.isfinite(self.scale) and abs(float(self.scale)) >= SMALLEST_SCALE
        self.usable = bool(usable and not unsafe.all())
        mean = _mean_of(transform, shape, self.rows, self.cols)
        self.unsafe = np.flatnonzero(unsafe)
        self.unsafe_mean = mean.reshape(-1)[self.unsafe]
        self.safe_mean = mean.copy()
        self.safe_mean.reshape(-1)[self.unsafe] = 0  # there, v - 0 = v: the record's own values
        safe = np.flatnonzero(~unsafe)
        self.a_safe_position = int(safe[0]) if safe.size else 0
        self.buffer = np.empty(mean.shape, np.float32)

    def finding(self, pixels: np.ndarray) -> dict | None:
        """The non-finite finding of the (C, H, W) uint8 ``pixels``, None if it comes out finite.

        Only when ``usable``: otherwise the caller transforms the record whole.
        """
        differences = np.subtract(pixels[:, self.rows, self.cols], self.safe_mean, out=self.buffer)
        flat = differences.reshape(-1)
        values = flat[self.unsafe]  # the uint8 values themselves, as float32
        with np.errstate(all="ignore"):
            outputs = (values - self.unsafe_mean) * self.scale
        # The unsafe positions take a safe position's difference: the extremes are the safe ones'.
        flat[self.unsafe] = flat[self.a_safe_position]
        least, greatest = np.float32(_min(flat)) * self.scale, np.float32(_max(flat)) * self.scale
        if self.scale < 0:
            least, greatest = greatest, least
        nan = int(np.count_nonzero(np.isnan(outputs)))
        posinf = int(np.count_nonzero(outputs == np.inf))
        neginf = int(np.count_nonzero(outputs == -np.inf))
        if nan + posinf + neginf == 0:
            return None
        finite = outputs[np.isfinite(outputs)]
        if finite.size:
            least, greatest = min(least, _min(finite)), max(greatest, _max(finite))
        return {
            "kind": "nonfinite",
            "nan": nan,
            "posinf": posinf,
            "neginf": neginf,
            "size": int(flat.size),
            "min": float(least),
            "max": float(greatest),
        }


def _mean_of(transform, shape: tuple[int, int, int], rows: slice, cols: slice) -> np.ndarray:
    """The float32 mean subtracted at each position of the crop, contiguous."""
    if transform.mean is not None:
        return np.ascontiguousarray(transform.mean[:, rows, cols], dtype=np.float32)
    mean = np.zeros((shape[0], rows.stop - rows.start, cols.stop - cols.start), np.float32)
    if transform.mean_values:
        mean += np.array(transform.means_for(shape[0]), np.float32).reshape(-1, 1, 1)
    return mean
