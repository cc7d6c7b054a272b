"""Replay one training iteration through an instrumented net and name the producer of the first NaN.

The train net that went bad cannot be rewound, but its last good weights
and the batch it was fed can be: the replay net is the instrumented train
net with its data layers replaced by Input layers of the same shapes, so
the very batch is fed again. Its checks raise at the first non-finite blob.

Forward, the check after layer L fires first only if every earlier check
passed: L's inputs were finite and its output is not, L is the producer.
Backward, the check after L sees the gradient arriving at L's tops, written
by the layers that consume them (directly, or through the Split layers Caffe
inserts for a blob read twice); those consumers' incoming gradients were
checked before and were finite, so the producer is the consumer whose own
outgoing gradient is non-finite. Gradients that only reach parameters
(the first layer's weights) pass no check: they are read from the
parameters' diffs afterwards.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from caffe_nanlayers.atomic import write_atomic
from caffe_nanlayers.diagnose.instrument import Instrumented, is_check_layer
from caffe_nanlayers.errors import NonFiniteError
from caffe_nanlayers.finite import nonfinite_stats
from caffe_nanlayers.proto_io import caffe_pb2, net_to_text


@dataclasses.dataclass
class Producer:
    """The layer that made the first non-finite value, and what it made."""

    layer: str
    layer_type: str
    direction: str  # "forward" | "backward"
    blob: str  # forward: the top it produced; backward: "gradient of <bottom>" or "param <i>"
    stats: object  # finite.NonFiniteStats
    check: str | None  # the check that fired (None for a parameter gradient)
    has_bottoms: bool = True
    candidates: list[str] = dataclasses.field(default_factory=list)  # several consumers, undecided
    dump_path: str | None = None

    def as_dict(self) -> dict:
        return {
            "layer": self.layer,
            "type": self.layer_type,
            "direction": self.direction,
            "blob": self.blob,
            "stats": self.stats.as_dict() if self.stats is not None else None,
            "check": self.check,
            "candidates": self.candidates,
            "dump_path": self.dump_path,
        }

    def describe(self) -> str:
        what = f"{self.blob}: {self.stats.describe()}" if self.stats is not None else self.blob
        also = f" (or {', '.join(self.candidates)})" if self.candidates else ""
        return f"layer {self.layer} ({self.layer_type}){also}, {self.direction}: {what}"


def is_source_layer(layer) -> bool:
    """A layer that makes data from nothing: the batch comes from it."""
    return not layer.bottom and layer.top and layer.type != "Parameter" and not is_check_layer(layer)


def replay_net_param(instrumented: Instrumented, shapes: dict[str, tuple[int, ...]]):
    """The instrumented net with each source layer replaced by an Input layer of the same tops."""
    pb2 = caffe_pb2()
    net = pb2.NetParameter()
    net.CopyFrom(instrumented.net)
    net.state.phase = pb2.TRAIN
    for layer in net.layer:
        if is_source_layer(layer) and all(top in shapes for top in layer.top):
            replacement = pb2.LayerParameter(name=layer.name, type="Input")
            replacement.top.extend(layer.top)
            replacement.include.extend(layer.include)
            replacement.exclude.extend(layer.exclude)
            for top in layer.top:
                replacement.input_param.shape.add().dim.extend(shapes[top])
            layer.CopyFrom(replacement)
    return net


def _layer_index(net) -> dict[str, int]:
    return {name: i for i, name in enumerate(net._layer_names)}


def gradient_producers(net, check_index: int, blob_id: int) -> list[tuple[int, int]]:
    """(layer index, bottom blob id) of the original layers whose backward wrote ``blob_id``'s diff.

    Follows the blob's version produced at ``check_index`` forward through
    in-place checks and Caffe's Split layers to the layers that read it.
    """
    found: list[tuple[int, int]] = []
    layers = net.layers
    for j in range(check_index + 1, len(layers)):
        bottoms, tops = list(net._bottom_ids(j)), list(net._top_ids(j))
        if blob_id in bottoms:
            kind = layers[j].type
            if kind == "Split":
                for top in tops:
                    found += gradient_producers(net, j, top)
            elif tops == bottoms and kind == "Python" and _is_check_object(layers[j]):
                found += gradient_producers(net, j, blob_id)
            else:
                found.append((j, blob_id))
        if blob_id in tops:
            break  # a new version of the blob starts here
    return found


def _is_check_object(layer) -> bool:
    return type(layer).__name__ in ("CheckFiniteLayer", "checkFiniteLayer")


@dataclasses.dataclass
class Replay:
    producer: Producer | None
    error: str | None  # the check's message, for the report
    net_param: object  # the replay net (to save beside the report)


def replay(
    caffe,
    instrumented: Instrumented,
    original_net,
    batch: dict[str, np.ndarray],
    weights_path: str,
    net_path: str,
) -> Replay:
    """Run forward then backward of the failing batch through the instrumented net; name the producer."""
    net_param = replay_net_param(instrumented, {name: array.shape for name, array in batch.items()})
    write_atomic(net_path, net_to_text(net_param))
    net = caffe.Net(str(net_path), str(weights_path), caffe.TRAIN)
    for name, array in batch.items():
        net.blobs[name].data[...] = array
    producer, message = find_producer(net, instrumented, original_net)
    return Replay(producer, message, net_param)


def find_producer(net, instrumented: Instrumented, original_net) -> tuple[Producer | None, str | None]:
    """Forward and backward on a live instrumented net (inputs set); the producer and the check's message."""
    from caffe_nanlayers.layers import bind_names

    bind_names(net)
    types = {layer.name: layer.type for layer in original_net.layer}
    has_bottoms = {layer.name: bool(layer.bottom) for layer in original_net.layer}
    try:
        net.forward()
        producer = _from_outputs(net, types)
        if producer is not None:
            return producer, None
        net.clear_param_diffs()
        net.backward()
    except NonFiniteError as error:
        return _from_check(net, instrumented, error, types, has_bottoms), str(error)
    return _from_param_diffs(net, types), None


def _from_outputs(net, types) -> Producer | None:
    """Every check passed forward but an output (a loss: loss layers are not checked) is bad."""
    names = list(net._blob_names)
    for output in net.outputs:
        stats = nonfinite_stats(net.blobs[output].data)
        if stats is not None:
            blob_id = names.index(output)
            writer = next(j for j in range(len(net.layers) - 1, -1, -1) if blob_id in list(net._top_ids(j)))
            while _is_check_object(net.layers[writer]):
                writer -= 1
            layer = net._layer_names[writer]
            return Producer(
                layer, types.get(layer, net.layers[writer].type), "forward", f"top {output}", stats, None
            )
    return None


def _from_check(net, instrumented, error: NonFiniteError, types, has_bottoms) -> Producer:
    index = _layer_index(net)[error.layer]
    point = instrumented.check_after(error.layer)
    after = point.after if point else _last_writer(net, index, error.blob_index)
    if error.direction == "forward":
        return Producer(
            layer=after,
            layer_type=types.get(after, "input"),
            direction="forward",
            blob=f"top {error.blob_name}",
            stats=error.stats,
            check=error.layer,
            has_bottoms=has_bottoms.get(after, False),
            dump_path=error.dump_path,
        )
    blob_id = list(net._top_ids(index))[error.blob_index]
    producers = gradient_producers(net, index, blob_id)
    names = list(net._layer_names)
    blob_names = list(net._blob_names)
    bad = []
    for j, bottom_id in producers:
        stats = nonfinite_stats(net._blobs[bottom_id].diff)
        if stats is not None:
            bad.append((names[j], stats))
    if not bad:  # the consumers' own blobs were overwritten: keep the check's view
        bad = [(names[j], error.stats) for j, _ in producers] or [(after, error.stats)]
    first, stats = bad[0]
    return Producer(
        layer=first,
        layer_type=types.get(first, net.layers[_layer_index(net)[first]].type),
        direction="backward",
        blob=f"gradient of {blob_names[blob_id]}",
        stats=stats,
        check=error.layer,
        candidates=[name for name, _ in bad[1:]],
        dump_path=error.dump_path,
    )


def _last_writer(net, index: int, bottom_index: int) -> str:
    """The last layer before ``index`` (checks aside) that wrote the check's bottom ``bottom_index``."""
    blob_id = list(net._bottom_ids(index))[bottom_index]
    for j in range(index - 1, -1, -1):
        if blob_id in list(net._top_ids(j)) and not _is_check_object(net.layers[j]):
            return net._layer_names[j]
    return "input"


def _from_param_diffs(net, types) -> Producer | None:
    """No check fired: the first layer (in backward order) whose parameter gradient is non-finite."""
    for name in reversed(list(net._layer_names)):
        if name not in net.params:
            continue
        for i, blob in enumerate(net.params[name]):
            stats = nonfinite_stats(blob.diff)
            if stats is not None:
                return Producer(name, types.get(name, "?"), "backward", f"param {i} gradient", stats, None)
    return None
