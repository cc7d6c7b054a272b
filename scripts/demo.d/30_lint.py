"""lint-prototxt: each faulty example is flagged with its expected codes, each fixed one is clean.

The expected codes are in each faulty file's ``# expect:`` line. The step
also lints the pooling example of Caffe's own NaN demo and checks that the
linter names the empty output row that Caffe fills with NaN.
"""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT = ROOT / "prototxt_examples" / "lint"
POOLING = ROOT / "prototxt_examples" / "pooling_stride" / "deploy_bad.prototxt"

script = shutil.which("lint-prototxt", path=str(Path(sys.executable).parent))
COMMAND = [script] if script else [sys.executable, "-m", "caffe_nanlayers.commands.lint"]


def lint(path: Path) -> tuple[int, list[dict]]:
    result = subprocess.run(
        [*COMMAND, "--format", "json", str(path.relative_to(ROOT))], cwd=ROOT, capture_output=True, text=True
    )
    if result.returncode == 2:
        print(result.stderr.strip())
    return result.returncode, json.loads(result.stdout or "[]")


ok = True
for path in sorted(LINT.glob("*.prototxt")):
    code, findings = lint(path)
    mine = [f for f in findings if Path(f["path"]).name == path.name]
    codes = sorted({f["code"] for f in mine})
    if "_bad" in path.name:
        expected = sorted(re.search(r"^# expect: (.*)$", path.read_text(), re.MULTILINE).group(1).split())
        good = code == 1 and codes == expected
        found = ", ".join(codes) or "nothing"
        print(f"{'ok  ' if good else 'FAIL'} {path.name}: {found} (expected {', '.join(expected)})")
        for f in mine:
            print(f"       {f['line']}:{f['column']} {f['code']} {f['message']}")
    else:
        good = code == 0
        print(f"{'ok  ' if good else 'FAIL'} {path.name}: {'clean' if good else ', '.join(codes)}")
    ok &= good

code, findings = lint(POOLING)
good = (
    code == 1
    and [f["code"] for f in findings] == ["NAN101"]
    and findings[0]["severity"] == "error"
    and "output row 2" in findings[0]["message"]
    and "NaN" in findings[0]["message"]
)
said = findings[0]["message"] if findings else "nothing"
print(f"{'ok  ' if good else 'FAIL'} pooling_stride/deploy_bad.prototxt: {said}")
ok &= good
sys.exit(0 if ok else 1)
