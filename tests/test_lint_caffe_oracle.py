"""Real Caffe as the oracle: every claim that Caffe aborts or refuses a file is held to what Caffe does.

Two directions. On the corpus: each net is wired by real Caffe (``caffe_oracle.topology``: its layers,
blobs and include/exclude rules as written, every layer a pass-through Python layer, so no data and no
fork's layer code is needed) in each phase and stage set the linter says the file is built in; an
undefined-bottom error (NAN110) must come with a Caffe abort 'Unknown bottom blob' in a phase the
file is used in, and such an abort must come with the finding. On small probe files: each claim
("Caffe refuses the file", "aborts", "builds the layer in TEST too") is checked on a file built by
caffe.Net itself, C++ text parser included, with a fixed twin that builds.

Bounded time: the corpus check wires BVLC's 54 files, every real file under 60 KB, and every file
the linter reports; the large detection nets (up to 400 KB, 8,000 lines) repeat the same blocks
and would triple the time for no new wiring.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from caffe_oracle import run_jobs

from caffe_nanlayers.lint import Options, lint_paths, lint_text
from caffe_nanlayers.lint.net import build_net
from caffe_nanlayers.lint.parser import parse_text

pytestmark = pytest.mark.caffe

SIZE_LIMIT = 60_000


@pytest.fixture(scope="module")
def corpus_verdicts(shared_dir, caffe):
    """[(path, phase, claimed, verdicts by stage set)] for the sampled corpus nets."""
    jobs, cases = [], []
    for name in ("bvlc", "real"):
        root = shared_dir / "corpus" / name
        report = lint_paths([str(root)], Options(cwd=str(root), select=["NAN110"]))
        reported = {f.path for f in report.findings}
        for path, usage in sorted(report.usages.items()):
            text = Path(path).read_text(encoding="utf-8")
            if len(text) > SIZE_LIMIT and path not in reported:
                continue
            findings = [f for f in report.findings if f.path == path]
            net = build_net(parse_text(text).root)
            for phase in sorted(usage.phases):
                ids = []
                for state in (s for s in net.states() if s.phase == phase):
                    job_id = str(len(jobs))
                    jobs.append(
                        {
                            "id": job_id,
                            "mode": "topology",
                            "phase": phase,
                            "stages": sorted(state.stages),
                            "text": text,
                        }
                    )
                    ids.append(job_id)
                cases.append((path, phase, findings, ids))
    results = run_jobs(jobs)
    return [(path, phase, findings, [results[i] for i in ids]) for path, phase, findings, ids in cases]


def claims_for(phase: str, findings) -> list:
    """The findings that say Caffe aborts when it builds ``phase``: named, or every phase it is built in."""
    return [f for f in findings if f"in the {phase} phase" in f.message or " phase no " not in f.message]


def test_undefined_bottom_errors_are_exactly_caffe_aborts(corpus_verdicts):
    checked, aborting = 0, set()
    for path, phase, findings, verdicts in corpus_verdicts:
        if any(kind == "error" for kind, _ in verdicts):
            continue  # Python's parser refuses a fork's enum value (PRE_FIXED): nothing to wire
        checked += 1
        # Stage sets are alternatives (a solver's test_state picks one): Caffe aborts when all do.
        aborts = all(kind == "abort" and "Unknown bottom blob" in why for kind, why in verdicts)
        if aborts:
            aborting.add(path)
            assert claims_for(phase, findings), f"{path} ({phase}): Caffe aborts, the linter says nothing"
        else:
            assert any(kind == "ok" for kind, _ in verdicts), (path, phase, verdicts)
            assert not claims_for(phase, findings), f"{path} ({phase}): Caffe wires it: {findings}"
    assert checked > 250
    assert aborting == set()  # a known-good corpus: Caffe wires every net in the phases it is used in


PROBE_INPUT = (
    'layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }\n'
)
TRAIN_INPUT = (
    'layer { name: "y" type: "Input" top: "y" include { phase: TRAIN } input_param { shape { dim: 1 } } }\n'
)
POOL = 'layer { name: "p" type: "Pooling" bottom: "x" top: "p" '
PROBES = {
    # name: (text, phase, the linter's code, what Caffe says, the fixed twin)
    "undefined-bottom": (
        PROBE_INPUT + 'layer { name: "r" type: "ReLU" bottom: "y" top: "r" }\n',
        "TEST",
        "NAN110",
        "Unknown bottom blob 'y'",
        PROBE_INPUT + 'layer { name: "r" type: "ReLU" bottom: "x" top: "r" }\n',
    ),
    "layer-level-phase": (
        PROBE_INPUT
        + TRAIN_INPUT
        + 'layer { name: "e" type: "Eltwise" bottom: "x" bottom: "y" top: "e" phase: TRAIN }\n',
        "TEST",
        "NAN110",
        "Unknown bottom blob 'y'",
        PROBE_INPUT
        + TRAIN_INPUT
        + 'layer { name: "e" type: "Eltwise" bottom: "x" bottom: "y" top: "e" include { phase: TRAIN } }\n',
    ),
    "duplicate-field": (
        PROBE_INPUT + 'layer { name: "p" type: "Pooling" bottom: "x" top: "p" '
        "pooling_param { kernel_size: 2 kernel_size: 3 } }\n",
        "TEST",
        "NAN003",
        'Non-repeated field "kernel_size" is specified multiple times',
        PROBE_INPUT
        + 'layer { name: "p" type: "Pooling" bottom: "x" top: "p" pooling_param { kernel_size: 2 } }\n',
    ),
    "duplicate-block": (
        PROBE_INPUT + 'layer { name: "p" type: "Pooling" bottom: "x" top: "p" '
        "pooling_param { kernel_size: 2 } pooling_param { stride: 1 } }\n",
        "TEST",
        "NAN003",
        'Non-repeated field "pooling_param" is specified multiple times',
        PROBE_INPUT + 'layer { name: "p" type: "Pooling" bottom: "x" top: "p" '
        "pooling_param { kernel_size: 2 stride: 1 } }\n",
    ),
    "list-for-singular": (
        PROBE_INPUT
        + 'layer { name: "p" type: "Pooling" bottom: "x" top: "p" pooling_param { kernel_size: [2, 3] } }\n',
        "TEST",
        "NAN003",
        "Expected integer, got: [",
        PROBE_INPUT
        + 'layer { name: "p" type: "Pooling" bottom: "x" top: "p" pooling_param { kernel_size: 2 } }\n',
    ),
    "bad-enum": (
        PROBE_INPUT + POOL + "pooling_param { pool: AVERAGE kernel_size: 2 } }\n",
        "TEST",
        "NAN002",
        'Unknown enumeration value of "AVERAGE"',
        PROBE_INPUT + POOL + "pooling_param { pool: AVE kernel_size: 2 } }\n",
    ),
    "unknown-field": (
        PROBE_INPUT
        + 'layer { name: "p" type: "Pooling" bottom: "x" top: "p" pooling_param { kernal_size: 2 } }\n',
        "TEST",
        "NAN001",
        'has no field named "kernal_size"',
        PROBE_INPUT
        + 'layer { name: "p" type: "Pooling" bottom: "x" top: "p" pooling_param { kernel_size: 2 } }\n',
    ),
}


@pytest.fixture(scope="module")
def probe_verdicts(caffe):
    jobs = []
    for name, (bad, phase, _, _, fixed) in PROBES.items():
        jobs.append({"id": f"{name}/bad", "mode": "file", "phase": phase, "text": bad})
        jobs.append({"id": f"{name}/fixed", "mode": "file", "phase": phase, "text": fixed})
    return run_jobs(jobs)


@pytest.mark.parametrize("name", sorted(PROBES))
def test_each_claim_holds_on_a_probe_built_by_caffe(name, probe_verdicts):
    bad, _, code, says, fixed = PROBES[name]
    kind, why = probe_verdicts[f"{name}/bad"]
    assert kind == "abort" and says in why, (kind, why)
    assert probe_verdicts[f"{name}/fixed"] == ("ok", "")
    found = [f for f in lint_text(bad, "probe.prototxt").findings if f.severity == "error" or f.code == code]
    assert [f.code for f in found] == [code]
    assert not [f for f in lint_text(fixed, "probe.prototxt").findings if f.code == code]
