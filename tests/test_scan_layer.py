"""scan_layer: the dummy loss measures each record of a real Caffe batch; its pure helpers alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from caffe_nanlayers.scan.findings import bad_label_rows, record_positions


def test_record_positions_stop_at_the_end_of_the_first_pass():
    assert [record_positions(f, 4, 10) for f in range(4)] == [4, 4, 2, 0]
    assert record_positions(7, 4, None) == 4


def test_bad_label_rows_flags_negative_fractional_and_too_large_but_not_ignored_or_nonfinite():
    labels = np.array([0, 3, 4, -1, 2.5, 255, np.nan, np.inf, -np.inf], np.float32)
    assert bad_label_rows(labels, 4, 255).tolist() == [2, 3, 4]  # +Inf >= 4 is left to the non-finite check
    assert bad_label_rows(labels, None, None).tolist() == [3, 4]
    per_pixel = np.array([[0, 1], [1, 9]], np.float32)
    assert bad_label_rows(per_pixel, 5, None).tolist() == [1]


@pytest.mark.caffe
def test_scan_layer_in_a_real_net_reports_records_with_counts_and_ignores_wrapped_positions(make_net):
    config = {
        "sources": [{"batch_size": 3, "records": 5}],
        "bottoms": [
            {"source": 0, "top": "data", "label": None},
            {"source": 0, "top": "label", "label": {"num_classes": 3, "ignore_label": None}},
        ],
    }
    net = make_net(
        'layer { name: "in" type: "Input" top: "data" top: "label"'
        "  input_param { shape { dim: 3 dim: 2 } shape { dim: 3 } } }"
        'layer { name: "scan" type: "Python" bottom: "data" bottom: "label" top: "loss" loss_weight: 1'
        '  python_param { module: "caffe_nanlayers.scan.scan_layer" layer: "ScanLayer"'
        f"  param_str: '{json.dumps(config)}' }} }}"
    )
    layer = net.layers[1]
    net.blobs["data"].data[...] = [[1, np.nan], [2, 3], [np.inf, -np.inf]]
    net.blobs["label"].data[...] = [0, 7, 1]
    assert net.forward()["loss"] == 0
    # Second batch: records 3 and 4, then position 2 wraps to record 0 and is not counted again.
    net.blobs["data"].data[...] = [[0, 0], [0, 0], [np.nan, np.nan]]
    net.blobs["label"].data[...] = [1, 1, 9]
    net.forward()
    summary = [(f["record"], f["top"], f["kind"], f["nan"], f["posinf"], f["neginf"]) for f in layer.findings]
    assert summary == [
        (0, "data", "nonfinite", 1, 0, 0),
        (2, "data", "nonfinite", 0, 1, 1),
        (1, "label", "label", 0, 0, 0),
    ]
    assert (layer.findings[0]["min"], layer.findings[0]["max"]) == (1.0, 1.0)
    assert (layer.findings[2]["label"], layer.findings[2]["batch"], layer.findings[2]["position"]) == (
        7,
        0,
        1,
    )
    assert layer.scanned == [5]
