"""Build the scan net from a user's net: its data layers, made deterministic, and the dummy loss.

The folk recipe for a NaN that comes "from the data" is: keep only the input
layers, put a dummy loss on their tops, run it over every input. For that to
name records, each position of each batch must be one known record, so the
randomness Caffe adds is turned off: shuffling, ``rand_skip``, mirroring, and
the random offset of the crop. The crop itself stays: it sets the shape of
the batch, and without it records of different sizes (encoded images,
ImageData without new_height/new_width) would not fit the batch that Caffe
shapes after its first record. In TRAIN Caffe crops at a random offset, in
TEST at the centre: a cropping layer of the scan net is given phase TEST,
so its transformer takes the centre crop. Scale, mean subtraction and the
crop are applied as Caffe applies them, because that is what the net sees.

Everything here is protobuf manipulation on ``caffe_pb2`` messages: no Caffe
runs, so each rule is unit-tested directly.
"""

from __future__ import annotations

import dataclasses
import json

from caffe_nanlayers.errors import UserError
from caffe_nanlayers.proto_io import layer_in_state

SCAN_LAYER_NAME = "nan_scan"
SCAN_LOSS_TOP = "nan_scan_loss"
SCAN_LAYER_MODULE = "caffe_nanlayers.scan.scan_layer"
SCAN_LAYER_CLASS = "ScanLayer"

# Layers that read records from somewhere the scan can name.
SCANNED_TYPES = ("Data", "HDF5Data", "ImageData")
# Layers that feed a net without a dataset to scan, and why the scan skips them.
NOTHING_TO_SCAN = {
    "Input": "its blobs are filled by your program",
    "MemoryData": "its data comes from your program (set_input_arrays)",
    "DummyData": "it generates its values (constant or random filler)",
}
UNSUPPORTED = {
    "WindowData": "its crops are sampled at random from windows files",
    "AnnotatedData": "its batch sampler picks random crops and boxes",
    "VideoData": "it reads live frames",
}


@dataclasses.dataclass(frozen=True)
class DataLayerChoice:
    """The data layers of one phase: those to scan, and those skipped with the reason."""

    scanned: list  # caffe_pb2.LayerParameter, as written by the user
    skipped: list[tuple[str, str]]  # (layer name, why)


def is_python_data_layer(layer) -> bool:
    return layer.type == "Python" and not layer.bottom and len(layer.top) > 0


def layers_in_phase(net, phase: int, state=None) -> list:
    """The layers Caffe would build for ``phase``, with the level and stages of ``state`` (a NetState)."""
    if len(net.layers):
        raise UserError(
            "the net uses the old V1 'layers { type: DATA }' format: convert it with Caffe's "
            "tools/upgrade_net_proto_text, then scan the upgraded file"
        )
    level = state.level if state is not None else net.state.level
    stages = set(state.stage if state is not None else net.state.stage)
    return [layer for layer in net.layer if layer_in_state(layer, phase, level, stages)]


def choose_data_layers(layers) -> DataLayerChoice:
    """Split the bottom-less layers into those the scan reads and those it skips (with why)."""
    scanned, skipped = [], []
    for layer in layers:
        if layer.bottom:
            continue
        if layer.type in SCANNED_TYPES or is_python_data_layer(layer):
            scanned.append(layer)
        elif layer.type in NOTHING_TO_SCAN:
            skipped.append(
                (layer.name, f"{layer.type} layer: nothing to scan, {NOTHING_TO_SCAN[layer.type]}")
            )
        elif layer.type in UNSUPPORTED:
            skipped.append((layer.name, f"{layer.type} layer: not supported, {UNSUPPORTED[layer.type]}"))
    return DataLayerChoice(scanned, skipped)


def deterministic_copy(layer, pb2, phase: int) -> tuple[object, list[str]]:
    """A copy of a data layer that reads its records in order, one record per batch position.

    Returns the copy and one note per setting that was changed, for the report.
    """
    copy = pb2.LayerParameter()
    copy.CopyFrom(layer)
    del copy.include[:]
    del copy.exclude[:]
    notes = []

    def turned_off(what):
        notes.append(f"layer {layer.name!r}: {what}")

    transform = copy.transform_param
    if transform.mirror:
        transform.mirror = False
        turned_off("mirror turned off")
    # Caffe still honours the deprecated data_param copies of the transform fields.
    data = copy.data_param
    if data.mirror:
        data.mirror = False
        turned_off("mirror turned off")
    if data.rand_skip:
        data.rand_skip = 0
        turned_off("rand_skip turned off")
    if copy.HasField("hdf5_data_param") and copy.hdf5_data_param.shuffle:
        copy.hdf5_data_param.shuffle = False
        turned_off("shuffle turned off")
    if copy.HasField("image_data_param"):
        image = copy.image_data_param
        if image.shuffle:
            image.shuffle = False
            turned_off("shuffle turned off")
        if image.rand_skip:
            image.rand_skip = 0
            turned_off("rand_skip turned off")
        if image.mirror:
            image.mirror = False
            turned_off("mirror turned off")
    # Caffe's DataTransformer crops at random in a layer of phase TRAIN and at the centre in TEST;
    # a layer's own phase field, when set, wins over the net's. (Deprecated crop_size fields are
    # moved into transform_param when Caffe upgrades the net.)
    cropped = transform.crop_size or data.crop_size or copy.image_data_param.crop_size
    layer_phase = copy.phase if copy.HasField("phase") else phase
    if cropped and layer_phase == pb2.TRAIN and not is_python_data_layer(layer):
        copy.phase = pb2.TEST
        turned_off(
            "random crop made the centre crop, as Caffe crops in TEST "
            "(the crop stays: it is what the net sees)"
        )
    return copy, notes


def build_scan_net(data_layers, scan_config: dict, pb2, name: str = "nan_scan"):
    """The scan net: ``data_layers`` (made deterministic) and the scanning dummy loss on all their tops."""
    net = pb2.NetParameter()
    net.name = name
    tops = []
    for layer in data_layers:
        net.layer.add().CopyFrom(layer)
        tops.extend(layer.top)
    if len(set(tops)) != len(tops):
        duplicate = next(top for top in tops if tops.count(top) > 1)
        raise UserError(f"two data layers of the phase write the same top {duplicate!r}")
    scan = net.layer.add()
    scan.name = SCAN_LAYER_NAME
    scan.type = "Python"
    scan.bottom.extend(tops)
    scan.top.append(SCAN_LOSS_TOP)
    scan.loss_weight.append(1.0)
    scan.python_param.module = SCAN_LAYER_MODULE
    scan.python_param.layer = SCAN_LAYER_CLASS
    scan.python_param.param_str = json.dumps(scan_config, sort_keys=True)
    return net
