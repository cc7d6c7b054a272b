"""label_ranges: the class range of each data top read as a label, inferred from the net."""

from __future__ import annotations

import pytest

from caffe_nanlayers.proto_io import caffe_pb2, parse_text
from caffe_nanlayers.scan.label_ranges import label_ranges

pytestmark = pytest.mark.caffe

DATA = 'layer { name: "data" type: "Data" top: "data" top: "label" }\n'


def fc(name: str, kind: str, num_output: int, bottom: str = "data") -> str:
    param = "inner_product_param" if kind == "InnerProduct" else "convolution_param"
    return (
        f'layer {{ name: "{name}" type: "{kind}" bottom: "{bottom}" top: "{name}" '
        f"{param} {{ num_output: {num_output} }} }}"
    )


def ranges(text: str, tops=("data", "label")):
    net = parse_text(DATA + text, caffe_pb2().NetParameter(), "net.prototxt")
    return label_ranges(list(net.layer), set(tops))


def test_innerproduct_before_softmaxwithloss_sets_the_range(caffe):
    (found,) = ranges(
        fc("ip2", "InnerProduct", 10)
        + 'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss"'
        "  loss_param { ignore_label: 255 } }"
    ).values()
    assert (found.top, found.num_classes, found.ignore_label) == ("label", 10, 255)
    assert found.classifier == "InnerProduct 'ip2'" and found.consumer == "SoftmaxWithLoss 'loss'"
    assert "[0, 10)" in found.describe()


def test_the_range_is_followed_through_in_place_and_softmax_layers(caffe):
    found = ranges(
        fc("fc", "Convolution", 21) + 'layer { name: "relu" type: "ReLU" bottom: "fc" top: "fc" }'
        'layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }'
        'layer { name: "loss" type: "MultinomialLogisticLoss" bottom: "prob" bottom: "label" top: "loss" }'
    )
    assert found["label"].num_classes == 21


def test_unknown_classifier_still_checks_the_sign_and_two_heads_take_the_smaller_range(caffe):
    found = ranges(
        'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "data" bottom: "label" top: "loss" }'
    )
    assert found["label"].num_classes is None
    found = ranges(
        fc("a", "InnerProduct", 10)
        + fc("b", "InnerProduct", 5)
        + 'layer { name: "la" type: "SoftmaxWithLoss" bottom: "a" bottom: "label" top: "la" }'
        'layer { name: "acc" type: "Accuracy" bottom: "b" bottom: "label" top: "acc" }'
    )
    assert (found["label"].num_classes, found["label"].consumer) == (5, "Accuracy 'acc'")


def test_labels_not_read_by_a_classification_loss_are_not_ranged(caffe):
    assert ranges('layer { name: "l" type: "EuclideanLoss" bottom: "data" bottom: "label" top: "l" }') == {}
    assert ranges('layer { name: "l" type: "SoftmaxWithLoss" bottom: "data" bottom: "other" top: "l" }') == {}
