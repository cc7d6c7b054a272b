"""Adversarial inputs: oversized files, huge numbers, long lists, control characters, bad options, locks.

Each one ends as a finding or as one clean line with exit code 2, in time and memory linear in the input.
"""

from __future__ import annotations

import errno
import os
import re
import sys
import time

import pytest

from caffe_nanlayers.commands.lint import main
from caffe_nanlayers.errors import printable
from caffe_nanlayers.lint import Options, lint_paths, lint_text
from caffe_nanlayers.lint.parser import parse_file
from caffe_nanlayers.lr_schedule import Schedule

ONE_LINE = re.compile(r"^[^\n]*\n$")


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_oversized_file_is_one_line_and_never_read_whole(tmp_path, capsys):
    path = tmp_path / "big.prototxt"
    path.write_bytes(b"# " + b"x" * 2048 + b"\n")
    with pytest.raises(Exception, match="at most 0 MB"):
        parse_file(str(path), max_bytes=1024)
    code, out, err = run(capsys, "/dev/zero")
    assert code == 2 and out == "" and ONE_LINE.match(err)
    assert err.startswith("/dev/zero:1:1: expected a prototxt file of at most 64 MB")


@pytest.mark.parametrize(
    "text",
    [
        "base_lr: " + "9" * 401 + '\nlr_policy: "fixed"\nmax_iter: 10\n',
        "base_lr: -" + "9" * 401 + '\nlr_policy: "inv"\ngamma: 1\npower: 1\nmax_iter: 10\n',
        "max_iter: " + "9" * 400 + '\nbase_lr: 0.1\nlr_policy: "poly"\npower: 1\n',
        'layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 1 dim: '
        + "9" * 400
        + ' dim: 4 } } }\nlayer { name: "p" type: "Pooling" bottom: "x" top: "p" '
        "pooling_param { pool: AVE kernel_size: 2 stride: 3 } }\n",
        'layer { name: "p" type: "Pooling" bottom: "x" top: "p" pooling_param { kernel_size: 2 stride: '
        + "9" * 400
        + " pad: "
        + "9" * 400
        + " } }\n",
    ],
)
def test_huge_integers_are_findings_not_internal_errors(text):
    report = lint_text(text, "huge.prototxt")
    assert report.errors == []
    assert report.findings  # the value is out of its field's range at least


def test_many_stepvalues_take_linear_time():
    """10,000 stepvalues once took 4.6 s (each iteration counted every stepvalue); now a bisection each."""
    steps = list(range(1, 30_001, 3))
    schedule = Schedule("multistep", base_lr=0.1, gamma=1.0, stepvalues=steps, max_iter=30_000)
    start = time.process_time()
    rates = [schedule.rate(it) for it in range(0, 30_000, 7)]
    assert all(r == pytest.approx(0.1) for r in rates)
    assert schedule.rate(4) == pytest.approx(0.1)
    # Not a timing assertion: a guard that fails only if the per-iteration walk comes back (seconds).
    assert time.process_time() - start < 5


def test_control_characters_are_escaped_in_every_line(tmp_path, capsys):
    name = "x\x1b[2J\nother.prototxt:1:1: NAN999 fake\r"
    path = tmp_path / "esc\x1b.prototxt"
    path.write_text(
        f'layer {{ name: "{name.encode("unicode_escape").decode()}" type: "ReLU" bottom: "q" top: "d" }}\n'
    )
    code, out, err = run(capsys, path)
    assert code == 1 and err == ""
    lines = out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("Found 1 problem")
    assert "\\x1b[2J\\nother.prototxt:1:1: NAN999 fake\\r" in lines[0]
    assert all(line.isprintable() for line in lines)


def test_carriage_return_line_endings_stay_on_one_line(tmp_path, capsys):
    path = tmp_path / "cr.prototxt"
    path.write_bytes(b'base_lr: 0.1\rmax_iter: 1\rname: "ab\rcd\r')
    code, out, err = run(capsys, path)
    assert code == 2 and out == "" and ONE_LINE.match(err) and "\r" not in err


def test_printable_escapes_only_what_a_terminal_would_act_on():
    assert printable("conv1/3x3 ünïcode") == "conv1/3x3 ünïcode"
    assert printable("a\nb\tc\rd\x1b\x7f\u2028") == "a\\nb\\tc\\rd\\x1b\\x7f\\u2028"


@pytest.mark.parametrize(
    "argv", [["--format", "bad", "x"], ["--color=rainbow", "x"], ["--bogus"], ["--select"]]
)
def test_usage_errors_are_one_line(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and ONE_LINE.match(err)
    assert err.startswith("lint-prototxt: ") and err.rstrip().endswith("(see --help)")


def test_a_file_behind_a_directory_that_cannot_be_entered(tmp_path, capsys, monkeypatch):
    """Reported as a permission problem, not as 'no such path' (faked: the suite may run as root)."""
    hidden = tmp_path / "locked" / "net.prototxt"
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        if str(path).startswith(str(tmp_path / "locked")):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    code, _, err = run(capsys, hidden)
    assert code == 2 and ONE_LINE.match(err)
    assert "cannot read the file: Permission denied" in err and "no such path" not in err


def test_a_directory_that_cannot_be_read_is_named(tmp_path, monkeypatch):
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "a.prototxt").write_text('layer { name: "x" type: "Input" top: "x" }\n')
    (tmp_path / "locked").mkdir()
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    report = lint_paths([str(tmp_path)], Options(cwd=str(tmp_path)))
    assert report.files == 1
    assert [e.split(": ", 1)[1] for e in report.errors] == ["cannot read the directory: Permission denied"]
    assert report.errors[0].startswith(str(tmp_path / "locked"))


@pytest.mark.skipif(sys.platform != "linux", reason="/dev/zero")
def test_memory_stays_bounded_on_dev_zero():
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = lint_paths(["/dev/zero"])
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert len(report.errors) == 1
    assert (after - before) * 1024 < 400 * 1024 * 1024  # the 64 MB read, not 4 GB
