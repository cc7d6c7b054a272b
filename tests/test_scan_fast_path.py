"""fast_path: the transform done in numpy equals what Caffe's own Data layer delivers, Caffe as the oracle.

Every dataset here is read twice: by a real Caffe Data layer (phase TEST,
the centre crop the scan takes) and by ``fast_path.Transform``; the values
must be equal bit for bit, NaN for NaN. The finiteness proof for uint8
records is held to the same oracle: where it says "always finite", Caffe's
output is.
"""

from __future__ import annotations

import math

import lmdb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scan_datasets import float_datum, uint8_datum, write_lmdb

from caffe_nanlayers.proto_io import caffe_pb2
from caffe_nanlayers.scan import datum_wire, fast_path

pytestmark = pytest.mark.caffe

SHAPE = (3, 10, 12)
BATCH = 4


def mixed_records(count: int, seed: int = 0, shapes=(SHAPE,)) -> list[bytes]:
    """uint8 records, with float_data records among them holding NaN, Inf and large values."""
    rng = np.random.default_rng(seed)
    values = []
    for index in range(count):
        shape = shapes[index % len(shapes)]
        if index % 5 == 3:
            record = rng.uniform(-300, 300, shape).astype(np.float32)
            record.reshape(-1)[index % record.size] = (np.nan, np.inf, -np.inf, 3e38)[index % 4]
            values.append(float_datum(record, label=index % 7))
        else:
            values.append(uint8_datum(rng.integers(0, 256, shape), label=index % 7))
    return values


def write_mean(path, mean: np.ndarray) -> str:
    blob = caffe_pb2().BlobProto()
    blob.num, (blob.channels, blob.height, blob.width) = 1, mean.shape
    blob.data.extend(mean.astype(np.float32).ravel().tolist())
    path.write_bytes(blob.SerializeToString())
    return str(path)


def caffe_output(make_net, source, transform: str, count: int):
    """Data and labels of ``count`` records as Caffe's Data layer delivers them (phase TEST)."""
    net = make_net(
        f'layer {{ name: "d" type: "Data" top: "data" top: "label"\n'
        f'  data_param {{ source: "{source}" backend: LMDB batch_size: {BATCH} }}\n'
        f"  transform_param {{ {transform} }} }}\n",
        phase="TEST",
    )
    data, labels = [], []
    for _ in range(math.ceil(count / BATCH)):
        net.forward()
        data.extend(np.array(net.blobs["data"].data))
        labels.extend(np.array(net.blobs["label"].data))
    return data[:count], labels[:count]


def fast_output(source, transform: str):
    pb2 = caffe_pb2()
    param = pb2.TransformationParameter()
    from google.protobuf import text_format

    text_format.Merge(transform, param)
    apply = fast_path.Transform.of(param, pb2)
    data, labels, proofs = [], [], []
    env = lmdb.open(str(source), readonly=True, lock=False)
    with env.begin() as txn:
        for _, value in txn.cursor():
            datum = pb2.Datum()
            datum.ParseFromString(value)
            shape = (datum.channels, datum.height, datum.width)
            if datum.data:
                values = np.frombuffer(datum.data, np.uint8).reshape(shape)  # as the workers pass them
                proofs.append(apply.uint8_always_finite(shape))
            else:
                values = np.array(datum.float_data, np.float32).reshape(shape)
                proofs.append(None)
            with np.errstate(all="ignore"):
                data.append(apply.apply(values))
            labels.append(np.float32(datum.label))
    env.close()
    return data, labels, proofs


MEAN = np.random.default_rng(7).uniform(0, 255, SHAPE).astype(np.float32)
MEAN_WITH_NAN = MEAN.copy()
MEAN_WITH_NAN[1, 4, 5] = np.nan  # inside the centre crop of 6
MEAN_WITH_NAN[0, 0, 0] = np.inf  # outside it


@pytest.mark.parametrize(
    "transform",
    [
        "",
        "scale: 0.00390625",
        "mean_value: 104",
        "mean_value: 104 mean_value: 117 mean_value: 123 scale: 0.017",
        "mean_file: 'mean.binaryproto'",
        "mean_file: 'mean.binaryproto' scale: 0.00390625 crop_size: 6",
        "mean_file: 'mean_nan.binaryproto' crop_size: 6",
        "mean_value: 128 scale: inf",
        "scale: 1e38",
        "crop_size: 5 mean_value: 0.5",
        "crop_size: 10",
    ],
)
def test_transform_equals_caffes_data_layer(caffe, make_net, tmp_path, monkeypatch, transform):
    monkeypatch.chdir(tmp_path)
    write_mean(tmp_path / "mean.binaryproto", MEAN)
    write_mean(tmp_path / "mean_nan.binaryproto", MEAN_WITH_NAN)
    count = 11  # the last batch wraps around: only the first pass is compared
    write_lmdb(tmp_path / "db", mixed_records(count))

    expected, expected_labels = caffe_output(make_net, "db", transform, count)
    got, labels, proofs = fast_output(tmp_path / "db", transform)

    assert len(got) == count
    for record in range(count):
        np.testing.assert_array_equal(got[record], expected[record], err_msg=f"record {record}")
        assert got[record].dtype == np.float32
        if proofs[record]:  # proven finite: Caffe's values are
            assert np.isfinite(expected[record]).all()
    assert labels == expected_labels
    # The proof is not vacuous: it fails where a transform can make a uint8 record non-finite.
    uint8_proofs = {p for p in proofs if p is not None}
    assert uint8_proofs == (
        {False} if "nan" in transform or "inf" in transform or "1e38" in transform else {True}
    )


def test_centre_crop_of_records_of_several_sizes_equals_caffes(caffe, make_net, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shapes = [(2, 7, 9), (2, 8, 8), (2, 5, 6), (2, 9, 5)]
    write_lmdb(tmp_path / "db", mixed_records(8, seed=3, shapes=shapes))
    transform = "crop_size: 5 mean_value: 10 mean_value: 20 scale: 0.5"

    expected, _ = caffe_output(make_net, "db", transform, 8)
    got, _, _ = fast_output(tmp_path / "db", transform)

    for record in range(8):
        np.testing.assert_array_equal(got[record], expected[record], err_msg=f"record {record}")


def test_refusals_are_what_caffes_transformer_checks():
    pb2 = caffe_pb2()
    param = pb2.TransformationParameter(crop_size=4)
    param.mean_value.extend([1.0, 2.0])
    transform = fast_path.Transform.of(param, pb2)
    assert transform.refusal((2, 4, 5), first_channels=2) is None
    assert "smaller than crop_size 4" in transform.refusal((2, 3, 5), first_channels=2)
    assert "3 channels for 2 mean_value" in transform.refusal((3, 4, 4), first_channels=2)
    assert "not a valid Datum" in transform.refusal((0, 4, 4), first_channels=2)
    one = fast_path.Transform.of(pb2.TransformationParameter(mean_value=[1.0]), pb2)
    assert "the first record 3, under one mean_value" in one.refusal((1, 4, 4), first_channels=3)


def test_unsupported_layers_name_why(caffe):
    pb2 = caffe_pb2()
    layer = pb2.LayerParameter(type="Data")
    assert fast_path.unsupported(layer) is None
    layer.data_param.scale = 0.5
    assert "deprecated" in fast_path.unsupported(layer)
    both = pb2.LayerParameter(type="Data")
    both.transform_param.mean_file = "m"
    both.transform_param.mean_value.append(1.0)
    assert "both mean_file and mean_value" in fast_path.unsupported(both)


def _protobuf_header(record: bytes):
    datum = caffe_pb2().Datum()
    try:
        datum.ParseFromString(record)
    except Exception:
        return None
    return (
        datum.channels,
        datum.height,
        datum.width,
        datum.label,
        datum.encoded,
        datum.data,
        len(datum.float_data),
    )


def _wire_header(record: bytes):
    header = datum_wire.read_header(record)
    if header is None:
        return None
    data = record[header.data_offset : header.data_offset + header.data_size]
    return (header.channels, header.height, header.width, header.label, header.encoded, data, 0)


int32s = st.integers(-(2**31), 2**31 - 1)


@settings(max_examples=300, deadline=None)
@given(
    fields=st.fixed_dictionaries(
        {},
        optional={
            "channels": int32s,
            "height": int32s,
            "width": int32s,
            "label": int32s,
            "data": st.binary(max_size=40),
            "float_data": st.lists(st.floats(width=32), max_size=5),
            "encoded": st.booleans(),
        },
    ),
    cut=st.integers(0, 200),
    flip=st.tuples(st.integers(0, 200), st.integers(0, 255)),
)
def test_wire_header_equals_protobuf_or_declines(caffe, fields, cut, flip):
    record = caffe_pb2().Datum(**fields).SerializeToString()
    # A record with float_data is protobuf's to read; every other one is read alike.
    assert _wire_header(record) == (None if fields.get("float_data") else _protobuf_header(record))
    # Broken records (truncated, a byte changed): the reader declines or agrees, never differs.
    for broken in (record[:cut], _flip(record, *flip), record + record[:cut]):
        got = _wire_header(broken)
        assert got is None or got == _protobuf_header(broken)


def _flip(record: bytes, index: int, value: int) -> bytes:
    if not record:
        return record
    index %= len(record)
    return record[:index] + bytes([value]) + record[index + 1 :]


def test_wire_header_reads_the_last_data_field_and_declines_float_data(caffe):
    record = bytes(
        [0x08, 3, 0x22, 1, 7, 0x22, 2, 8, 9]
    )  # channels 3, a data field given twice: the last wins
    assert _wire_header(record) == _protobuf_header(record)
    assert datum_wire.read_header(record).data_size == 2
    unpacked_float = bytes([0x35]) + np.float32(1.5).tobytes()  # as proto2 writes float_data
    assert datum_wire.read_header(record + unpacked_float) is None  # protobuf's to read
    assert datum_wire.read_header(record + bytes([0x40, 1])) is None  # field 8: unknown


def test_label_is_bad_agrees_with_the_scan_layers_rows(caffe):
    from caffe_nanlayers.scan.findings import bad_label_rows

    for config in (
        {"num_classes": 10, "ignore_label": None},
        {"num_classes": 5, "ignore_label": -1},
        {"num_classes": None, "ignore_label": 255},
        {"num_classes": 16777217, "ignore_label": None},
    ):
        for label in (-(2**31), -5, -1, 0, 4, 5, 9, 10, 255, 2**24, 2**24 + 1, 16777217, 2**31 - 1):
            rows = np.array([[label]], dtype=np.float32)
            expected = len(bad_label_rows(rows, config["num_classes"], config["ignore_label"])) > 0
            assert fast_path.label_is_bad(label, config) == expected, (label, config)


def test_every_data_layer_of_the_real_corpus_is_one_the_fast_path_reads(caffe, shared_dir):
    from google.protobuf import text_format

    from caffe_nanlayers.scan.scan_net import deterministic_copy

    pb2 = caffe_pb2()
    layers = []
    for path in sorted((shared_dir / "corpus").rglob("*.prototxt")):
        text = path.read_text(errors="replace")
        if '"Data"' not in text:
            continue  # parsing the deploy nets of 100 layers only to find none is most of the time
        net = pb2.NetParameter()
        try:
            text_format.Merge(text, net)
        except text_format.ParseError:
            continue  # solvers, V1 nets, files of other forks: the linter's corpus test reads those
        layers.extend((path.name, layer) for layer in net.layer if layer.type == "Data")
    assert len(layers) >= 20  # BVLC's ImageNet, CIFAR, MNIST nets and the model collections'
    for name, layer in layers:
        copy, _ = deterministic_copy(layer, pb2, pb2.TRAIN)  # what the scan hands the fast path
        assert fast_path.unsupported(copy) is None, (name, layer.name)
