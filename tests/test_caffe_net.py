"""The harness itself: real nets and solvers from text, in both phases."""

import numpy as np
import pytest

from caffe_nanlayers import caffe_net
from caffe_nanlayers.errors import UserError

NET = """
name: "harness" force_backward: true
layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 1 dim: 4 dim: 4 } } }
layer { name: "pool" type: "Pooling" bottom: "x" top: "p"
        pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
"""


def test_net_from_text_runs_forward_and_backward(make_net):
    net = make_net(NET)
    net.blobs["x"].data[...] = np.arange(32, dtype=np.float32).reshape(2, 1, 4, 4)
    net.forward()
    assert net.blobs["p"].data.shape == (2, 1, 2, 2)
    assert net.blobs["p"].data[0, 0, 0, 0] == pytest.approx((0 + 1 + 4 + 5) / 4)
    net.blobs["p"].diff[...] = 1
    net.backward()
    assert np.allclose(net.blobs["x"].diff, 0.25)


def test_phase_names(caffe):
    assert caffe_net.phase_of("train") == caffe.TRAIN
    assert caffe_net.phase_of("TEST") == caffe.TEST
    with pytest.raises(UserError, match="TRAIN or TEST"):
        caffe_net.phase_of("VAL")


def test_python_layer_registered(caffe):
    assert "Python" in caffe.layer_type_list()


def test_solver_from_text_steps(make_solver):
    net = (
        NET.replace('name: "harness" force_backward: true', 'name: "s"')
        + """
layer { name: "w" type: "InnerProduct" bottom: "p" top: "y"
        inner_product_param { num_output: 1 weight_filler { type: "constant" value: 1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "y" top: "loss" }
"""
    )
    solver = make_solver('base_lr: 0.01 lr_policy: "fixed" max_iter: 3 display: 0 solver_mode: CPU', net)
    solver.step(2)
    assert solver.iter == 2
