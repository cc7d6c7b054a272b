"""caffe-nan doctor on logs real users pasted into public issue threads.

Two sets: the shared corpus (``../shared/logs/real``, read in place, with
``cases.json`` saying where each log first goes bad and the cause its thread
settled) and short excerpts kept here under ``fixtures/logs/``, each headed
by the thread's URL, the cause it settled and the verdict expected
(``# expect: exit=1 kind=nonfinite iteration=100 cause=... confidence=...``).
Every log is run through the command itself, as a user would.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caffe_nanlayers.commands.doctor import main as doctor_main
from caffe_nanlayers.diagnose.caffe_log import LogReader

FIXTURES = Path(__file__).parent / "fixtures" / "logs"

# The doctor's verdict on each shared log: exit code, probable cause, confidence. Where the
# thread settled a cause (cases.json), it is the one named first.
SHARED_VERDICTS = {
    "01_ssd-focalloss-explode.log": (1, "gradient_explosion", "high"),  # 393 -> 1.7e6 -> nan
    "02_centernet-gpu-loss-bug.log": (1, "loss_layer", "medium"),  # the loss layer's own print
    "03_multitask-euclidean-nan.log": (1, "gradient_explosion", "low"),
    "04_lsoftmax-87-meanlength-inf.log": (1, "gradient_explosion", "medium"),  # the plateau
    "05_refinedet-mbv2-arm-nan.log": (1, "gradient_explosion", "low"),
    "06_refinedet-voc-arm-nan.log": (1, "gradient_explosion", "low"),
    "07_lenet-cpu-nan.log": (1, "gradient_explosion", "low"),
    "08_siamese-gpu-nan-it0.log": (1, "initialization", "medium"),
    "09_deeploco-inf-then-nan.log": (1, "gradient_explosion", "low"),
    "10_ssd-kitti-diverge.log": (1, "gradient_explosion", "low"),
    "11_pvanet-debuginfo-inf.log": (1, "gradient_explosion", "medium"),  # activations of 1e14 first
    "12_personsearch-id87-nan.log": (1, "fillers", "medium"),  # 87.3365 before any update
    "13_personsearch-rerun-87.log": (1, "gradient_explosion", "medium"),
    "14_old-87.3366-at-start.log": (1, "fillers", "medium"),
    "15_wrn-87-accuracy-1.log": (1, "gradient_explosion", "medium"),
    "16_multilabel-test-accuracy-nan.log": (0, None, None),  # a NaN accuracy (0/0), not a NaN loss
    **{
        name: (0, None, None)
        for name in (
            "18_lsoftmax-noprefix-slow.log",
            "19_logparser-healthy-tests.log",
            "20_refinedet-maintainer-log.log",
            "21_nvcaffe-fp16-check-failed.log",
            "22_multiloss-healthy-fragments.log",
            "23_rcf-large-finite-loss.log",
            "24_ssd-focalloss-healthy.log",
            "25_imagenet-2014-stuck.log",
            "26_windows-ssd-healthy.log",
            "27_imagenet-2014-tiny-loss.log",
            "28_detectnet-zero-loss.log",
            "29_deepbinarycode-odd-names.log",
            "30_bn-global-stats-erratic.log",  # settled batchnorm, but finite: nothing to diagnose
            "31_gtx1080-large-loss.log",
            "32_ssd-windows-rising-loss.log",
        )
    },
    "17_frcnn-resnet-bbox-nan-87.log": (1, "gradient_explosion", "medium"),  # nan beside 87.3365
}


def _report(path: Path, capsys) -> tuple[int, dict]:
    code = doctor_main([str(path), "--json"])
    out, err = capsys.readouterr()
    assert err == ""
    return code, json.loads(out)


@pytest.fixture(scope="module")
def shared_cases(shared_dir):
    real = shared_dir / "logs" / "real"
    return real, {c["file"]: c for c in json.loads((real / "cases.json").read_text())["cases"]}


@pytest.mark.parametrize("name", sorted(SHARED_VERDICTS))
def test_shared_real_log(name, shared_cases, capsys):
    real, cases = shared_cases
    case = cases[name]
    code, report = _report(real / name, capsys)
    assert (code, report["cause"] and report["cause"]["id"], report["confidence"]) == SHARED_VERDICTS[name]
    if case["expected_cause"] != "unknown" and case["has_nonfinite"] != "none":
        assert report["cause"]["id"] == case["expected_cause"]
    if code == 1:
        kind = "saturated" if case["has_nonfinite"] == "87.3365" else "nonfinite"
        assert report["first"]["kind"] == kind
        assert report["iteration"] == case["expected_first_iteration"]
        assert report["facts"] and report["causes"][0]["facts"] is not None
        if report["confidence"] != "high":
            assert report["next_steps"], "an unsure verdict says what to collect next"


def test_every_shared_case_has_a_verdict(shared_cases):
    _, cases = shared_cases
    assert set(cases) == set(SHARED_VERDICTS)


def test_the_reader_finds_the_first_sign_where_the_corpus_says(shared_cases):
    """Line by line, as a follower of a running log would: the sign comes on its own line."""
    real, cases = shared_cases
    for name, case in cases.items():
        reader = LogReader()
        signs = []
        with open(real / name, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                sign = reader.feed(line)
                if sign is not None:
                    signs.append((number, sign))
        if case["has_nonfinite"] == "none" or name.startswith("16_"):
            assert signs == [], name
            continue
        assert len(signs) == 1, name  # reported once
        number, sign = signs[0]
        assert sign.reading.line == number, name
        assert (sign.kind == "saturated") == (case["has_nonfinite"] == "87.3365"), name


def _expectations(path: Path) -> dict[str, str]:
    header = [line for line in path.read_text().splitlines() if line.startswith("# expect:")]
    assert len(header) == 1, f"{path.name}: one '# expect:' line"
    return dict(item.split("=", 1) for item in header[0].split(":", 1)[1].split())


FIXTURE_LOGS = sorted(FIXTURES.glob("*.log"))


def test_the_fixtures_name_their_thread_and_its_cause():
    assert len(FIXTURE_LOGS) >= 12
    for path in FIXTURE_LOGS:
        text = path.read_text()
        assert text.startswith("# source: https://github.com/"), path.name
        assert "\n# settled: " in text, path.name


@pytest.mark.parametrize("path", FIXTURE_LOGS, ids=lambda p: p.stem)
def test_fixture_log(path, capsys):
    expect = _expectations(path)
    code, report = _report(path, capsys)
    assert code == int(expect["exit"])
    assert report["first"]["kind"] == expect["kind"]
    iteration = None if expect["iteration"] == "none" else int(expect["iteration"])
    assert report["iteration"] == iteration
    assert (report["cause"]["id"], report["confidence"]) == (expect["cause"], expect["confidence"])
    if "layer" in expect:
        assert report["first_layer"]["layer"] == expect["layer"]
