"""The promises every command keeps (docs/promises.md), each held here across the commands.

One line and exit 2 for a usage or input error; 141 and no line when the
reader of stdout goes away, with or without ``PYTHONUNBUFFERED``; an
``OSError`` on a file no check foresaw is one line too. The commands run as
a user runs them, in a process of their own.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO

from caffe_nanlayers.errors import EXIT_BROKEN_PIPE, run_command


def caffe_nan(*argv, cwd=None, env=None, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "caffe_nanlayers.cli", *argv],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "caffe-nan: no subcommand given (expected one of lint, scan, "),
        (["scna"], "caffe-nan: unknown subcommand 'scna' (did you mean 'scan'? expected one of lint, "),
        (["--verison"], "caffe-nan: unknown subcommand '--verison' (expected one of lint, "),
    ],
)
def test_caffe_nan_without_a_known_subcommand_is_one_line_exit_2(argv, expected):
    result = caffe_nan(*argv)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(expected) and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.endswith("; see caffe-nan --help)\n")


@pytest.mark.parametrize("argv", [["--version"], ["doctor", "--version"], ["lint", "--version"]])
def test_version_is_the_package_version_on_stdout_exit_0(argv):
    from caffe_nanlayers import __version__

    result = caffe_nan(*argv)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"caffe-nan{' ' + argv[0] if len(argv) > 1 else ''} {__version__}\n"


def test_lint_prototxt_version_is_the_package_version():
    from caffe_nanlayers import __version__

    result = subprocess.run(
        [sys.executable, "-m", "caffe_nanlayers.commands.lint", "--version"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, f"lint-prototxt {__version__}\n", "")


@pytest.mark.parametrize("subcommand", ["lint", "scan", "instrument", "locate", "doctor", "watch"])
def test_every_subcommands_usage_error_is_one_line_with_error_and_see_help(subcommand):
    result = caffe_nan(subcommand, "--no-such-option")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(f"caffe-nan {subcommand}: error: ") and result.stderr.count("\n") == 1
    assert result.stderr.endswith(" (see --help)\n"), result.stderr


def test_caffe_nan_help_still_lists_every_subcommand():
    result = caffe_nan("--help")
    assert result.returncode == 0
    for name in ("lint", "scan", "instrument", "locate", "doctor"):
        assert f"\n  {name} " in result.stdout


def long_net(layers: int = 400) -> str:
    """A net whose instrumented copy is well over a pipe's 64 KiB."""
    text = 'input: "x0"\ninput_shape { dim: 1 dim: 4 }\n'
    for i in range(layers):
        text += (
            f'layer {{ name: "relu_layer_with_a_long_name_{i}" type: "ReLU" '
            f'bottom: "x{i}" top: "x{i + 1}" }}\n'
        )
    return text


def _closed_early(argv, cwd, unbuffered: bool):
    """Run with stdout a pipe whose reader takes one byte and leaves, mid-write."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PYTHONUNBUFFERED", None)
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    read_end, write_end = os.pipe()
    command = subprocess.Popen(
        [sys.executable, "-m", "caffe_nanlayers.cli", *argv],
        cwd=cwd,
        env=env,
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(write_end)
    assert os.read(read_end, 1)  # the output has started: the reader goes away now
    os.close(read_end)
    _, err = command.communicate(timeout=120)
    return command.returncode, err


def _scan_with_many_findings(tmp_path) -> list[str]:
    import h5py
    import numpy as np

    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["data"] = np.full((600, 2), np.nan, np.float32)
    (tmp_path / "list.txt").write_text("a.h5\n")
    (tmp_path / "scan.prototxt").write_text(
        'layer { name: "h5" type: "HDF5Data" top: "data"\n'
        '  hdf5_data_param { source: "list.txt" batch_size: 100 } }\n'
    )
    return ["scan", "scan.prototxt", "--json", "-q"]


@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "PYTHONUNBUFFERED"])
@pytest.mark.parametrize("command", ["instrument", "scan"])
def test_a_reader_that_goes_away_is_exit_141_and_no_line(tmp_path, command, unbuffered, request):
    if command == "scan":
        request.getfixturevalue("caffe")
        argv = _scan_with_many_findings(tmp_path)
    else:
        (tmp_path / "net.prototxt").write_text(long_net())
        argv = ["instrument", "-o", "-", "net.prototxt"]
    code, err = _closed_early(argv, tmp_path, unbuffered)
    assert (code, err) == (EXIT_BROKEN_PIPE, "")


def test_an_oserror_on_a_file_is_one_line_exit_2(tmp_path, capsys):
    def body():
        open(tmp_path / "not_a_dir" / "x", "rb")  # noqa: SIM115 (raises)

    (tmp_path / "not_a_dir").write_text("")
    assert run_command("caffe-nan x", body) == 2
    assert capsys.readouterr().err == f"caffe-nan x: {tmp_path / 'not_a_dir' / 'x'}: Not a directory\n"


def test_an_oserror_about_no_file_is_a_bug_with_its_traceback():
    def body():
        raise OSError(5, "Input/output error")

    with pytest.raises(OSError):
        run_command("caffe-nan x", body)
