"""Helpers shared by the net rules: which layers learn weights, and what feeds a blob."""

from __future__ import annotations

from caffe_nanlayers.lint.net import WEIGHTED, Layer, Net, frozen, has_weight_filler, weighted_layers

__all__ = ["WEIGHTED", "frozen", "has_weight_filler", "producers", "weighted_layers"]


def producers(net: Net, layer: Layer) -> list[Layer]:
    """For each bottom of ``layer``, the last earlier layer that writes it (in-place layers skipped)."""
    found = []
    for bottom in layer.bottoms:
        source = None
        for earlier in net.layers[: layer.index]:
            if any(t.value == bottom.value for t in earlier.tops) and not any(
                b.value == bottom.value for b in earlier.bottoms
            ):
                source = earlier
        found.append(source)
    return found
