"""Real Caffe as the oracle for the linter's claims, run in a child process (a Caffe CHECK aborts it).

Run as ``python caffe_oracle.py --child``: reads jobs as JSON lines on stdin (``{"id", "mode",
"phase", "stages", "text"}``), and for each prints ``start <id>``, then ``ok <id>`` or ``error <id>
<message>``. A job that makes Caffe abort prints nothing more; the parent (``run_jobs``) reads the
abort message from stderr and starts a new child for the jobs left.

Modes:

- ``topology``: the net's layers, blobs and include/exclude rules (and layer-level ``phase``) as
  written, every layer replaced by ``AnyLayer`` (a Python layer that takes any bottoms and gives
  every top a shape). Data layers need no data, custom layers of a fork need no code: what is left
  is exactly what Caffe's Net::Init checks while wiring (FilterNet, 'Unknown bottom blob').
- ``file``: the text as written, built by ``caffe.Net``: Caffe's own C++ text parser and layers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _layer_class():
    import caffe

    class _AnyLayer(caffe.Layer):
        def setup(self, bottom, top):
            pass

        def reshape(self, bottom, top):
            for i in range(len(top)):
                top[i].reshape(1)

        def forward(self, bottom, top):
            pass

        def backward(self, top, propagate_down, bottom):
            pass

    return _AnyLayer


if "caffe" in sys.modules:  # imported by Caffe in the child, to build a Python layer
    AnyLayer = _layer_class()


def topology(text: str) -> str:
    """The net of ``text`` with every layer an AnyLayer, as prototxt (Python's parser reads ``text``)."""
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    # A fork's own fields (SSD, NVCaffe) are not wiring: they are dropped, not refused.
    source = text_format.Parse(text, caffe_pb2.NetParameter(), allow_unknown_field=True)
    net = caffe_pb2.NetParameter()
    net.name = source.name
    net.input.extend(source.input)
    for _ in source.input:
        shape = net.input_shape.add()
        shape.dim.extend([1, 1, 1, 1])
    for old in list(source.layer) + list(source.layers):
        layer = net.layer.add()
        layer.name = old.name
        layer.type = "Python"
        layer.bottom.extend(old.bottom)
        layer.top.extend(old.top)
        for rule in old.include:
            layer.include.add().CopyFrom(rule)
        for rule in old.exclude:
            layer.exclude.add().CopyFrom(rule)
        if old.DESCRIPTOR.name == "LayerParameter" and old.HasField("phase"):
            layer.phase = old.phase
        layer.python_param.module = "caffe_oracle"
        layer.python_param.layer = "AnyLayer"
    return text_format.MessageToString(net)


def child() -> None:
    os.environ.setdefault("GLOG_minloglevel", "1")
    import tempfile

    import caffe

    caffe.set_mode_cpu()
    for raw in sys.stdin:
        job = json.loads(raw)
        print(f"start {job['id']}", flush=True)
        try:
            text = topology(job["text"]) if job["mode"] == "topology" else job["text"]
            with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
                f.write(text)
            try:
                phase = caffe.TRAIN if job["phase"] == "TRAIN" else caffe.TEST
                caffe.Net(f.name, phase, stages=list(job.get("stages", [])))
            finally:
                os.unlink(f.name)
        except Exception as exc:  # Python's parser refused the text, or a layer raised
            message = " ".join(f"{type(exc).__name__}: {exc}".split())
            print(f"error {job['id']} {message}", flush=True)
            continue
        print(f"ok {job['id']}", flush=True)


def _abort_reason(stderr: str) -> str:
    """The glog FATAL line (F...) or libprotobuf's ERROR line that explains the abort."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if "Error parsing text-format" in line:
            return line
    for line in lines:
        if line.startswith("F") and "]" in line:
            return line.split("] ", 1)[-1]
    return lines[-1] if lines else "aborted"


def run_jobs(jobs: list[dict], timeout: float = 600) -> dict[str, tuple[str, str]]:
    """{job id: ("ok" | "error" | "abort", message)} for every job, restarting the child after an abort."""
    results: dict[str, tuple[str, str]] = {}
    pending = list(jobs)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    env["GLOG_minloglevel"] = "1"
    while pending:
        payload = "".join(json.dumps(job) + "\n" for job in pending)
        done = subprocess.run(
            [sys.executable, str(Path(__file__)), "--child"],
            input=payload,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        started = None
        for line in done.stdout.splitlines():
            word, _, rest = line.partition(" ")
            job_id, _, message = rest.partition(" ")
            if word == "start":
                started = job_id
            elif word in ("ok", "error"):
                results[job_id] = (word, message)
                started = None
        if started is not None:
            results[started] = ("abort", _abort_reason(done.stderr))
        elif done.returncode != 0 and not all(job["id"] in results for job in pending):
            raise RuntimeError(f"the Caffe oracle child failed before any job: {done.stderr[-2000:]}")
        pending = [job for job in pending if job["id"] not in results]
    return results


if __name__ == "__main__" and sys.argv[1:] == ["--child"]:
    child()
