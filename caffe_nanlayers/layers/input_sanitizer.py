"""InputSanitizerLayer: replace NaN/±Inf in the data before they reach the net, and count them.

One corrupt record (a NaN feature, an Inf from a bad normalisation) turns the
loss into NaN and, through the update, every weight of the net. This layer
sits on the data blobs, replaces bad values (like ``numpy.nan_to_num``),
optionally clamps to a range, and counts what it did per batch and in total,
so the bad data is contained *and* visible. The backward pass lets the
gradient through except where a value was replaced or clamped: the output
there does not depend on the input, so its derivative is zero.

By default ±Inf become the largest and smallest finite values of the same
blob in the same batch, not float32's extremes: an Inf stays the batch's most
extreme value, yet the next layer sees only magnitudes it sees in clean
batches, so an InnerProduct after it stays finite (float32 max times any
weight above 1, or two such terms summed, overflows back to Inf at once).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from caffe_nanlayers.finite import all_finite
from caffe_nanlayers.layers.base import LABEL, NanLayer, has_memory, logger
from caffe_nanlayers.params import Key, float32_finite, ordered_range

SCHEMA = {
    "label": LABEL,
    "nan": Key(float, default=0.0, check=float32_finite, doc="value that replaces NaN"),
    "posinf": Key(
        float,
        default=None,
        check=float32_finite,
        doc="value that replaces +Inf (default: the blob's finite max)",
    ),
    "neginf": Key(
        float,
        default=None,
        check=float32_finite,
        doc="value that replaces -Inf (default: the blob's finite min)",
    ),
    "clip": Key(
        "range", default=None, check=ordered_range, doc="[lo, hi]: also clamp every value into this range"
    ),
    "mode": Key(
        str,
        default="replace",
        choices=("replace", "warn", "raise"),
        doc="replace silently (counted); warn: replace and log a warning per batch with bad values; "
        "raise NonFiniteError instead of replacing",
    ),
}


@dataclasses.dataclass
class SanitizeCounts:
    """Values replaced (by kind) and clamped, for one batch or in total."""

    nan: int = 0
    posinf: int = 0
    neginf: int = 0
    clamped: int = 0

    @property
    def replaced(self) -> int:
        return self.nan + self.posinf + self.neginf

    def __add__(self, other: SanitizeCounts) -> SanitizeCounts:
        return SanitizeCounts(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))

    def describe(self) -> str:
        return f"{self.nan} NaN, {self.posinf} +Inf, {self.neginf} -Inf replaced, {self.clamped} clamped"


class InputSanitizerLayer(NanLayer):
    """Replaces non-finite values in its bottoms' data. Readable counters:

    ``batch_counts`` (the last forward pass, all bottoms), ``batch_counts_by_bottom``
    (a list, one per bottom), ``total_counts`` (since set-up), all
    ``SanitizeCounts``; ``forward_passes`` is the number of batches.
    """

    SCHEMA = SCHEMA

    def setup_layer(self, bottom, top):
        p = self.params
        self.replacements = (p["nan"], p["posinf"], p["neginf"])
        self.batch_counts = SanitizeCounts()
        self.batch_counts_by_bottom = [SanitizeCounts() for _ in range(len(bottom))]
        self.total_counts = SanitizeCounts()
        self._changed = [None] * len(bottom)  # per bottom, mask of replaced/clamped positions (or None)

    def forward(self, bottom, top):
        iteration = self.forward_passes
        self.forward_passes += 1
        present = [has_memory(bottom[i]) for i in range(len(bottom))]  # an empty blob has nothing to sanitize
        finite = [not present[i] or all_finite(bottom[i].data) for i in range(len(bottom))]
        if self.params["mode"] == "raise" and not all(finite):
            bad = {i: bottom[i].data for i in range(len(bottom)) if not finite[i]}
            raise self.nonfinite_error("forward", self.measure("forward", bad), iteration)
        self.pass_forward(bottom, top)
        counts = []
        for i in range(len(top)):
            c, self._changed[i] = (
                self._sanitize(top[i].data, finite[i]) if present[i] else (SanitizeCounts(), None)
            )
            counts.append(c)
        self.batch_counts_by_bottom = counts
        self.batch_counts = sum(counts, SanitizeCounts())
        self.total_counts = self.total_counts + self.batch_counts
        if self.params["mode"] == "warn" and self.batch_counts.replaced:
            self.resolve_names()
            details = "; ".join(
                f"bottom {i}" + (f" {self.blob_name('forward', i)!r}" if self.blob_name("forward", i) else "")
                + f": {c.describe()}"
                for i, c in enumerate(counts)
                if c.replaced
            )  # fmt: skip
            logger.warning("%s: batch %d held non-finite input: %s", self.who(), iteration, details)

    def _sanitize(self, data, finite: bool):
        """Sanitize ``data`` in place; returns its counts and the mask of changed positions."""
        counts, changed = SanitizeCounts(), None
        if not finite:
            masks = (np.isnan(data), np.isposinf(data), np.isneginf(data))
            counts.nan, counts.posinf, counts.neginf = (int(np.count_nonzero(m)) for m in masks)
            changed = masks[0] | masks[1] | masks[2]
            for mask, value in zip(masks, self._replacements_for(data, changed)):
                np.copyto(data, np.float32(value), where=mask)
        clip = self.params["clip"]
        if clip is not None and data.size and (data.min() < clip[0] or data.max() > clip[1]):
            outside = (data < clip[0]) | (data > clip[1])
            # A replaced value that the clamp moves again is counted once, as replaced.
            counts.clamped = int(np.count_nonzero(outside if changed is None else outside & ~changed))
            np.clip(data, clip[0], clip[1], out=data)
            changed = outside if changed is None else changed | outside
        return counts, changed

    def _replacements_for(self, data, bad) -> tuple[float, float, float]:
        """What replaces NaN, +Inf and -Inf in ``data``: the given values, else its finite range's ends."""
        nan, posinf, neginf = self.replacements
        if posinf is None or neginf is None:
            finite = data[~bad]
            hi, lo = (float(finite.max()), float(finite.min())) if finite.size else (0.0, 0.0)
            posinf = hi if posinf is None else posinf
            neginf = lo if neginf is None else neginf
        return nan, posinf, neginf

    def backward(self, top, propagate_down, bottom):
        self.backward_passes += 1
        self.pass_backward(top, propagate_down, bottom)
        for i in range(len(top)):
            changed = self._changed[i]
            if propagate_down[i] and changed is not None and changed.shape == tuple(bottom[i].shape):
                bottom[i].diff[changed] = 0
