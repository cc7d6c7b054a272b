"""What the watch reads of the caffe command line: gflags' four spellings of a flag."""

from __future__ import annotations

import pytest

from caffe_nanlayers.diagnose.watch import parse_caffe_command
from caffe_nanlayers.errors import UserError


@pytest.mark.parametrize(
    "argv",
    [
        ["caffe", "train", "-solver", "s.prototxt", "-weights", "a.caffemodel,b.caffemodel"],
        ["caffe", "train", "--solver=s.prototxt", "--weights", "a.caffemodel"],
        ["caffe", "-solver=s.prototxt", "train", "-weights=a.caffemodel", "-gpu", "0"],
    ],
)
def test_flags(argv):
    command = parse_caffe_command(argv)
    assert (command.solver, command.weights, command.resume, command.argv) == (
        "s.prototxt",
        "a.caffemodel",
        None,
        argv,
    )


def test_resume():
    command = parse_caffe_command(["caffe", "train", "-solver", "s", "-snapshot", "x_iter_500.solverstate"])
    assert command.resume == "x_iter_500.solverstate" and command.weights is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["caffe"], "expected a caffe command"),
        (["caffe", "test", "-model", "n"], "must be 'caffe train"),
        (["caffe", "train", "-weights", "w"], "has no -solver"),
    ],
)
def test_mistakes(argv, message):
    with pytest.raises(UserError, match=message):
        parse_caffe_command(argv)
