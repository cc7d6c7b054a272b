"""Caffe itself: AVE pooling with stride 5 > kernel 3 turns a clean input into NaN."""

import sys
from pathlib import Path

import numpy as np

from caffe_nanlayers.caffe_net import import_caffe
from caffe_nanlayers.finite import nonfinite_stats

EXAMPLES = Path(__file__).resolve().parents[2] / "prototxt_examples" / "pooling_stride"

caffe = import_caffe()
outcome = {}
for name in ("deploy_bad", "deploy_fixed"):
    net = caffe.Net(str(EXAMPLES / f"{name}.prototxt"), caffe.TEST)
    net.blobs["data"].data[...] = np.random.default_rng(0).random((1, 1, 10, 10))
    net.forward()
    stats = nonfinite_stats(net.blobs["pool1"].data)
    outcome[name] = stats
    print(f"{name}.prototxt: pool1 output {'clean' if stats is None else stats.describe()}")
sys.exit(0 if outcome["deploy_bad"] is not None and outcome["deploy_fixed"] is None else 1)
