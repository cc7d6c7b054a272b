"""caffe-nan doctor's memory and time on long logs: it must not grow with the log.

A run left going for days writes gigabytes of log, and a log whose newlines
were lost is one line of gigabytes; the doctor reads both in one pass.
Each figure is a fresh ``caffe-nan doctor LOG --json`` process, as a user
runs it: its peak RSS (its own VmHWM) and CPU time (``wait4``). The
baselines run in the same rotation: the doctor on a 20-line log (the
interpreter and the imports: the floor of the RSS) and a bare Python loop
reading the same file line by line (the floor of the time).

Logs are generated at run time in a temporary directory: the display block
of a real ``caffe train`` log (loss, two weighted outputs, an accuracy, lr),
every 20 iterations, going NaN in the middle and staying NaN to the end.

    python bench/bench_doctor.py            # 10 MB and 100 MB logs, a .gz holding a 256 MB line
    python bench/bench_doctor.py --large    # also the 1 GB log and a .gz holding a 4 GB line
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from timing import fmt_seconds  # noqa: E402

MB = 1 << 20
BLOCK = (
    "I0712 12:{m:02d}:{s:02d}.058244  3123 solver.cpp:228] Iteration {i} (5.1 iter/s, 3.9s/20 iters), "
    "loss = {loss}\n"
    "I0712 12:{m:02d}:{s:02d}.058358  3123 solver.cpp:244]     Train net output #0: accuracy = 0.71\n"
    "I0712 12:{m:02d}:{s:02d}.058360  3123 solver.cpp:244]     Train net output #1: loss_cls = {loss} "
    "(* 1 = {loss} loss)\n"
    "I0712 12:{m:02d}:{s:02d}.058361  3123 solver.cpp:244]     Train net output #2: loss_bbox = 0.25 "
    "(* 2 = 0.5 loss)\n"
    "I0712 12:{m:02d}:{s:02d}.058405  3123 sgd_solver.cpp:106] Iteration {i}, lr = 0.01\n"
)


def write_log(path: Path, size: int) -> int:
    """A log of about ``size`` bytes that goes NaN halfway; returns its line count."""
    lines = 0
    written = 0
    i = 0
    blocks = 200 if size > MB else 2  # per write
    with open(path, "w") as f:
        while written < size:
            loss = "2.3" if written < size // 2 else "-nan"
            chunk = "".join(
                BLOCK.format(i=i + 20 * k, m=(i // 1200) % 60, s=(i // 20) % 60, loss=loss)
                for k in range(blocks)
            )
            f.write(chunk)
            written += len(chunk)
            lines += 5 * blocks
            i += 20 * blocks
    return lines


def write_gzip_line(path: Path, size: int) -> None:
    """A .gz of a log whose newlines were lost: one line of ``size`` bytes, then a NaN loss."""
    piece = b"x" * (4 * MB)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) as f:
        f.write(b"I0101 10:00:00.000000 1 solver.cpp:228] Iteration 0, loss = 2.3\n")
        for _ in range(size // len(piece)):
            f.write(piece)
        f.write(b"\nI0101 10:00:00.000000 1 solver.cpp:228] Iteration 20, loss = nan\n")


# The child reports its own high-water RSS (VmHWM belongs to the process image exec made):
# wait4's ru_maxrss also counts the parent's pages at fork, 88 MB under run_all.py.
_CHILD = """
import runpy, sys
what, args = sys.argv[1], sys.argv[2:]
code = 0
if what == "--read-lines":
    for line in open(args[0], errors="replace"):
        pass
else:
    sys.argv = [what, *args]
    try:
        runpy.run_module(what, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code
sys.stderr.write(next(line for line in open("/proc/self/status") if line.startswith("VmHWM")))
sys.exit(code)
"""


def measure(args: list[str]) -> tuple[float, int, int]:
    """(CPU seconds, peak RSS bytes, exit code) of one child: a module and its arguments, or
    ``--read-lines PATH``.

    CPU time (user + system, from wait4), not wall time: the machines this runs on are shared,
    and the doctor is one single-threaded pass, so its CPU time is its wall time when idle.
    """
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    err = child.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(child.pid, 0)
    hwm = next((line for line in err.splitlines() if line.startswith("VmHWM")), None)
    if hwm is None:
        raise RuntimeError(f"{' '.join(args)} failed: {err.strip()[-500:]}")
    return usage.ru_utime + usage.ru_stime, int(hwm.split()[1]) * 1024, os.waitstatus_to_exitcode(status)


def _doctor(path: Path) -> list[str]:
    return ["caffe_nanlayers.cli", "doctor", str(path), "--json"]


def _read_lines(path: Path) -> list[str]:
    return ["--read-lines", str(path)]


def run(quick: bool = False, large: bool = False) -> dict:
    sizes = [10 * MB] if quick else [10 * MB, 100 * MB] + ([1024 * MB] if large else [])
    line_size = (16 if quick else 256) * MB if not large else 4096 * MB
    rows = []
    figures = {}
    with tempfile.TemporaryDirectory(prefix="bench_doctor_") as tmp:
        work = Path(tmp)
        tiny = work / "tiny.log"
        write_log(tiny, 2000)
        base_s, base_rss, code = measure(_doctor(tiny))
        assert code == 1, f"doctor on the tiny log exited {code}"
        rows.append(
            [
                "20-line log (start-up and imports)",
                "-",
                fmt_seconds(base_s),
                f"{base_rss / MB:.0f} MB",
                "",
                "",
            ]
        )
        figures["baseline_rss_mb"] = base_rss / MB
        for size in sizes:
            path = work / f"train_{size // MB}MB.log"
            lines = write_log(path, size)
            read_s, _, _ = measure(_read_lines(path))
            took, rss, code = measure(_doctor(path))
            assert code == 1, f"doctor on {path.name} exited {code}"
            rows.append(
                [
                    f"{size // MB} MB log, {lines / 1e6:.2f}M lines",
                    fmt_seconds(read_s),
                    fmt_seconds(took),
                    f"{rss / MB:.0f} MB",
                    f"{took / read_s:.1f}x",
                    f"{(rss - base_rss) / MB:+.0f} MB",
                ]
            )
            figures[f"rss_mb_{size // MB}MB"] = rss / MB
            figures[f"seconds_{size // MB}MB"] = took
            path.unlink()
        gz = work / "one_line.log.gz"
        write_gzip_line(gz, line_size)
        took, rss, code = measure(_doctor(gz))
        assert code == 1, f"doctor on the one-line gzip exited {code}"
        rows.append(
            [
                f".gz of {gz.stat().st_size / MB:.1f} MB holding one {line_size // MB} MB line",
                "-",
                fmt_seconds(took),
                f"{rss / MB:.0f} MB",
                "",
                f"{(rss - base_rss) / MB:+.0f} MB",
            ]
        )
        figures["rss_mb_gzip_line"] = rss / MB
    return {
        "title": "caffe-nan doctor: memory and time on long logs",
        "columns": [
            "log",
            "read lines (Python loop), CPU",
            "doctor, CPU",
            "doctor peak RSS",
            "CPU ratio",
            "RSS over 20-line",
        ],
        "rows": rows,
        "notes": [
            "each figure is one fresh process (caffe-nan doctor LOG --json): CPU (wait4), peak RSS (VmHWM)",
            "the Python loop only splits lines; the ratio is what reading every line's numbers costs",
            "the logs go NaN halfway and stay NaN: the doctor reads to the end (last loss, counts)",
            "memory is bounded by the reader's design: lines cut at 64 KiB, each series keeps its first, "
            "a sample, the readings at the first sign and its last readings; gzip is streamed",
        ],
        **figures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the 10 MB log and a 16 MB line only")
    parser.add_argument("--large", action="store_true", help="also the 1 GB log and a 4 GB line (minutes)")
    args = parser.parse_args()
    result = run(quick=args.quick, large=args.large)
    sys.path.insert(0, str(BENCH_DIR))
    from run_all import render

    print(render("doctor", result))


if __name__ == "__main__":
    main()
