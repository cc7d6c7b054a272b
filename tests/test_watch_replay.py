"""Where the replay starts and how far the data layers are advanced; the snapshots' checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from caffe_nanlayers.diagnose.watch_log import Snapshot
from caffe_nanlayers.diagnose.watch_replay import (
    ReplayStart,
    batches_to_skip,
    choose_start,
    unreproducible,
    weights_finite,
)
from caffe_nanlayers.proto_io import caffe_pb2, parse_text


@pytest.mark.parametrize(
    ("iterations", "iter_size", "records", "batch", "expected"),
    [
        (0, 1, 10, 4, 0),
        (10, 1, 50, 4, 10),  # 40 records read of 50: no wrap yet
        (30, 1, 50, 4, 5),  # positions repeat every 50/gcd(50, 4) = 25 batches
        (8, 2, 50, 4, 16),  # iter_size: two batches an iteration
        (140, 1, 10, 4, 0),  # 560 records = 56 passes exactly
        (7, 1, 64, 64, 0),  # a batch the size of the dataset: every batch is the same
    ],
)
def test_batches_to_skip(iterations, iter_size, records, batch, expected):
    assert batches_to_skip(iterations, iter_size, records, batch) == expected


@pytest.mark.parametrize("records", [7, 10, 50, 64])
@pytest.mark.parametrize("batch", [3, 4, 64])
def test_skipping_lands_where_the_run_read(records, batch):
    """A reader wrapping record by record, advanced by the skip, reads what the run read next."""
    for iterations in (0, 1, 5, 23, 100):
        run_position = iterations * batch % records
        skipped_position = batches_to_skip(iterations, 1, records, batch) * batch % records
        assert skipped_position == run_position


def snap(iteration, complete=True, state=True):
    return Snapshot(
        iteration,
        f"s_iter_{iteration}.caffemodel",
        f"s_iter_{iteration}.solverstate" if state else None,
        1,
        complete,
    )


def test_the_newest_complete_snapshot_at_or_before_the_nan():
    start, notes = choose_start([snap(100), snap(200), snap(300), snap(400, complete=False)], 300)
    assert start == ReplayStart(300, "s_iter_300.solverstate", None, "snapshot")
    start, notes = choose_start([snap(100), snap(200), snap(400)], 350)
    assert start.iteration == 200
    assert notes == ["s_iter_400.caffemodel: written after the first sign (iteration 350), not used"]


def test_a_snapshot_cut_short_or_unusable_is_passed_over():
    start, notes = choose_start([snap(100), snap(200, complete=False)], 250)
    assert start.iteration == 100 and "had not finished writing" in notes[0]
    start, notes = choose_start(
        [snap(100), snap(200)], 250, usable=lambda s: s.iteration < 200 or "weights already non-finite"
    )
    assert start.iteration == 100 and notes == ["s_iter_200.caffemodel: weights already non-finite, not used"]


def test_without_a_snapshot_the_run_s_own_start():
    resumed = ReplayStart(50, "old_iter_50.solverstate", None, "resumed")
    assert choose_start([], 70, resumed=resumed)[0] == resumed
    assert choose_start([], 70, weights="init.caffemodel")[0] == ReplayStart(
        0, None, "init.caffemodel", "weights"
    )
    assert choose_start([], 70)[0].kind == "initial"


def test_weights_finite_reads_a_caffemodel(tmp_path, make_net):
    net = make_net(
        'input: "x" input_shape { dim: 1 dim: 3 }\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"\n'
        "  inner_product_param { num_output: 2 weight_filler { type: 'xavier' } } }\n"
    )
    good = tmp_path / "good.caffemodel"
    net.save(str(good))
    assert weights_finite(str(good)) is True
    net.params["ip"][0].data[0, 1] = np.nan
    bad = tmp_path / "bad.caffemodel"
    net.save(str(bad))
    assert weights_finite(str(bad)) == "weights of layer ip are already non-finite"
    cut = tmp_path / "cut.caffemodel"
    cut.write_bytes(good.read_bytes()[:-7])
    assert weights_finite(str(cut)) == "not a complete .caffemodel"
    assert math.isfinite(float(net.params["ip"][0].data[0, 0]))


def parse(text, kind):
    pb2 = caffe_pb2()
    return parse_text(text, getattr(pb2, kind)(), "<test>")


def test_what_makes_a_replay_approximate():
    net = parse(
        'layer { name: "d" type: "Data" top: "x" top: "y"\n'
        '  data_param { source: "a" batch_size: 2 rand_skip: 5 } }\n'
        'layer { name: "h" type: "HDF5Data" top: "z"\n'
        '  hdf5_data_param { source: "l" batch_size: 2 shuffle: true } }\n'
        'layer { name: "m" type: "Data" top: "w" transform_param { mirror: true }\n'
        '  data_param { source: "b" batch_size: 2 } }\n'
        'layer { name: "p" type: "Python" top: "q" python_param { module: "m" layer: "L" } }\n'
        'layer { name: "t" type: "Data" top: "v" include { phase: TEST }\n'
        '  data_param { source: "c" rand_skip: 9 } }\n'
        'layer { name: "drop" type: "Dropout" bottom: "x" top: "x" }\n',
        "NetParameter",
    )
    solver = parse('base_lr: 0.1 lr_policy: "fixed"', "SolverParameter")
    reasons = unreproducible(net, solver, ReplayStart(0, None, None, "initial"))
    assert [r.split(":")[0].split(" (")[0] for r in reasons] == [
        "layer 'd'",
        "layer 'h'",
        "layer 'm'",
        "layer 'p'",
        "layer 'drop'",
        "no snapshot before the NaN and no random_seed in the solver",
    ]
    solver.random_seed = 1
    clean = parse(
        'layer { name: "d" type: "Data" top: "x" data_param { source: "a" batch_size: 2 } }', "NetParameter"
    )
    assert unreproducible(clean, solver, ReplayStart(0, None, None, "initial")) == []


def test_a_test_net_reading_training_s_stream_makes_it_approximate():
    """Caffe 1.0 shares one reader per layer name and source: testing takes records out of training's."""
    net = parse(
        'layer { name: "d" type: "Data" top: "x" data_param { source: "a" batch_size: 2 } }\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "x" top: "y"\n'
        "  inner_product_param { num_output: 1 } }\n",
        "NetParameter",
    )
    solver = parse("base_lr: 0.1 random_seed: 1 test_iter: 2 test_interval: 10", "SolverParameter")
    start = ReplayStart(10, "s.solverstate", None, "snapshot")
    assert unreproducible(net, solver, start) == [
        "layer 'd' (Data) is read by the test net too, from the same stream as training"
    ]
    solver.test_interval = 0
    assert unreproducible(net, solver, start) == []


def test_numpy_s_own_blas_gets_one_thread():
    """The venv's numpy wheel bundles its own OpenBLAS: its thread count can be set, and numpy still works."""
    from caffe_nanlayers.diagnose.watch_replay import single_thread_numpy_blas

    x = np.arange(1000, dtype=np.float64)
    assert single_thread_numpy_blas() is True
    assert float(np.dot(x, x)) == float(sum(v * v for v in range(1000)))
