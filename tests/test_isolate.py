"""run_isolated: results, messages, user errors and bugs come back; a Caffe abort becomes one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from caffe_nanlayers.errors import UserError
from caffe_nanlayers.isolate import (
    CaffeStopped,
    IsolatedError,
    IsolatedWorker,
    caffe_failure,
    describe_death,
    run_isolated,
)

# The child imports this module by name, so the functions it runs live at module level.


def echo_twice(report, value):
    report("first")
    report({"second": value})
    return value * 2


def user_mistake(report):
    raise UserError("layer 'x': bad param_str")


def bug(report):
    raise ValueError("boom")


def read_a_file_in_a_file(report, path):
    return Path(path, "inside").read_bytes()


def abort_after_a_message(report):
    report("before")
    os.abort()


def hdf5_net_with_wrong_dataset_name(report, h5_list):
    from caffe_nanlayers.caffe_net import net_from_text

    report("building")
    net_from_text(
        'layer { name: "h5" type: "HDF5Data" top: "data" top: "label" '
        f'hdf5_data_param {{ source: "{h5_list}" batch_size: 2 }} }}',
        phase="TRAIN",
    )


WARMED = []


def warm_up():
    WARMED.append("warm")


def what_was_warmed(report):
    return list(WARMED)


def test_a_worker_warms_up_in_the_child_that_then_takes_the_call():
    with IsolatedWorker(warm_up=[warm_up]) as worker:
        assert worker.run(what_was_warmed) == ["warm"]
    assert WARMED == []  # in the child, not here


def test_a_worker_left_without_a_call_ends_its_child():
    with IsolatedWorker(warm_up=[warm_up]) as worker:
        child = worker._child
    assert child.poll() == 0


def test_result_and_messages_come_back_in_order():
    messages = []
    assert run_isolated(echo_twice, 21, on_message=messages.append) == 42
    assert messages == ["first", {"second": 21}]


def test_user_error_in_the_child_is_a_user_error_in_the_parent():
    with pytest.raises(UserError, match=r"^layer 'x': bad param_str$"):
        run_isolated(user_mistake)


def test_a_bug_in_the_child_carries_its_traceback():
    with pytest.raises(IsolatedError, match=r"ValueError: boom") as info:
        run_isolated(bug)
    assert "Traceback" in str(info.value)


def test_death_by_signal_is_a_one_line_user_error_after_the_messages():
    messages = []
    with pytest.raises(CaffeStopped) as info:
        run_isolated(abort_after_a_message, on_message=messages.append, context="x.prototxt")
    assert messages == ["before"]
    assert str(info.value) == "x.prototxt: Caffe stopped: the process killed by SIGABRT"
    assert info.value.exitcode == -6


def test_an_oserror_on_a_file_in_the_child_is_the_users_one_line(tmp_path):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(UserError) as info:
        run_isolated(read_a_file_in_a_file, str(tmp_path / "a_file"))
    assert str(info.value) == f"{tmp_path / 'a_file' / 'inside'}: Not a directory"


@pytest.mark.caffe
def test_a_real_caffe_check_failure_becomes_glogs_line(caffe, tmp_path):
    import h5py

    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["data"], f["labels"] = np.zeros((2, 3), np.float32), np.zeros(2, np.float32)
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'a.h5'}\n")
    messages = []
    with pytest.raises(UserError) as info:
        run_isolated(hdf5_net_with_wrong_dataset_name, str(tmp_path / "list.txt"), on_message=messages.append)
    message = str(info.value)
    assert messages == ["building"]
    assert "\n" not in message
    # HDF5's H5LTfind_dataset matches "label" against "labels", so Caffe fails one check later.
    assert message.startswith("Caffe stopped: Check failed: ")
    assert message.endswith(")") and "label (hdf5.cpp:" in message


@pytest.mark.parametrize(
    "line",
    [
        "F0117 10:00:00.123456 12345 /src/caffe/util/hdf5.cpp:14] Check failed: x == y (1 vs. 2) ",
        "F20240117 10:00:00.123456 12345 hdf5.cpp:14] Check failed: x == y  (1 vs. 2)",
    ],
)
def test_caffe_failure_reads_glogs_fatal_line_in_either_date_format(line):
    stderr = f"W0117 noise\n{line}\n*** Check failure stack trace: ***\n    @ 0x7f caffe::Foo()\n"
    assert caffe_failure(stderr) == "Caffe stopped: Check failed: x == y (1 vs. 2) (hdf5.cpp:14)"


def test_describe_death_without_glog_names_the_signal_or_code_and_last_line():
    assert describe_death(-11, "") == "Caffe stopped: the process killed by SIGSEGV"
    assert (
        describe_death(3, "oops\nlast words\n") == "Caffe stopped: the process exited with code 3: last words"
    )


def test_a_caller_script_without_a_main_guard_is_not_run_again(tmp_path):
    script = tmp_path / "caller.py"
    script.write_text(
        "import sys\n"
        f"sys.path[:0] = [{str(Path(__file__).parent)!r}]\n"
        "from test_isolate import echo_twice\n"
        "from caffe_nanlayers.isolate import run_isolated\n"
        "print('caller ran')\n"
        "print(run_isolated(echo_twice, 5))\n"
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == ["caller ran", "10"]


USER_LAYERS = """
import caffe


class Fine(caffe.Layer):
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(2, 3)

    def forward(self, bottom, top):
        top[0].data[...] = 1

    def backward(self, top, propagate_down, bottom):
        pass


class BadSetup(Fine):
    def setup(self, bottom, top):
        raise ValueError("no such option: 'sclae'")


class BadForward(Fine):
    def forward(self, bottom, top):
        helper()


class BadInit(Fine):
    def __init__(self, param):
        super().__init__(param)
        raise RuntimeError("missing weights file: 'w.npy'")


class BadSignature(Fine):
    def __init__(self):
        pass


def helper():
    return 1 / 0
"""


def _python_net(module, layer, name="py"):
    from caffe_nanlayers.proto_io import caffe_pb2, parse_text

    text = (
        f'layer {{ name: "{name}" type: "Python" top: "data"\n'
        f'  python_param {{ module: "{module}" layer: "{layer}" }} }}'
    )
    return text, parse_text(text, caffe_pb2().NetParameter(), "net.prototxt")


@pytest.fixture
def user_layers(tmp_path, monkeypatch):
    (tmp_path / "user_layers_for_isolate.py").write_text(USER_LAYERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "user_layers_for_isolate"
    sys.modules.pop("user_layers_for_isolate", None)


@pytest.mark.caffe
@pytest.mark.parametrize(
    ("module", "layer", "message"),
    [
        (
            "no_such_module_of_theirs",
            "X",
            "layer 'py': cannot import its Python module 'no_such_module_of_theirs': "
            "ModuleNotFoundError: No module named 'no_such_module_of_theirs'",
        ),
        (
            "user_layers_for_isolate",
            "Gone",
            "layer 'py': Python module 'user_layers_for_isolate' has no class 'Gone'",
        ),
        (
            # A typo in the name of one of this package's layers is the user's too.
            "caffe_nanlayers.layers",
            "CheckFinite",
            "layer 'py': Python module 'caffe_nanlayers.layers' has no class 'CheckFinite' "
            "(did you mean 'CheckFiniteLayer'?)",
        ),
        (
            "user_layers_for_isolate",
            "BadSetup",
            "layer 'py' (user_layers_for_isolate.BadSetup): setup() raised ValueError: "
            "no such option: 'sclae'",
        ),
        (
            # Caffe prints what __init__ raised and clears it; pycaffe raises a SystemError naming nothing.
            "user_layers_for_isolate",
            "BadInit",
            "layer 'py' (user_layers_for_isolate.BadInit): __init__() raised RuntimeError: "
            "missing weights file: 'w.npy'",
        ),
        (
            "user_layers_for_isolate",
            "BadSignature",
            "layer 'py' (user_layers_for_isolate.BadSignature): Caffe could not create it: TypeError: "
            "BadSignature.__init__() takes 1 positional argument but 2 were given",
        ),
        (
            "user_layers_for_isolate",
            "BadForward",
            "layer 'py' (user_layers_for_isolate.BadForward): forward() raised ZeroDivisionError: "
            "division by zero",
        ),
    ],
)
def test_what_the_users_python_layers_raise_is_a_one_line_user_error(
    caffe, user_layers, module, layer, message
):
    from caffe_nanlayers.caffe_net import net_from_text
    from caffe_nanlayers.isolate import UserPythonLayers

    text, net_param = _python_net(module, layer)
    with pytest.raises(UserError) as info, UserPythonLayers(net_param.layer):
        net_from_text(text).forward()
    assert str(info.value) == message


@pytest.mark.caffe
def test_a_python_layer_that_fails_while_created_is_named_in_one_line_by_the_tools(
    caffe, user_layers, tmp_path, capsys
):
    from caffe_nanlayers.commands.locate import main as locate_main

    text, _ = _python_net(user_layers, "BadInit")
    (tmp_path / "net.prototxt").write_text(text)
    solver = tmp_path / "solver.prototxt"
    solver.write_text(f'net: "{tmp_path / "net.prototxt"}"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 2\n')
    assert locate_main([str(solver), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == (
        "caffe-nan locate: error: layer 'py' (user_layers_for_isolate.BadInit): __init__() raised "
        "RuntimeError: missing weights file: 'w.npy'\n"
    )


@pytest.mark.caffe
def test_an_error_outside_the_users_layers_stays_a_bug(caffe, user_layers):
    from caffe_nanlayers.caffe_net import net_from_text
    from caffe_nanlayers.isolate import UserPythonLayers

    text, net_param = _python_net(user_layers, "Fine")
    with pytest.raises(KeyError), UserPythonLayers(net_param.layer):
        net = net_from_text(text)
        net.forward()
        net.blobs["no such blob"]
