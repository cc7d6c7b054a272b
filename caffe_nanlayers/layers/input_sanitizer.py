"""InputSanitizerLayer: replace NaN/±Inf in the data before they reach the net, and count them.

One corrupt record (a NaN feature, an Inf from a bad normalisation) turns the
loss into NaN and, through the update, every weight of the net. This layer
sits on the data blobs, replaces bad values (like ``numpy.nan_to_num``),
optionally clamps to a range, and counts what it did per batch and in total,
so the bad data is contained *and* visible. The backward pass lets the
gradient through except where a value was replaced or clamped: the output
there does not depend on the input, so its derivative is zero.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from caffe_nanlayers.finite import all_finite
from caffe_nanlayers.layers.base import LABEL, NanLayer, has_memory, logger
from caffe_nanlayers.params import FLOAT32_MAX, Key, float32_finite, ordered_range

SCHEMA = {
    "label": LABEL,
    "nan": Key(float, default=0.0, check=float32_finite, doc="value that replaces NaN"),
    "posinf": Key(float, default=FLOAT32_MAX, check=float32_finite, doc="value that replaces +Inf"),
    "neginf": Key(float, default=-FLOAT32_MAX, check=float32_finite, doc="value that replaces -Inf"),
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
            for mask, value in zip(masks, self.replacements):
                np.copyto(data, np.float32(value), where=mask)
            changed = masks[0] | masks[1] | masks[2]
        clip = self.params["clip"]
        if clip is not None and data.size and (data.min() < clip[0] or data.max() > clip[1]):
            outside = (data < clip[0]) | (data > clip[1])
            # A replaced value that the clamp moves again is counted once, as replaced.
            counts.clamped = int(np.count_nonzero(outside if changed is None else outside & ~changed))
            np.clip(data, clip[0], clip[1], out=data)
            changed = outside if changed is None else changed | outside
        return counts, changed

    def backward(self, top, propagate_down, bottom):
        self.backward_passes += 1
        self.pass_backward(top, propagate_down, bottom)
        for i in range(len(top)):
            changed = self._changed[i]
            if propagate_down[i] and changed is not None and changed.shape == tuple(bottom[i].shape):
                bottom[i].diff[changed] = 0
