"""caffe-nan doctor: read the log `caffe train` wrote for a run that exploded, without and with debug_info.

Each log is the real binary's (the `caffe` the set-up installed next to this
Python); exits 0 only if the doctor names the right cause, and with
`debug_info: true` the first layer that went bad.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "prototxt_examples" / "diagnose"
CAFFE = Path(sys.executable).parent / "caffe"
# Kept after the demo so the logs and plots can be opened (git ignores it).
OUTPUT = ROOT / "demo-output" / "doctor"
SOLVER = EXAMPLES / "explode_bad_solver.prototxt"
CAUSE = "gradient_explosion"

ok = True
OUTPUT.mkdir(parents=True, exist_ok=True)
for debug_info in (False, True):
    name = SOLVER.stem + ("_debug_info" if debug_info else "")
    solver = OUTPUT / f"{name}.prototxt"
    net = EXAMPLES / "explode_bad.prototxt"
    text = SOLVER.read_text().replace('net: "explode_bad.prototxt"', f'net: "{net}"')
    solver.write_text(text + ("debug_info: true\n" if debug_info else ""))
    log = OUTPUT / f"{name}.log"
    with open(log, "w") as out:
        subprocess.run([str(CAFFE), "train", "-solver", str(solver)], cwd=OUTPUT, stdout=out, stderr=out)
    print(f"$ caffe train -solver {solver.name} 2> {log.name}; caffe-nan doctor {log.name}")
    plot = OUTPUT / f"{name}.png"
    done = subprocess.run(
        [sys.executable, "-m", "caffe_nanlayers.cli", "doctor", str(log), "--plot", str(plot)],
        capture_output=True,
        text=True,
    )
    print(done.stdout.strip().replace(str(ROOT) + "/", "") or done.stderr.strip())
    right = done.returncode == 1 and f"[{CAUSE}]" in done.stdout and plot.is_file()
    if debug_info:
        right &= "debug_info: first non-finite" in done.stdout
    wanted = f"[{CAUSE}]" + (" and the first bad layer" if debug_info else "")
    print(f"{'ok' if right else 'WRONG'}: expected {wanted}\n")
    ok &= right
sys.exit(0 if ok else 1)
