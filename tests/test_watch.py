"""``caffe-nan watch`` around the real ``caffe`` binary, on datasets generated here.

Each test runs ``caffe train`` as users run it (the binary, a solver, an
LMDB) under the watch: a clean run, an explosion that starts after several
snapshots, a learning rate that turns infinite, a bad record reached late
in the data, Caffe failing on a missing dataset, Ctrl-C.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import IN_CI
from scan_datasets import float_datum, write_lmdb

from caffe_nanlayers.commands.watch import main as watch_main
from caffe_nanlayers.diagnose.watch import default_caffe


@pytest.fixture(scope="session")
def caffe_binary():
    """The real caffe binary (the project's .venv/bin/caffe, else the one on PATH)."""
    found = default_caffe()
    if found is None:
        if IN_CI:
            pytest.fail("CI needs the caffe binary (scripts/dev setup builds it) and has none")
        pytest.skip("no caffe binary in this environment's bin/ nor on PATH")
    return found


def write_dataset(directory: Path, count: int, bad: dict[int, float] | None = None, seed: int = 0) -> Path:
    """``count`` records of 3x16x16 in [-1, 1], labels 0 and 1; ``bad`` plants one value in a record."""
    rng = np.random.default_rng(seed)
    values = []
    for index in range(count):
        record = rng.uniform(-1, 1, (3, 16, 16)).astype(np.float32)
        if bad and index in bad:
            record[0, 0, 0] = bad[index]
        values.append(float_datum(record, label=index % 2))
    write_lmdb(directory, values)
    (directory / "lock.mdb").unlink()
    return directory


NET = """
layer { name: "data" type: "Data" top: "data" top: "label"
  data_param { source: "train_lmdb" backend: LMDB batch_size: BATCH } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
  inner_product_param { num_output: WIDTH weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  inner_product_param { num_output: 1 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""


def make_run(tmp_path, solver: str, records: int = 10, bad=None, batch: int = 4, width: int = 64) -> Path:
    write_dataset(tmp_path / "train_lmdb", records, bad)
    (tmp_path / "net.prototxt").write_text(net_text(batch, width))
    (tmp_path / "snap").mkdir()
    path = tmp_path / "solver.prototxt"
    path.write_text('net: "net.prototxt"\nsnapshot_prefix: "snap/run"\nrandom_seed: 1\n' + solver)
    return path


def net_text(batch: int = 4, width: int = 64) -> str:
    return NET.replace("BATCH", str(batch)).replace("WIDTH", str(width))


def watch(caffe_binary, capsys, *options, flags=()) -> tuple[int, dict, str]:
    code = watch_main(
        [
            *options,
            "--json",
            "--log",
            "run.log",
            "--",
            caffe_binary,
            "train",
            "-solver",
            "solver.prototxt",
            *flags,
        ]
    )
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its parent counts: it runs no more)."""
    try:
        return "zombie" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


def snapshot_iterations(directory: Path) -> list[int]:
    return sorted(int(p.stem.rsplit("_", 1)[1]) for p in directory.glob("run_iter_*.caffemodel"))


def test_a_clean_run_ends_with_exit_0_and_its_whole_log(caffe_binary, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_run(tmp_path, 'base_lr: 0.001\nlr_policy: "fixed"\nmax_iter: 30\ndisplay: 10\nsnapshot: 10\n')
    code, report, _ = watch(caffe_binary, capsys)
    assert code == 0, report
    assert (report["outcome"], report["iteration"], report["sign"]) == ("clean", 30, None)
    log = (tmp_path / "run.log").read_text()
    assert log.rstrip().endswith("Optimization Done.")
    assert [s["iteration"] for s in report["snapshots"]] == [10, 20, 30]
    assert snapshot_iterations(tmp_path / "snap") == [10, 20, 30]


def test_an_explosion_after_several_snapshots_replays_from_the_last_good_one(
    caffe_binary, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    # The lr grows 5% an iteration: training is sound for a hundred iterations, then diverges.
    make_run(
        tmp_path,
        'base_lr: 0.001\nlr_policy: "exp"\ngamma: 1.05\nmax_iter: 100000\ndisplay: 5\nsnapshot: 20\n',
    )
    code, report, _ = watch(caffe_binary, capsys)
    assert code == 1, report
    nan_at = report["sign"]["iteration"]
    assert report["sign"]["what"] in ("loss", "train output loss") and nan_at >= 60
    good = [s["iteration"] for s in report["snapshots"] if s["iteration"] <= nan_at]
    assert len(good) >= 3  # it started after several snapshots
    replay = report["replay"]
    assert replay["start"] == {
        "iteration": max(good),
        "solverstate": f"snap/run_iter_{max(good)}.solverstate",
        "weights": None,
        "kind": "snapshot",
    }
    assert not replay["approximate"] and replay["reasons"] == []
    diagnosis = replay["diagnosis"]
    assert max(good) <= diagnosis["iteration"] <= nan_at
    assert diagnosis["producer"]["layer"] in ("ip1", "ip2", "loss")
    assert report["doctor"]["cause"]["id"] == report["cause"]["id"] == "gradient_explosion"
    # Stopped: Caffe did not finish. A snapshot it wrote between the NaN and the kill (milliseconds on a
    # net this small, more on a loaded machine) is named and never used.
    log = (tmp_path / "run.log").read_text()
    assert "Optimization Done" not in log
    late = [i for i in snapshot_iterations(tmp_path / "snap") if i > nan_at]
    assert [n for n in report["notes"] if "written after the first sign" in n] == [
        f"snap/run_iter_{i}.caffemodel: written after the first sign (iteration {nan_at}), not used"
        for i in sorted(late, reverse=True)
    ]
    for path in report["files"]:
        assert Path(path).is_file()


def test_an_infinite_lr_stops_at_its_iteration(caffe_binary, tmp_path, capsys, monkeypatch):
    """inv with a negative gamma: lr = base_lr (1 - 0.5 iter)^-0.5 is Inf at iteration 2."""
    monkeypatch.chdir(tmp_path)
    make_run(
        tmp_path, 'base_lr: 0.01\nlr_policy: "inv"\ngamma: -0.5\npower: 0.5\nmax_iter: 1000\ndisplay: 1\n'
    )
    code, report, _ = watch(caffe_binary, capsys)
    assert code == 1, report
    assert (report["sign"]["what"], report["sign"]["iteration"]) == ("lr", 2)
    assert report["doctor"]["cause"]["id"] == report["cause"]["id"] == "lr_policy"
    assert report["replay"]["start"]["kind"] == "initial"
    assert report["replay"]["diagnosis"]["iteration"] == 2


def test_poly_without_max_iter_trains_nothing_and_says_why(caffe_binary, tmp_path, capsys, monkeypatch):
    """Real caffe train with max_iter unset steps 0 times: no NaN to catch, and the watch says so."""
    monkeypatch.chdir(tmp_path)
    make_run(tmp_path, 'base_lr: 0.01\nlr_policy: "poly"\npower: 1\ndisplay: 1\n')
    code, report, _ = watch(caffe_binary, capsys)
    assert code == 0, report
    assert (report["outcome"], report["iteration"]) == ("clean", 0)
    assert report["notes"] == ["caffe trained 0 iterations: the solver has no max_iter (0)"]


def test_a_bad_record_reached_late_is_in_the_replayed_batch(caffe_binary, tmp_path, capsys, monkeypatch):
    """Record 45 of 50 holds +Inf: batch 11 (records 44-47) is the first to read it, after snapshot 10.

    A restored Caffe reads from record 0 again; the watch skips the 10 batches
    the run had read, so the replay's iteration 11 reads record 45 again.
    """
    monkeypatch.chdir(tmp_path)
    make_run(
        tmp_path,
        'base_lr: 0.001\nlr_policy: "fixed"\nmax_iter: 100000\ndisplay: 1\nsnapshot: 5\n',
        records=50,
        bad={45: np.inf},
    )
    code, report, _ = watch(caffe_binary, capsys)
    assert code == 1, report
    assert report["sign"]["iteration"] == 11
    replay = report["replay"]
    assert replay["start"]["iteration"] == 10
    assert replay["skipped"] == [{"layer": "data", "records": 50, "batch_size": 4, "batches": 10}]
    diagnosis = replay["diagnosis"]
    assert diagnosis["iteration"] == 11
    producer = diagnosis["producer"]
    assert (producer["layer"], producer["direction"]) == ("data", "forward")
    assert producer["stats"]["posinf"] == 1
    with np.load(producer["dump_path"]) as dump:
        batch = dump["blob0"]
    assert batch.shape == (4, 3, 16, 16)
    assert np.argwhere(np.isposinf(batch)).tolist() == [[1, 0, 0, 0]]  # item 1 of batch 11: record 45
    assert report["cause"]["id"] == "bad_input"


def test_caffe_failing_on_a_missing_dataset_is_one_line_and_exit_3(
    caffe_binary, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    make_run(tmp_path, 'base_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 10\n')
    (tmp_path / "net.prototxt").write_text(net_text().replace('"train_lmdb"', '"missing_lmdb"'))
    code = watch_main(["--log", "run.log", "--", caffe_binary, "train", "-solver", "solver.prototxt"])
    out, _ = capsys.readouterr()
    assert code == 3
    first = out.splitlines()[0]
    assert first.startswith("caffe failed: Check failed: mdb_status == 0") and "(db_lmdb.hpp:" in first, out
    assert "log: run.log" in out


def test_a_missing_binary_or_solver_is_a_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "solver.prototxt").write_text('net: "net.prototxt"\nbase_lr: 0.1\n')
    assert watch_main(["--", str(tmp_path / "no_caffe"), "train", "-solver", "solver.prototxt"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no_caffe: no such program" in err
    assert watch_main(["--", "caffe", "train", "-solver", "nowhere.prototxt"]) == 2
    assert "nowhere.prototxt: no such file" in capsys.readouterr().err
    assert watch_main(["--", "caffe", "test", "-model", "x"]) == 2
    assert "must be 'caffe train" in capsys.readouterr().err


def test_ctrl_c_stops_caffe_and_the_watch_with_130(caffe_binary, tmp_path):
    make_run(tmp_path, 'base_lr: 0.0001\nlr_policy: "fixed"\nmax_iter: 10000000\ndisplay: 100\n')
    watcher = subprocess.Popen(
        [
            *(sys.executable, "-m", "caffe_nanlayers.cli", "watch", "--log", "run.log", "--"),
            *(caffe_binary, "train", "-solver", "solver.prototxt"),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # A runner started in the background ignores SIGINT: the watch must get it as from a terminal.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    log = tmp_path / "run.log"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "Iteration 100," not in (log.read_text() if log.exists() else ""):
        time.sleep(0.05)
    caffe_pid = int(log.read_text().split("solver.cpp")[0].split()[-1])
    watcher.send_signal(signal.SIGINT)
    out, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 130, err
    assert out.decode().startswith("interrupted at iteration")
    assert (
        not Path(f"/proc/{caffe_pid}").exists() or "zombie" in Path(f"/proc/{caffe_pid}/status").read_text()
    )
    # Caffe got the Ctrl-C itself: by default (-sigint_effect stop) it snapshots, then stops.
    text = log.read_text()
    assert "Snapshotting to binary proto file" in text and "Optimization stopped early." in text
    assert snapshot_iterations(tmp_path / "snap")


def test_the_solver_form_and_no_replay(caffe_binary, tmp_path, capsys, monkeypatch):
    """``caffe-nan watch SOLVER`` runs caffe train itself; --no-replay stops after the doctor."""
    monkeypatch.chdir(tmp_path)
    make_run(
        tmp_path, 'base_lr: 0.01\nlr_policy: "inv"\ngamma: -0.5\npower: 0.5\nmax_iter: 1000\ndisplay: 1\n'
    )
    code = watch_main(["--caffe", caffe_binary, "--no-replay", "solver.prototxt"])
    out, err = capsys.readouterr()
    assert code == 1, err
    assert out.startswith("NaN at iteration 2: lr = inf (log line")
    assert "probable cause [lr_policy]" in out and "replay" not in out
    log = next(tmp_path.glob("snap/caffe_train_*.log"))  # default: beside the snapshots
    assert "Iteration 2, lr = inf" in log.read_text()


def test_killing_the_watch_kills_caffe(caffe_binary, tmp_path):
    make_run(tmp_path, 'base_lr: 0.0001\nlr_policy: "fixed"\nmax_iter: 10000000\ndisplay: 100\n')
    watcher = subprocess.Popen(
        [
            *(sys.executable, "-m", "caffe_nanlayers.cli", "watch", "--log", "run.log", "--"),
            *(caffe_binary, "train", "-solver", "solver.prototxt"),
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = tmp_path / "run.log"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "Iteration 100," not in (log.read_text() if log.exists() else ""):
        time.sleep(0.05)
    caffe_pid = int(log.read_text().split("solver.cpp")[0].split()[-1])
    watcher.kill()
    watcher.wait(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{caffe_pid}").exists():
        if "zombie" in Path(f"/proc/{caffe_pid}/status").read_text():
            break
        time.sleep(0.05)
    assert (
        not Path(f"/proc/{caffe_pid}").exists() or "zombie" in Path(f"/proc/{caffe_pid}/status").read_text()
    )


def test_shuffled_data_is_replayed_anyway_and_marked_approximate(caffe_binary, tmp_path, capsys, monkeypatch):
    """HDF5Data with shuffle: the run's order cannot be drawn again; the replay runs and says so."""
    import h5py

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    data = rng.uniform(-1, 1, (50, 3, 16, 16)).astype(np.float32)
    data[45, 0, 0, 0] = np.inf
    with h5py.File(tmp_path / "train.h5", "w") as handle:
        handle["data"] = data
        handle["label"] = (np.arange(50) % 2).astype(np.float32)
    (tmp_path / "train_h5.txt").write_text("train.h5\n")
    net = net_text().split("\n", 3)[3]  # the net without its Data layer
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "data" type: "HDF5Data" top: "data" top: "label"\n'
        '  hdf5_data_param { source: "train_h5.txt" batch_size: 4 shuffle: true } }\n' + net
    )
    (tmp_path / "snap").mkdir()
    (tmp_path / "solver.prototxt").write_text(
        'net: "net.prototxt"\nsnapshot_prefix: "snap/run"\nrandom_seed: 1\n'
        'base_lr: 0.001\nlr_policy: "fixed"\nmax_iter: 100000\ndisplay: 1\nsnapshot: 5\n'
    )
    code, report, _ = watch(caffe_binary, capsys)
    assert code == 1, report
    replay = report["replay"]
    assert replay["approximate"] is True
    assert replay["reasons"] == ["layer 'data' (HDF5Data): shuffle reorders the files and rows at random"]
    assert replay["error"] is None and replay["diagnosis"]["tool"] == "locate"
    assert replay["to_iteration"] == report["sign"]["iteration"]


def test_a_resumed_run_counts_its_data_from_the_resume(caffe_binary, tmp_path, capsys, monkeypatch):
    """caffe train -snapshot restarts the data at record 0: after a resume at 10, record 45 comes at 21.

    The replay from snapshot 20 must skip 10 batches (20 - 10), not 20: then its iteration 21 reads
    batch 11 of the resumed run's stream (records 44-47) again.
    """
    monkeypatch.chdir(tmp_path)
    solver = make_run(
        tmp_path,
        'base_lr: 0.001\nlr_policy: "fixed"\nmax_iter: 10\ndisplay: 1\nsnapshot: 5\n',
        records=50,
        bad={45: np.inf},
    )
    code, report, _ = watch(caffe_binary, capsys)  # records 0-39: clean
    assert code == 0, report
    solver.write_text(solver.read_text().replace("max_iter: 10", "max_iter: 100000"))
    (tmp_path / "run.log").rename(tmp_path / "first.log")
    code, report, _ = watch(caffe_binary, capsys, flags=("-snapshot", "snap/run_iter_10.solverstate"))
    assert code == 1, report
    assert report["sign"]["iteration"] == 21
    replay = report["replay"]
    assert replay["start"]["iteration"] == 20
    assert replay["skipped"] == [{"layer": "data", "records": 50, "batch_size": 4, "batches": 10}]
    assert replay["diagnosis"]["iteration"] == 21
    assert replay["diagnosis"]["producer"]["layer"] == "data"
