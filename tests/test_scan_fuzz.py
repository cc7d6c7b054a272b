"""The corruption fuzz: 258 LMDB, LevelDB, HDF5 and image-list datasets broken at random, scanned by Caffe.

Every scan must end in exit 0, 1 or 2, never a traceback or a signal; an
error is one line that names the dataset (and the record, when Caffe
stopped on one and a reader can find it); the dataset's bytes, mtimes and
file list are unchanged; no process is left behind. The datasets are tiny
(12 records; an image list is 12 JPEG and PNG images of 16x12 pixels) and
each kind is scanned by its own driver process (see ``scan_fuzz.py``), all
at once: about a minute on two cores. The seeds are the dataset numbers, so
a failure names the one to replay.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest
from conftest import REPO
from scan_fuzz import KINDS

pytestmark = pytest.mark.caffe

PER_KIND = {"LMDB": 70, "LevelDB": 70, "HDF5": 70, "ImageData": 48}
# What a line naming the record Caffe stopped on holds, by kind: a key's "record", a file, a list line.
NAMED = {"LMDB": "record ", "LevelDB": "record ", "HDF5": ".h5", "ImageData": "list.txt:"}


@pytest.fixture(scope="module")
def fuzz_runs(caffe, tmp_path_factory):
    """{kind: (driver exit code, driver stderr, [one result per dataset])}, all kinds run at once."""
    drivers = {}
    for kind in KINDS:
        workdir = tmp_path_factory.mktemp(f"fuzz-{kind}")
        drivers[kind] = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "tests" / "scan_fuzz.py"),
                kind,
                "0",
                str(PER_KIND[kind]),
                str(workdir),
            ],
            cwd=workdir,
            env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    runs = {}
    for kind, driver in drivers.items():
        out, err = driver.communicate(timeout=900)
        runs[kind] = (driver.returncode, err, [json.loads(line) for line in out.splitlines()])
    return runs


def problems_of(result: dict) -> list[str]:
    """What a scan of a broken dataset did that it must never do."""
    problems = []
    code, out, err = result["code"], result["stdout"], result["stderr"]
    if result["exception"]:
        problems.append(f"raised {result['exception']}")
    if code not in (0, 1, 2):
        problems.append(f"exit code {code}")
    if "Traceback" in err:
        problems.append("a traceback")
    if code == 2:
        if out or err.count("\n") != 1 or not err.startswith("caffe-nan scan: "):
            problems.append("an error that is not one line")
        if "source 'data'" not in err and "list.txt" not in err:
            problems.append("an error that does not name the dataset")
        if "Caffe stopped" in err and NAMED[result["kind"]] not in err:
            problems.append("Caffe stopped on a record that no reader named")
    elif code in (0, 1):
        report = json.loads(out)
        unnamed = [b for b in report["bad"] if not (b.get("key") or b.get("file"))]
        if (code == 1) != bool(report["bad"]) or unnamed:
            problems.append("bad records not named")
    if not result["unchanged"]:
        problems.append("the dataset changed")
    if result["left"]:
        problems.append(f"processes left behind: {result['left']}")
    return problems


@pytest.mark.parametrize("kind", KINDS)
def test_every_broken_dataset_is_a_clean_answer_or_one_line(fuzz_runs, kind):
    driver_code, driver_err, lines = fuzz_runs[kind]
    results = [line for line in lines if "code" in line]
    started = [line["index"] for line in lines if line.get("started")]
    assert driver_code == 0, (
        f"the driver died ({driver_code}) scanning dataset {started[-1]}: {driver_err[-2000:]}"
    )
    assert len(results) == PER_KIND[kind]

    failures = {
        r["index"]: (r["damage"], problems_of(r), r["stderr"][-300:]) for r in results if problems_of(r)
    }
    assert not failures, failures

    # The fuzz reaches every outcome: refused before Caffe, and scanned through Caffe.
    # (Most damage to a small image is a file OpenCV cannot read: fewer image lists are scanned whole.)
    codes = Counter(r["code"] for r in results)
    assert codes[2] >= 10 and codes[0] + codes[1] >= (5 if kind == "ImageData" else 10), codes
