#!/usr/bin/env python3
"""Run every tool on the shipped examples, in real Caffe, and say what each caught.

Each step is a small script in ``scripts/demo.d/`` (run in order, one
process each, so a Caffe abort in one cannot take the others down). A step
exits 0 when its tool caught the cause it is there to show; the demo exits 1
if any step did not.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEPS = ROOT / "scripts" / "demo.d"


def main() -> int:
    steps = sorted(STEPS.glob("[0-9]*.py"))
    only = sys.argv[1:]
    if any(word in ("-h", "--help") for word in only):
        names = ", ".join(s.stem.split("_", 1)[-1] for s in steps)
        print(f"usage: demo.py [WORD ...]: run the steps whose name contains a WORD (default all): {names}")
        return 0
    unknown = [word for word in only if not any(word in s.stem for s in steps)]
    if unknown:
        print(f"demo.py: no demo step matches {', '.join(map(repr, unknown))} (see --help)", file=sys.stderr)
        return 2
    if only:
        steps = [s for s in steps if any(word in s.stem for word in only)]
    results = []
    for step in steps:
        title = step.stem.split("_", 1)[-1].replace("_", " ")
        print(f"\n=== {title} ({step.name})", flush=True)
        t0 = time.monotonic()
        code = subprocess.call([sys.executable, str(step)], cwd=ROOT)
        results.append((title, code == 0, time.monotonic() - t0))
    print("\n=== summary")
    for title, ok, seconds in results:
        print(f"  {'ok  ' if ok else 'FAIL'} {title} ({seconds:.1f} s)")
    failed = [t for t, ok, _ in results if not ok]
    print(f"{len(results) - len(failed)} of {len(results)} demo steps showed their tool catching its cause")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
