"""scan_net: which layers a phase keeps, how a data layer is made deterministic, the scan net's shape."""

from __future__ import annotations

import json

import pytest

from caffe_nanlayers.errors import UserError
from caffe_nanlayers.proto_io import caffe_pb2, parse_text
from caffe_nanlayers.scan.scan_net import (
    SCAN_LAYER_NAME,
    build_scan_net,
    choose_data_layers,
    deterministic_copy,
    layers_in_phase,
)

pytestmark = pytest.mark.caffe


def net(text: str):
    return parse_text(text, caffe_pb2().NetParameter(), "net.prototxt")


NET = """
layer { name: "train" type: "Data" top: "data" top: "label" include { phase: TRAIN }
  data_param { source: "t" batch_size: 8 rand_skip: 100 mirror: true }
  transform_param { mirror: true crop_size: 4 scale: 0.5 mean_value: 10 } }
layer { name: "test" type: "Data" top: "data" top: "label" include { phase: TEST }
  data_param { source: "v" batch_size: 8 } transform_param { crop_size: 4 } }
layer { name: "staged" type: "HDF5Data" top: "extra" include { phase: TRAIN stage: "deep" }
  hdf5_data_param { source: "l" batch_size: 8 shuffle: true } }
layer { name: "no_test" type: "DummyData" top: "noise" exclude { phase: TEST } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" }
"""


def names(layers):
    return [layer.name for layer in layers]


def test_layers_in_phase_follows_caffes_include_exclude_and_stage_rules(caffe):
    pb2 = caffe_pb2()
    assert names(layers_in_phase(net(NET), pb2.TRAIN)) == ["train", "no_test", "ip"]
    assert names(layers_in_phase(net(NET), pb2.TEST)) == ["test", "ip"]
    state = pb2.NetState(stage=["deep"])
    assert names(layers_in_phase(net(NET), pb2.TRAIN, state)) == ["train", "staged", "no_test", "ip"]
    leveled = net('layer { name: "a" type: "Data" top: "d" include { min_level: 1 } }')
    assert names(layers_in_phase(leveled, pb2.TRAIN)) == []
    assert names(layers_in_phase(leveled, pb2.TRAIN, pb2.NetState(level=1))) == ["a"]


def test_old_v1_layers_and_include_with_exclude_are_refused(caffe):
    pb2 = caffe_pb2()
    with pytest.raises(UserError, match="V1"):
        layers_in_phase(net('layers { name: "d" type: DATA top: "data" }'), pb2.TRAIN)
    both = net('layer { name: "d" type: "Data" top: "x" include { phase: TRAIN } exclude { phase: TEST } }')
    with pytest.raises(UserError, match="include or exclude rules, not both"):
        layers_in_phase(both, pb2.TRAIN)


def test_choose_data_layers_scans_readers_and_says_why_others_are_skipped(caffe):
    layers = net(
        NET
        + 'layer { name: "py" type: "Python" top: "x" python_param { module: "m" layer: "L" } }'
        + 'layer { name: "in" type: "Input" top: "y" }'
        + 'layer { name: "win" type: "WindowData" top: "w" }'
    ).layer
    choice = choose_data_layers(layers)
    assert names(choice.scanned) == ["train", "test", "staged", "py"]
    skipped = dict(choice.skipped)
    assert skipped["no_test"].startswith("DummyData layer: nothing to scan")
    assert skipped["in"].startswith("Input layer: nothing to scan")
    assert skipped["win"].startswith("WindowData layer: not supported")


def test_deterministic_copy_in_train_drops_randomness_and_keeps_scale_and_mean(caffe):
    pb2 = caffe_pb2()
    original = net(NET).layer[0]
    copy, notes = deterministic_copy(original, pb2, pb2.TRAIN)
    assert not copy.include and not copy.exclude
    assert (copy.transform_param.mirror, copy.data_param.mirror, copy.data_param.rand_skip) == (
        False,
        False,
        0,
    )
    assert copy.transform_param.crop_size == 4 and copy.phase == pb2.TEST  # Caffe's centre crop
    assert (copy.transform_param.scale, list(copy.transform_param.mean_value)) == (0.5, [10.0])
    assert (
        original.transform_param.mirror and original.data_param.rand_skip == 100
    )  # the user's net is untouched
    assert any("random crop made the centre crop" in n for n in notes)
    assert any("rand_skip turned off" in n for n in notes)


def test_deterministic_copy_in_test_keeps_the_fixed_centre_crop_and_drops_hdf5_shuffle(caffe):
    pb2 = caffe_pb2()
    copy, notes = deterministic_copy(net(NET).layer[1], pb2, pb2.TEST)
    assert copy.transform_param.crop_size == 4 and not copy.HasField("phase") and notes == []
    copy, notes = deterministic_copy(net(NET).layer[2], pb2, pb2.TRAIN)
    assert not copy.hdf5_data_param.shuffle and notes == ["layer 'staged': shuffle turned off"]


def test_build_scan_net_puts_the_dummy_loss_on_every_top(caffe):
    pb2 = caffe_pb2()
    layers = [net(NET).layer[0], net(NET).layer[2]]
    scan = build_scan_net(layers, {"sources": [], "bottoms": []}, pb2)
    assert names(scan.layer) == ["train", "staged", SCAN_LAYER_NAME]
    loss = scan.layer[-1]
    assert list(loss.bottom) == ["data", "label", "extra"]
    assert (loss.type, list(loss.loss_weight)) == ("Python", [1.0])
    assert json.loads(loss.python_param.param_str) == {"sources": [], "bottoms": []}
    with pytest.raises(UserError, match="same top 'data'"):
        build_scan_net([net(NET).layer[0], net(NET).layer[1]], {}, pb2)
