"""caffe-nan instrument: the rewritten prototxt, real Caffe loading it, and the producer it names."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
from conftest import EXAMPLES
from nan_test_layers import python_layer

from caffe_nanlayers.commands.instrument import main as instrument_main
from caffe_nanlayers.diagnose.instrument import instrument_net, layer_spans
from caffe_nanlayers.diagnose.replay import find_producer
from caffe_nanlayers.errors import UserError
from caffe_nanlayers.proto_io import caffe_pb2, parse_text

NET = """# my classifier
name: "small"
input: "data"
input_shape { dim: 4 dim: 3 }
layer {
  name: "fc1"   # the first layer
  type: "InnerProduct" bottom: "data" top: "fc1"
  inner_product_param { num_output: 5 weight_filler { type: "xavier" } bias_filler { type: "constant" } }
}
layer { name: "relu1" type: "ReLU" bottom: "fc1" top: "fc1" }
layer { name: "fc2" type: "InnerProduct" bottom: "fc1" top: "fc2"
  inner_product_param { num_output: 2 weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "acc" type: "Accuracy" bottom: "fc2" bottom: "label" top: "acc" include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc2" bottom: "label" top: "loss" }
input: "label"
input_shape { dim: 4 }
"""


def parsed(text):
    return parse_text(text, caffe_pb2().NetParameter(), "net.prototxt")


def test_a_check_after_every_layer_but_the_loss(caffe):
    result = instrument_net(parsed(NET), source_text=NET)
    assert [(c.name, c.after, c.blobs) for c in result.checks] == [
        ("input/check_finite", "", ("data", "label")),
        ("fc1/check_finite", "fc1", ("fc1",)),
        ("relu1/check_finite", "relu1", ("fc1",)),
        ("fc2/check_finite", "fc2", ("fc2",)),
        ("acc/check_finite", "acc", ("acc",)),
    ]
    names = [layer.name for layer in result.net.layer]
    assert names.index("fc1/check_finite") == names.index("fc1") + 1
    assert "loss/check_finite" not in names
    acc_check = result.net.layer[names.index("acc/check_finite")]
    assert acc_check.include[0].phase == caffe_pb2().TEST  # exists in exactly the phases of its layer
    assert result.complete


def test_the_users_text_survives_and_comments_mark_the_additions(caffe):
    result = instrument_net(parsed(NET), source_text=NET)
    assert "# my classifier" in result.text and "# the first layer" in result.text
    assert result.text.count("# caffe-nan instrument: added check") == 5
    assert parsed(result.text) == result.net
    # Removing the header and the added blocks gives back the user's file, byte for byte.
    body = result.text.split("\n\n", 1)[1]
    assert (
        re.sub(r"# caffe-nan instrument: added check[^\n]*\nlayer \{\n.*?\n\}\n", "", body, flags=re.S) == NET
    )


def test_param_str_is_what_the_layer_reads(caffe):
    result = instrument_net(parsed(NET), direction="backward", mode="dump", dump_dir="d")
    check = next(layer for layer in result.net.layer if layer.name == "fc2/check_finite")
    assert check.python_param.module == "caffe_nanlayers.layers"
    assert check.python_param.layer == "CheckFiniteLayer"
    assert "'label': 'after fc2'" in check.python_param.param_str
    assert "'direction': 'backward'" in check.python_param.param_str
    assert "'dump_dir': 'd'" in check.python_param.param_str
    assert not result.complete


def test_only_and_skip(caffe):
    result = instrument_net(parsed(NET), only=["fc2"])
    assert [c.after for c in result.checks] == ["fc2"]
    result = instrument_net(parsed(NET), skip=["relu1", "acc"])
    assert [c.after for c in result.checks] == ["", "fc1", "fc2"]
    with pytest.raises(UserError, match=r"no layer named 'fc3' in the net \(did you mean 'fc2'\?\)"):
        instrument_net(parsed(NET), only=["fc3"])


def test_legacy_v1_nets_are_refused(caffe):
    with pytest.raises(UserError, match="legacy 'layers' \\(V1\\)"):
        instrument_net(parsed('layers { name: "a" type: RELU bottom: "x" top: "x" }'))


def test_layer_spans_ignore_braces_in_strings_and_comments():
    text = 'name: "a{"\n# layer { not\nlayer { name: "}" p { } }\nlayer<name: "b">'
    spans = layer_spans(text)
    assert [text[a:b] for a, b in spans] == ['layer { name: "}" p { } }', 'layer<name: "b">']
    assert layer_spans("layer { ") is None


def test_text_without_source_is_rendered_from_the_net(caffe):
    result = instrument_net(parsed(NET))
    assert parsed(result.text) == result.net
    assert "# caffe-nan instrument: added check, after fc1" in result.text


def test_real_caffe_loads_it_and_the_gradients_are_unchanged(caffe, make_net):
    """The checks are identities: same loss, same gradients as the original net."""
    result = instrument_net(parsed(NET), source_text=NET)
    nets = [make_net(NET, "TRAIN"), make_net(result.text, "TRAIN")]
    rng = np.random.default_rng(0)
    data, label = rng.standard_normal((4, 3)), rng.integers(0, 2, 4)
    for net in nets:
        for name in ("fc1", "fc2"):
            for i, blob in enumerate(net.params[name]):
                blob.data[...] = np.arange(blob.data.size).reshape(blob.data.shape) * 0.01 * (i + 1)
        net.blobs["data"].data[...] = data
        net.blobs["label"].data[...] = label
        net.forward()
        net.clear_param_diffs()
        net.backward()
    for name in ("fc1", "fc2"):
        for original, checked in zip(nets[0].params[name], nets[1].params[name]):
            assert np.abs(original.diff).sum() > 0
            np.testing.assert_array_equal(original.diff, checked.diff)
    assert "fc1/check_finite" in list(nets[1]._layer_names)
    assert "acc/check_finite" not in list(nets[1]._layer_names)  # TEST-only, like its layer


def producer_of(make_net, text, feed):
    net_param = parsed(text)
    result = instrument_net(net_param)
    net = make_net(result.text, "TRAIN")
    for name, value in feed.items():
        net.blobs[name].data[...] = value
    producer, _ = find_producer(net, result, net_param)
    return producer


POOLING = """
input: "data" input_shape { dim: 2 dim: 1 dim: 10 dim: 10 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 2 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: AVE kernel_size: 3 stride: 5 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool1" top: "fc"
  inner_product_param { num_output: 1 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "fc" bottom: "data_mean" top: "loss" }
input: "data_mean" input_shape { dim: 2 dim: 1 }
"""


def test_forward_producer_is_the_pooling_layer(make_net):
    producer = producer_of(make_net, POOLING, {"data": 1.0, "data_mean": 0.0})
    assert (producer.layer, producer.layer_type, producer.direction) == ("pool1", "Pooling", "forward")
    assert producer.blob == "top pool1"
    assert producer.stats.nan > 0
    assert producer.check == "pool1/check_finite"


def backward_net(in_place: bool, second_consumer: bool) -> str:
    """fc1 -> relu1 (in place) -> nan_grad (finite forward, NaN backward) -> fc2 -> loss.

    With ``second_consumer``, fc1's output is also read by a clean branch, so
    Caffe inserts a Split: the producer must still be nan_grad, not the branch.
    """
    y = "fc1" if in_place else "y"
    text = """
input: "data" input_shape { dim: 4 dim: 3 }
input: "target" input_shape { dim: 4 dim: 1 }
layer { name: "fc1" type: "InnerProduct" bottom: "data" top: "fc1"
  inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "fc1" top: "fc1" }
"""
    text += python_layer("nan_grad", "BackwardNaNLayer", ["fc1"], [y], "nan", module="nan_test_layers")
    text += f"""
layer {{ name: "fc2" type: "InnerProduct" bottom: "{y}" top: "fc2"
  inner_product_param {{ num_output: 1 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "fc2" bottom: "target" top: "loss" }}
"""
    if second_consumer:
        text = text.replace('bottom: "fc1" top: "fc1" }', 'bottom: "fc1" top: "fc1" }\n' + CLEAN_BRANCH, 1)
    return text


CLEAN_BRANCH = """layer { name: "side" type: "InnerProduct" bottom: "fc1" top: "side"
  inner_product_param { num_output: 1 weight_filler { type: "xavier" } } }
layer { name: "side_loss" type: "EuclideanLoss" bottom: "side" bottom: "target" top: "side_loss" }
"""


@pytest.mark.parametrize(
    ("in_place", "second_consumer"),
    # (in place and split is not a valid Caffe net: "Top blob produced by multiple sources")
    [(True, False), (False, False), (False, True)],
    ids=["in_place", "not_in_place", "split"],
)
def test_backward_producer_is_the_consumer_whose_gradient_went_bad(make_net, in_place, second_consumer):
    text = backward_net(in_place, second_consumer)
    producer = producer_of(make_net, text, {"data": 1.0, "target": 0.0})
    assert (producer.layer, producer.layer_type, producer.direction) == ("nan_grad", "Python", "backward")
    assert producer.check == "relu1/check_finite"
    assert producer.candidates == []
    assert producer.stats.nan == 1


def test_a_clean_net_has_no_producer(make_net):
    assert (
        producer_of(make_net, backward_net(True, False).replace("BackwardNaNLayer", "_InjectingLayer"), {})
        is None
    )


def test_cli_writes_a_copy_and_never_the_input(caffe, tmp_path, capsys):
    source = tmp_path / "net.prototxt"
    source.write_text(NET)
    assert instrument_main([str(source), "--only", "fc1,fc2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    output = tmp_path / "net.checked.prototxt"
    assert report["output"] == str(output)
    assert [c["after"] for c in report["checks"]] == ["fc1", "fc2"]
    assert report["complete"] is False
    assert source.read_text() == NET
    assert parsed(output.read_text()).layer[1].name == "fc1/check_finite"
    assert instrument_main([str(source), "-o", str(source)]) == 2
    assert "refusing to overwrite the input" in capsys.readouterr().err
    assert source.read_text() == NET


def test_cli_reads_a_solvers_net(caffe, tmp_path, capsys):
    out = tmp_path / "checked.prototxt"
    solver = EXAMPLES / "diagnose" / "explode_bad_solver.prototxt"
    assert instrument_main([str(solver), "-o", str(out)]) == 0
    assert "4 checks" in capsys.readouterr().out
    assert "# Instrumented by caffe-nan instrument from explode_bad.prototxt" in out.read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["missing.prototxt"], "missing.prototxt: no such file"),
        (["net.prototxt", "--direction", "up"], "invalid choice: 'up'"),
        (["bad.prototxt"], "bad.prototxt:2:1: invalid NetParameter"),
        (["net.prototxt", "--skip", "nope"], "net.prototxt: --skip: no layer named 'nope' in the net"),
        (
            ["net.prototxt", "-o", "/proc/nope/x"],
            "/proc/nope/x: cannot write the instrumented net: No such file or directory (/proc/nope)",
        ),
        (["net.prototxt", "-o", "."], ".: is a directory; give a file name for the instrumented net"),
        (["empty.prototxt"], "empty.prototxt: empty, expected a net or solver prototxt"),
        # A copy without a check would look like a net that stays finite: never written.
        (["net.prototxt", "--only", ""], "--only: no layer name given (expected LAYER[,LAYER])"),
        (["net.prototxt", "--skip", ","], "--skip: no layer name given (expected LAYER[,LAYER])"),
        (
            ["net.prototxt", "--only", "loss"],
            "net.prototxt: no check added: 'loss' is a loss layer: no check",
        ),
        (
            ["net.prototxt", "-o", "linked.prototxt"],  # the input under another name: a hard link
            "linked.prototxt: refusing to overwrite the input net.prototxt; give another -o",
        ),
    ],
)
def test_user_mistakes_are_one_line_exit_2(caffe, argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text(NET)
    (tmp_path / "empty.prototxt").write_text("")
    os.link(tmp_path / "net.prototxt", tmp_path / "linked.prototxt")
    (tmp_path / "bad.prototxt").write_text("layer { name: \n")
    assert instrument_main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "net.checked.prototxt").exists()


def test_a_layer_name_holding_a_newline_stays_inside_its_comment(make_net, tmp_path, capsys):
    text = (
        'input: "x"\ninput_shape { dim: 1 dim: 3 }\n'
        'layer { name: "re\\nlu\\r1" type: "ReLU" bottom: "x" top: "y" }\n'
    )
    (tmp_path / "net.prototxt").write_text(text)
    out = tmp_path / "checked.prototxt"

    assert instrument_main([str(tmp_path / "net.prototxt"), "-o", str(out)]) == 0

    assert capsys.readouterr().out.endswith("after (inputs), re\\nlu\\r1\n")
    written = out.read_text()
    assert "# caffe-nan instrument: added check, after re\\nlu\\r1\n" in written
    net = make_net(written)  # Caffe reads it: no stray line escaped a comment
    assert "re\nlu\r1/check_finite" in list(net._layer_names)
