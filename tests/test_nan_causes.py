"""Every known cause of NaN/Inf, reproduced in real Caffe, and the tool that catches it.

One row of ``CAUSES`` per cause of the catalogue (``diagnose/causes.py``):
the net (and solver) that goes NaN for that reason alone, with data made
here (DummyData fillers, a small HDF5 file), and what each tool must say
about it:

- ``lint``: the prototxt code lint-prototxt gives on the same text, before
  any training (configuration causes);
- ``check``: the blob a CheckFiniteLayer watches; the test puts one there,
  runs one forward and backward, and expects NonFiniteError from it in the
  given direction;
- ``locate``: ``caffe-nan locate`` trains with the solver until the first
  NaN and must name the row's cause, and the producing layer and direction.

A row that leaves a tool out does so because that tool cannot see the cause
(a learning rate is not a layer; a bad record is not a setting). Each
reproduction asserts that NaN/Inf really appears in real Caffe.
"""

from __future__ import annotations

import dataclasses
import math
import re

import h5py
import numpy as np
import pytest
from conftest import EXAMPLES
from nan_test_layers import python_layer

from caffe_nanlayers import NonFiniteError
from caffe_nanlayers.diagnose.causes import CATALOGUE
from caffe_nanlayers.diagnose.locate import LocateOptions, locate
from caffe_nanlayers.finite import all_finite, nonfinite_stats
from caffe_nanlayers.lint import Options, lint_text
from caffe_nanlayers.scan import scan

FIXED_LR = 'base_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 30\nrandom_seed: 1\n'

# 8 samples, 16 features, a label in [0, 4): the batch most rows start from.
CLASSES = """
layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 8 dim: 16 } shape { dim: 8 }
    data_filler { type: "gaussian" std: STD } data_filler { type: "uniform" min: 0 max: 3.99 } } }
layer { name: "fc1" type: "InnerProduct" bottom: "data" top: "fc1"
  inner_product_param { num_output: 16 weight_filler { type: "xavier" } } }
layer { name: "fc2" type: "InnerProduct" bottom: "fc1" top: "fc2"
  inner_product_param { num_output: 4 weight_filler { type: "xavier" } } }
"""

REGRESSION = """
layer { name: "data" type: "DummyData" top: "data" top: "target"
  dummy_data_param { shape { dim: 8 dim: 4 } shape { dim: 8 dim: 1 }
    data_filler { type: "gaussian" std: 1 } data_filler { type: "gaussian" std: 1 } } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
  inner_product_param { num_output: 1 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "fc" bottom: "target" top: "loss" }
"""

EXPLODE = (EXAMPLES / "diagnose" / "explode_bad.prototxt").read_text()

# AVE pooling, kernel 3, stride 5 on 10x10: the last output row and column pool empty windows (0/0).
POOLING = """
layer { name: "data" type: "DummyData" top: "data" top: "target"
  dummy_data_param { shape { dim: 2 dim: 1 dim: 10 dim: 10 } shape { dim: 2 dim: 1 }
    data_filler { type: "gaussian" std: 1 } data_filler { type: "gaussian" std: 1 } } }
layer { name: "pool1" type: "Pooling" bottom: "data" top: "pool1"
  pooling_param { pool: AVE kernel_size: 3 stride: 5 } }
{check}
layer { name: "fc" type: "InnerProduct" bottom: "pool1" top: "fc"
  inner_product_param { num_output: 1 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "fc" bottom: "target" top: "loss" }
"""

# Channel 3 is negative for every sample: the ReLU kills it, its batch variance is exactly 0,
# and with eps 0 BatchNorm computes (0 - 0) / sqrt(0 + 0).
BATCHNORM = """
layer { name: "data" type: "DummyData" top: "live" top: "dead" top: "target"
  dummy_data_param { shape { dim: 8 dim: 3 } shape { dim: 8 dim: 1 } shape { dim: 8 dim: 1 }
    data_filler { type: "gaussian" std: 1 } data_filler { type: "uniform" min: -2 max: -1 }
    data_filler { type: "gaussian" std: 1 } } }
layer { name: "concat" type: "Concat" bottom: "live" bottom: "dead" top: "x" }
layer { name: "relu" type: "ReLU" bottom: "x" top: "x" }
layer { name: "bn" type: "BatchNorm" bottom: "x" top: "bn" batch_norm_param { eps: 0 } }
{check}
layer { name: "fc" type: "InnerProduct" bottom: "bn" top: "fc"
  inner_product_param { num_output: 1 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "fc" bottom: "target" top: "loss" }
"""

# sqrt after a ReLU: forward sqrt(0) = 0 is fine, but Caffe's Power backward computes
# the derivative as top / bottom * power: 0/0 = NaN on every unit the ReLU zeroed.
SPARSITY = """
layer { name: "data" type: "DummyData" top: "data" top: "target"
  dummy_data_param { shape { dim: 8 dim: 4 } shape { dim: 8 dim: 1 }
    data_filler { type: "gaussian" std: 1 } data_filler { type: "gaussian" std: 1 } } }
layer { name: "fc1" type: "InnerProduct" bottom: "data" top: "fc1"
  inner_product_param { num_output: 8 weight_filler { type: "xavier" } } }
layer { name: "relu" type: "ReLU" bottom: "fc1" top: "fc1" }
{check}
layer { name: "sqrt" type: "Power" bottom: "fc1" top: "sqrt" power_param { power: 0.5 } }
layer { name: "fc2" type: "InnerProduct" bottom: "sqrt" top: "fc2"
  inner_product_param { num_output: 1 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "fc2" bottom: "target" top: "loss" }
"""

# Scores this large (inputs with std 1000) put a label about 1000 below the top class: its
# softmax probability underflows to exactly 0 and the unclamped log makes the loss +inf.
NAIVE_XENT = (
    CLASSES.replace("STD", "1000")
    + 'layer { name: "prob" type: "Softmax" bottom: "fc2" top: "prob" }\n'
    + python_layer(
        "xent", "NaiveCrossEntropyLayer", ["prob", "label"], ["loss"], module="nan_test_layers"
    ).replace('top: "loss"', 'top: "loss" loss_weight: 1')
    + "{check}\n"
)

# InfogainLoss (this Caffe's: no softmax inside) fed raw scores: scores <= 0 are clamped to
# 1e-20, the gradient -H/p is 1e20 / batch, and two updates later the weights overflow.
INFOGAIN = (
    CLASSES.replace("STD", "1")
    + 'layer { name: "loss" type: "InfogainLoss" bottom: "fc2" bottom: "label" top: "loss"\n'
    + '  infogain_loss_param { source: "{dir}/H.binaryproto" } }\n'
)

# A record with +inf, at row 13: the 7th batch of 2.
HDF5_NET = """
layer { name: "data" type: "HDF5Data" top: "data" top: "target"
  hdf5_data_param { source: "{dir}/train.txt" batch_size: 2 } }
{check}
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
  inner_product_param { num_output: 1 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "fc" bottom: "target" top: "loss" }
"""

# A float32 net whose activations (about 1024 * 127 = 130000) are finite but past float16's 65504.
FLOAT16 = (
    """
layer { name: "data" type: "DummyData" top: "data" top: "target"
  dummy_data_param { shape { dim: 2 dim: 1024 } shape { dim: 2 dim: 4 }
    data_filler { type: "uniform" min: 0 max: 255 } data_filler { type: "constant" value: 0 } } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
  inner_product_param { num_output: 4 weight_filler { type: "constant" value: 1 } } }
"""
    + python_layer("fp16", "Float16StorageLayer", ["fc"], ["fc16"], module="nan_test_layers")
    + "{check}\n"
    + 'layer { name: "loss" type: "EuclideanLoss" bottom: "fc16" bottom: "target" top: "loss" }\n'
)


def deep_gaussian_net(depth: int = 40, width: int = 256) -> str:
    """Pixels in 0..255 through InnerProduct layers whose gaussian fillers lack std (so std 1).

    Each layer multiplies the scale by about sqrt(width) = 16; float32 overflows
    after about 30 of them (without ReLU, which would only slow it down).
    """
    layers = [
        'layer { name: "data" type: "DummyData" top: "data" top: "label"\n'
        f"  dummy_data_param {{ shape {{ dim: 2 dim: {width} }} shape {{ dim: 2 }}\n"
        '    data_filler { type: "uniform" min: 0 max: 255 } data_filler { type: "constant" value: 1 } } }'
    ]
    bottom = "data"
    for k in range(1, depth + 1):
        outputs = width if k < depth else 10
        layers.append(
            f'layer {{ name: "fc{k}" type: "InnerProduct" bottom: "{bottom}" top: "fc{k}"\n'
            f'  inner_product_param {{ num_output: {outputs} weight_filler {{ type: "gaussian" }} }} }}'
        )
        layers.append(f"{{check_fc{k}}}")
        bottom = f"fc{k}"
    layers.append(
        f'layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "{bottom}" bottom: "label" top: "loss" }}'
    )
    return "\n".join(layers) + "\n"


def write_infogain_matrix(directory, caffe):
    blob = caffe.io.array_to_blobproto(np.eye(4, dtype=np.float32).reshape(1, 1, 4, 4))
    (directory / "H.binaryproto").write_bytes(blob.SerializeToString())


def write_hdf5_with_inf(directory, caffe):
    data = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)
    data[13, 1] = np.inf
    with h5py.File(directory / "train.h5", "w") as f:
        f["data"] = data
        f["target"] = data[:, :1]
    (directory / "train.txt").write_text(f"{directory / 'train.h5'}\n")


@dataclasses.dataclass(frozen=True)
class Reproduction:
    cause: str  # the catalogue id
    net: str  # prototxt; "{check}" marks where a CheckFiniteLayer goes, "{dir}" the test's directory
    solver: str = FIXED_LR
    files: object = None  # files(directory, caffe) writes the data the net reads
    lint: tuple[str, str] | None = None  # ("net" | "solver" | text prefix, code)
    check: tuple[str, str] | None = None  # (blob watched at "{check}", direction it fires in)
    trains: bool = True  # False: nothing to train here, locate is not the tool
    locate: tuple[str, str] | None = None  # (producing layer, direction) locate must name
    locate_iteration: int | None = None  # the iteration of the first NaN


CAUSES = [
    Reproduction(
        "gradient_explosion",
        EXPLODE,
        solver='base_lr: 0.5\nlr_policy: "fixed"\nmomentum: 0.9\nmax_iter: 50\nrandom_seed: 1\n',
        lint=("solver", "NAN205"),
    ),
    Reproduction(
        "lr_policy",
        REGRESSION,
        solver='base_lr: 0.01\nlr_policy: "poly"\npower: 0.5\nmomentum: 0.9\nrandom_seed: 1\n',
        lint=("solver", "NAN203"),
        locate_iteration=0,
    ),
    Reproduction(
        "loss_layer",
        INFOGAIN,
        files=write_infogain_matrix,
        lint=("net", "NAN106"),
        locate=("fc2", "forward"),
        locate_iteration=2,
    ),
    Reproduction(
        "bad_input",
        HDF5_NET,
        files=write_hdf5_with_inf,
        check=("data", "forward"),
        locate=("data", "forward"),
        locate_iteration=6,
    ),
    Reproduction(
        "pooling_stride",
        POOLING,
        lint=("net", "NAN101"),
        check=("pool1", "forward"),
        locate=("pool1", "forward"),
        locate_iteration=0,
    ),
    Reproduction(
        "batchnorm",
        BATCHNORM,
        lint=("net", "NAN107"),
        check=("bn", "forward"),
        locate=("bn", "forward"),
        locate_iteration=0,
    ),
    Reproduction(
        "sparsity",
        SPARSITY,
        check=("fc1", "backward"),
        locate=("sqrt", "backward"),
        locate_iteration=0,
    ),
    Reproduction(
        "float16",
        FLOAT16,
        lint=("default_forward_type: FLOAT16\n", "NAN108"),
        check=("fc16", "forward"),
        trains=False,  # the float16 storage is emulated: locate would see a Python layer's Inf
    ),
    Reproduction(
        "fillers",
        deep_gaussian_net(),
        lint=("net", "NAN104"),
        locate=(r"fc\d+", "forward"),
        locate_iteration=0,
    ),
    Reproduction(
        "log0",
        NAIVE_XENT,
        check=("loss", "forward"),
        locate=("xent", "forward"),
        locate_iteration=0,
    ),
]
BY_CAUSE = {r.cause: r for r in CAUSES}

THE_TEN_CAUSES = {
    "gradient_explosion",  # learning rate too high
    "lr_policy",
    "loss_layer",
    "bad_input",
    "pooling_stride",
    "batchnorm",
    "sparsity",
    "float16",
    "fillers",
    "log0",  # log(0) in a hand-written cross-entropy
}


def rows(tool):
    return [pytest.param(r, id=r.cause) for r in CAUSES if getattr(r, tool)]


def net_text(row: Reproduction, directory, check: str = "") -> str:
    """The row's net for ``directory``, with ``check`` at "{check}" and no other check."""
    text = row.net.replace("{dir}", str(directory)).replace("{check}", check)
    return re.sub(r"\{check_\w+\}", "", text)


def test_every_cause_has_a_reproduction_and_a_catalogue_entry():
    assert set(BY_CAUSE) == THE_TEN_CAUSES
    for cause_id in THE_TEN_CAUSES:
        entry = CATALOGUE[cause_id]
        assert entry.explanation and entry.fix


@pytest.mark.parametrize("row", rows("lint"))
def test_the_linter_flags_the_setting(row, tmp_path):
    where, code = row.lint
    net = net_text(row, tmp_path)
    if where == "solver":
        text = row.solver + 'net: "net.prototxt"\n'
    elif where == "net":
        text = net
    else:
        text = where + net
    codes = {f.code for f in lint_text(text, options=Options(use_schema=False)).findings}
    assert code in codes


@pytest.mark.parametrize("row", rows("check"))
def test_a_check_layer_stops_at_the_layer_that_made_it(row, caffe, make_net, tmp_path):
    blob, direction = row.check
    if row.files:
        row.files(tmp_path, caffe)
    tops = [] if blob == "loss" else [blob]  # a loss is probed, not passed on
    check = python_layer(f"check_{blob}", "CheckFiniteLayer", [blob], tops)
    net = make_net(net_text(row, tmp_path, check), "TRAIN")
    with pytest.raises(NonFiniteError) as caught:
        for _ in range(10):  # the HDF5 row's bad record is in the 7th batch
            net.forward()
            net.backward()
    error = caught.value
    assert (error.layer, error.direction) == (f"check_{blob}", direction)
    assert error.stats.count > 0


def run_locate(row: Reproduction, caffe, directory):
    if row.files:
        row.files(directory, caffe)
    (directory / "net.prototxt").write_text(net_text(row, directory))
    solver = directory / "solver.prototxt"
    solver.write_text(f'net: "{directory / "net.prototxt"}"\n' + row.solver)
    return locate(lambda line: None, LocateOptions(str(solver), str(directory / "out"), max_iter=50))


@pytest.mark.parametrize("row", rows("trains"))
def test_locate_trains_until_the_nan_and_names_the_cause(row, caffe, tmp_path):
    verdict = run_locate(row, caffe, tmp_path)
    assert verdict.nan_found, verdict.summary
    assert verdict.cause.id == row.cause, verdict.evidence
    if row.locate_iteration is not None:
        assert verdict.iteration == row.locate_iteration
    producer = verdict.details["producer"]
    if row.locate is None:
        return
    layer, direction = row.locate
    assert re.fullmatch(layer, producer["layer"]) and producer["direction"] == direction, producer


def test_gradient_explosion_grows_before_it_overflows(caffe, tmp_path):
    verdict = run_locate(BY_CAUSE["gradient_explosion"], caffe, tmp_path)
    assert verdict.iteration >= 2
    assert verdict.details["norms"]["gradient_growth"] > 1e6


def test_a_loss_fed_raw_scores_sends_back_1e20_long_before_the_nan(caffe, tmp_path):
    verdict = run_locate(BY_CAUSE["loss_layer"], caffe, tmp_path)
    spike = verdict.details["loss_gradient_spike"]
    assert (spike["layer"], spike["type"], spike["iteration"]) == ("loss", "InfogainLoss", 0)
    assert spike["gradient"] == pytest.approx(1e20 / 8, rel=1e-3)  # -H/p with p clamped at 1e-20, batch 8
    assert spike["loss"] < 100
    assert any("sent back a gradient of 1.25e+19" in e for e in verdict.evidence)


def test_bad_input_scan_names_the_record(caffe, tmp_path):
    row = BY_CAUSE["bad_input"]
    row.files(tmp_path, caffe)
    (tmp_path / "net.prototxt").write_text(net_text(row, tmp_path))
    report = scan(str(tmp_path / "net.prototxt"))
    assert [(b.layer, b.top, b.record, b.posinf) for b in report.bad] == [("data", "data", 13, 1)]


def test_fillers_overflow_in_the_first_forward_and_the_first_layer_is_named(make_net):
    """Gaussian std 1 on 0..255 input overflows float32 after about 30 layers of 256.

    A check after every layer: the one that fires follows the first
    InnerProduct whose output is not finite, while its input was finite and huge.
    """
    text = deep_gaussian_net()
    for k in range(1, 41):
        check = python_layer(f"check_fc{k}", "CheckFiniteLayer", [f"fc{k}"], [f"fc{k}"])
        text = text.replace(f"{{check_fc{k}}}", check)
    net = make_net(text, "TRAIN")
    with pytest.raises(NonFiniteError) as caught:
        net.forward()
    first = int(caught.value.layer.removeprefix("check_fc"))
    assert caught.value.direction == "forward"
    assert caught.value.stats.posinf + caught.value.stats.neginf > 0
    assert all(all_finite(net.blobs[f"fc{k}"].data) for k in range(1, first))
    assert np.abs(net.blobs[f"fc{first - 1}"].data).max() > 1e30


def test_a_missing_weight_filler_gives_no_nan_but_no_learning(make_solver):
    """No weight_filler means constant 0: the loss stays at ln(4) exactly, whatever the lr."""
    net = (
        CLASSES.replace("STD", "1")
        .replace(' weight_filler { type: "xavier" }', " bias_term: false")
        .replace(
            'top: "fc1" }', 'top: "fc1" }\nlayer { name: "relu" type: "ReLU" bottom: "fc1" top: "fc1" }', 1
        )
        + 'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc2" bottom: "label" top: "loss" }\n'
    )
    solver = make_solver('base_lr: 0.5\nlr_policy: "fixed"\nmax_iter: 20\nrandom_seed: 1\n', net)
    losses = []
    for _ in range(20):
        solver.step(1)
        losses.append(float(solver.net.blobs["loss"].data))
    assert losses == pytest.approx([math.log(4)] * 20, rel=1e-6)
    assert not solver.net.params["fc1"][0].data.any() and not solver.net.params["fc2"][0].data.any()
    inline = 'base_lr: 0.5\nlr_policy: "fixed"\nmax_iter: 20\nnet_param {\n' + net + "}\n"
    codes = [f.code for f in lint_text(inline, options=Options(use_schema=False)).findings]
    assert codes.count("NAN102") == 2


def test_float16_storage_overflows_what_float32_holds(make_net):
    """float16 is emulated: this Caffe has no half-precision path.

    The net is real and computes in float32, where its activations (about
    130000) are finite; rounding them to float16, as a half-precision fork
    stores blobs, gives +Inf (float16 stops at 65504).
    """
    net = make_net(net_text(BY_CAUSE["float16"], "."), "TRAIN")
    net.forward()
    fc = net.blobs["fc"].data
    assert all_finite(fc) and fc.min() > 65504
    with np.errstate(over="ignore"):
        stats = nonfinite_stats(fc.astype(np.float16))
    assert stats.posinf == fc.size
    assert np.isposinf(net.blobs["fc16"].data).all()


def test_log0_in_a_cross_entropy_built_from_caffe_layers(make_net):
    """Softmax -> Log, the start of a cross-entropy built from Caffe layers: log(0) = -inf."""
    text = (
        CLASSES.replace("STD", "1000")
        + 'layer { name: "prob" type: "Softmax" bottom: "fc2" top: "prob" }\n'
        + 'layer { name: "logp" type: "Log" bottom: "prob" top: "logp" }\n'
    )
    assert "NAN105" in {f.code for f in lint_text(text, options=Options(use_schema=False)).findings}
    net = make_net(text + python_layer("check_logp", "CheckFiniteLayer", ["logp"], []), "TRAIN")
    with pytest.raises(NonFiniteError) as caught:
        net.forward()
    assert (caught.value.layer, caught.value.direction) == ("check_logp", "forward")
    assert caught.value.stats.neginf > 0 and caught.value.stats.nan == 0
