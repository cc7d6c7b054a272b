"""GradientClipLayer: bound the gradient that flows back through one point of the net.

Caffe's solver option ``clip_gradients`` rescales the gradient of all the
parameters at once. This layer works where it is placed instead: identity
forward, and backward the norm-clipping rule on the gradient arriving from
above, ``if ||g|| >= threshold: g <- threshold / ||g|| * g``, so one
exploding branch or loss cannot blow up the updates of every layer below it.

The squared norm is summed in float64 over float32 BLAS dots of chunks (see
``_sum_squares``): an exploding float32 gradient squares past float32's range
long before it is itself infinite. The same measure tells whether the
gradient is finite, so the clean path reads each blob once, about as fast as
``numpy.sum``.
"""

from __future__ import annotations

import math

import numpy as np

from caffe_nanlayers.layers.base import LABEL, NanLayer, has_memory, logger, same_memory
from caffe_nanlayers.params import Key, non_negative, positive

SCHEMA = {
    "label": LABEL,
    "threshold": Key(float, required=True, check=positive, doc="the largest norm (or |value|) let through"),
    "scope": Key(
        str,
        default="global",
        choices=("global", "blob"),
        doc="global: one L2 norm over all bottoms together; blob: each bottom on its own",
    ),
    "mode": Key(
        str,
        default="norm",
        choices=("norm", "value"),
        doc="norm: rescale g to norm threshold; value: clip each element to [-threshold, threshold]",
    ),
    "nonfinite": Key(
        str,
        default="raise",
        choices=("raise", "zero", "pass"),
        doc="a gradient that already holds NaN/Inf: raise NonFiniteError; zero it (skip this update "
        "below, logged); pass it on unchanged (logged)",
    ),
    "log_every": Key(
        int, default=100, check=non_negative, doc="log a summary every N backward passes (INFO); 0: never"
    ),
}


class GradientClipLayer(NanLayer):
    """Identity forward; clips the gradient backward. Readable counters:

    ``clip_events`` (clippings applied: at most one per backward pass with
    scope 'global', one per bottom with scope 'blob'), ``nonfinite_events``,
    ``max_norm`` (largest norm, or largest |value| in mode 'value', seen
    before clipping), ``last_norms`` (the last backward pass's, one per
    scope unit) and ``backward_passes``.
    """

    SCHEMA = SCHEMA

    def setup_layer(self, bottom, top):
        self.threshold = self.params["threshold"]
        self.clip_events = 0
        self.nonfinite_events = 0
        self.max_norm = 0.0
        self.last_norms = []
        self._window = [0, 0.0]  # clippings and largest norm since the last summary

    def forward(self, bottom, top):
        self.forward_passes += 1
        self.pass_forward(bottom, top)

    def backward(self, top, propagate_down, bottom):
        iteration = self.backward_passes
        self.backward_passes += 1
        # An empty blob adds nothing to a norm and has nothing to clip.
        flowing = [i for i in range(len(top)) if propagate_down[i] and has_memory(top[i])]
        grads = {i: top[i].diff for i in flowing}
        value_mode = self.params["mode"] == "value"
        measures = {i: _max_abs(g) if value_mode else _sum_squares(g) for i, g in grads.items()}

        bad = [i for i in flowing if not math.isfinite(measures[i])]
        zeroed = set()
        if bad:
            zeroed = self._nonfinite(bad, flowing, grads, bottom, iteration)

        # A zeroed bottom is a skipped update: clipping it would write the
        # gradient back over the zeros, or count a norm that was thrown away.
        units = [[i for i in flowing if i not in bad and i not in zeroed]]
        if self.params["scope"] == "blob":
            units = [[i] for i in units[0]]
        self.last_norms = []
        written = set(zeroed)
        for unit in units:
            if not unit:
                continue
            if value_mode:
                norm = max(measures[i] for i in unit)
            else:
                norm = math.sqrt(sum(measures[i] for i in unit))
            self.last_norms.append(norm)
            self.max_norm = max(self.max_norm, norm)
            self._window[1] = max(self._window[1], norm)
            if norm >= self.threshold and norm > 0:
                self.clip_events += 1
                self._window[0] += 1
                for i in unit:
                    if value_mode:
                        np.clip(grads[i], -self.threshold, self.threshold, out=bottom[i].diff)
                    else:
                        np.multiply(grads[i], np.float32(self.threshold / norm), out=bottom[i].diff)
                    written.add(i)
        for i in flowing:
            if i not in written and not same_memory(grads[i], bottom[i].diff):
                bottom[i].diff[...] = grads[i]
        self._maybe_log_summary()

    def _nonfinite(self, bad, flowing, grads, bottom, iteration) -> set:
        """Apply the ``nonfinite`` policy; returns the bottoms whose diff it zeroed."""
        self.nonfinite_events += 1
        found = self.measure("backward", {i: grads[i] for i in bad})
        error = self.nonfinite_error("backward", found, iteration)
        policy = self.params["nonfinite"]
        if policy == "raise":
            raise error
        zeroed = set()
        if policy == "zero":
            # The unit of clipping is the unit of zeroing: with scope 'global'
            # one bad bottom makes the whole gradient untrustworthy.
            zeroed = set(flowing if self.params["scope"] == "global" else bad)
            for i in zeroed:
                bottom[i].diff[...] = 0
        logger.warning(
            "%s\n  nonfinite: %r, so the gradient was %s",
            error,
            policy,
            "zeroed" if zeroed else "passed on unchanged",
        )
        return zeroed

    def _maybe_log_summary(self):
        every = self.params["log_every"]
        if every and self.backward_passes % every == 0:
            clipped, largest = self._window
            self.resolve_names()
            logger.info(
                "%s: clipped %d time(s) in the last %d backward passes (threshold %g), largest norm %.4g; "
                "since start: %d clipping(s), %d non-finite gradient(s), largest norm %.4g",
                self.who(), clipped, every, self.threshold, largest,
                self.clip_events, self.nonfinite_events, self.max_norm,
            )  # fmt: skip
            self._window = [0, 0.0]


_CHUNK = 1 << 16  # float32 BLAS dot stays accurate (~1e-8 relative) over this many elements


def _sum_squares(g) -> float:
    """||g||^2 in float64, at BLAS speed, without a blob-sized temporary.

    One float32 dot over a whole blob loses ~1e-4 of relative precision and
    overflows once ||g|| passes ~1.8e19; dots over chunks summed in float64
    keep ~1e-8, and a chunk that overflows (or holds NaN/Inf) is redone with
    a float64 ``einsum``, so the result is finite exactly when g is.
    """
    flat = g.reshape(-1)
    total = 0.0
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, flat.size, _CHUNK):
            chunk = flat[start : start + _CHUNK]
            part = float(np.dot(chunk, chunk))
            if not math.isfinite(part):
                part = float(np.einsum("i,i->", chunk, chunk, dtype=np.float64))
            total += part
    return total


def _max_abs(g) -> float:
    if g.size == 0:
        return 0.0
    # NaN propagates through max/min, so a bad gradient gives a non-finite measure.
    return float(max(g.max(), -g.min()))
