"""Helpers shared by the net rules: which layers learn weights, and what feeds a blob."""

from __future__ import annotations

from caffe_nanlayers.lint.net import Layer, Net

WEIGHTED = {
    "Convolution": "convolution_param",
    "Deconvolution": "convolution_param",
    "InnerProduct": "inner_product_param",
}


def weighted_layers(net: Net):
    """(layer, its *_param node or None) for Convolution, Deconvolution and InnerProduct."""
    for layer in net.layers:
        name = WEIGHTED.get(layer.type)
        if name:
            yield layer, layer.param(name)


def frozen(layer: Layer, index: int) -> bool:
    """Whether learnable blob ``index`` has lr_mult 0 (current format) or blobs_lr 0 (V1)."""
    params = layer.node.all("param")
    if index < len(params):
        lr = params[index].number("lr_mult")
        return lr == 0
    blobs_lr = layer.node.all("blobs_lr")
    return index < len(blobs_lr) and blobs_lr[index].value == 0


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
