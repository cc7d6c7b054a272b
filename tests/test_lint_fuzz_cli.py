"""10,000 mutated inputs through the command line: exit 0, 1 or 2 only, no traceback, every line printable.

The seeds are the shipped examples and small generated nets and solvers; the mutations include the
inputs that once broke the linter (400-digit numbers, CR-only line endings, names holding a newline
or an ESC, thousands of stepvalues, lists for singular fields, duplicated blocks, unbalanced braces,
binary junk). A fixed seed makes CI replay the same inputs; FUZZ_SEED=random explores new ones
locally. Each input is also parsed by both parsers, which must agree.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import re

from conftest import EXAMPLES

from caffe_nanlayers.commands.lint import main
from caffe_nanlayers.lint.parser import PrototxtSyntaxError, parse_text, parse_text_exact

COUNT = int(os.environ.get("FUZZ_COUNT", "10000"))
ERROR_LINE = re.compile(r"^\S.*:\d+:\d+: .+$")

GENERATED = [
    'layer { name: "d" type: "Data" top: "data" top: "label" include { phase: TRAIN } }\n'
    'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"\n'
    '  inner_product_param { num_output: 2 weight_filler { type: "xavier" } } }\n'
    'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" phase: TRAIN }\n',
    'base_lr: 0.01\nlr_policy: "multistep"\ngamma: 0.5\nmax_iter: 100\n'
    + "".join(f"stepvalue: {i * 3}\n" for i in range(200)),
    'item {\n  name: "none_of_the_above"\n  label: 0\n  display_name: "background"\n}\n'
    'item {\n  name: "face"\n  label: 1\n  display_name: "face"\n}\n',
    'net: "missing.prototxt"\ntest_iter: 1\ntest_interval: 10\nbase_lr: 24\nlarc: true\nmax_iter: 0\n'
    'type: "Adam"\ndelta: 1.0\ndevice_id: [0, 1, 2, 3]\n',
    'layer { name: "p" type: "Pooling" bottom: "x" top: "p"\n  pooling_param { kernel_size: 2 }\n'
    "  pooling_param { pool: AVE stride: 3 }\n}\n",
    'name: "v1"\ninput: "data"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 7\ninput_dim: 7\n'
    'layers { name: "pool" type: POOLING bottom: "data" top: "pool"\n'
    "  pooling_param { pool: AVE kernel_size: 2 stride: 3 } }\n",
]
SEEDS = [p.read_text(encoding="utf-8") for p in sorted((EXAMPLES / "lint").glob("*.prototxt"))] + GENERATED
HUGE = ["9" * 401, "-" + "9" * 400, "1e400", "-1e39", "nan", "-inf", "0x7fffffffffffffff", "1e-400", "0"]
OPERATIONS = [
    "brace",
    "truncate",
    "junk",
    "huge",
    "swap",
    "delete_line",
    "duplicate_line",
    "list",
    "cr",
    "name",
    "nest",
    "binary",
]
NASTY = ["\x1b[2J", "\n", "\r", "\x00", "\u2028", "ü", "\\", '"', "\t", "\x7f"]


def mutate(rng: random.Random, text: str) -> bytes:
    for _ in range(rng.randint(1, 4)):
        op = rng.choice(OPERATIONS)
        if not text:
            break
        if op == "brace":
            braces = [i for i, c in enumerate(text) if c in "{}<>[]"]
            if braces:
                i = rng.choice(braces)
                text = text[:i] + text[i + 1 :] if rng.random() < 0.7 else text[:i] + text[i] + text[i:]
        elif op == "truncate":
            text = text[: rng.randint(0, len(text) - 1)]
        elif op == "junk":
            at = rng.randint(0, len(text))
            text = (
                text[:at] + "".join(chr(rng.randint(0, 0x2FF)) for _ in range(rng.randint(1, 8))) + text[at:]
            )
        elif op == "huge":
            numbers = [m.span() for m in re.finditer(r"(?<![\w.])-?\d+(\.\d+)?(e-?\d+)?", text)]
            if numbers:
                a, b = rng.choice(numbers)
                text = text[:a] + rng.choice(HUGE) + text[b:]
        elif op == "swap":
            values = [m.span(1) for m in re.finditer(r":\s*(\S+)", text)]
            if len(values) >= 2:
                (a1, b1), (a2, b2) = sorted(rng.sample(values, 2))
                if b1 <= a2:
                    text = text[:a1] + text[a2:b2] + text[b1:a2] + text[a1:b1] + text[b2:]
        elif op in ("delete_line", "duplicate_line"):
            lines = text.split("\n")
            i = rng.randrange(len(lines))
            lines[i : i + 1] = [] if op == "delete_line" else [lines[i], lines[i]]
            text = "\n".join(lines)
        elif op == "list":
            values = [m.span(1) for m in re.finditer(r":\s*(-?[\w.]+)", text)]
            if values:
                a, b = rng.choice(values)
                text = text[:a] + f"[{text[a:b]}, {text[a:b]}]" + text[b:]
        elif op == "cr":
            text = text.replace("\n", "\r")
        elif op == "name":
            names = [m.span(1) for m in re.finditer(r'name:\s*"([^"]*)"', text)]
            if names:
                a, b = rng.choice(names)
                nasty = rng.choice(NASTY)
                escaped = nasty.encode("unicode_escape").decode() if rng.random() < 0.5 else nasty
                text = text[:a] + "x" + escaped + "y" + text[b:]
        elif op == "nest":
            depth = rng.choice([5, 99, 101, 300])
            text += "m { " * depth + "}" * depth
        elif op == "binary":
            return bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))) + text.encode(
                "utf-8", "replace"
            )
    return text.encode("utf-8", "surrogatepass")


def run_cli(path: str, fmt: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([path, "--format", fmt])
    return code, out.getvalue(), err.getvalue()


def parse_outcome(parse, text: str) -> str:
    """The error, or the tree and comments, as text (a NaN value equals itself there)."""
    try:
        document = parse(text, "fuzz.prototxt")
    except PrototxtSyntaxError as exc:
        return str(exc)
    return repr((document.root, document.comments))


def test_ten_thousand_mutations_through_the_cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seed = os.environ.get("FUZZ_SEED", "12")
    rng = random.Random(None if seed == "random" else int(seed))
    path = str(tmp_path / "fuzz.prototxt")
    codes = set()
    for n in range(COUNT):
        data = mutate(rng, rng.choice(SEEDS))
        with open(path, "wb") as f:
            f.write(data)
        fmt = "json" if n % 5 == 0 else "text"
        code, out, err = run_cli(path, fmt)
        codes.add(code)
        context = f"input {n} (seed {seed}): {data[:200]!r}"
        assert code in (0, 1, 2), context
        assert "Traceback" not in err and "internal error" not in err, context + err
        for line in err.splitlines():
            assert line.isprintable(), context + repr(line)
            if not line.startswith("note: "):
                assert ERROR_LINE.match(line), context + repr(line)
        if fmt == "json":
            findings = json.loads(out)
            assert all(f["line"] >= 1 and f["column"] >= 1 for f in findings), context
        else:
            assert all(line.isprintable() for line in out.splitlines()), context + repr(out)
        assert (code == 2) == bool(err.strip() and any(not e.startswith("note: ") for e in err.splitlines()))
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        assert parse_outcome(parse_text, text) == parse_outcome(parse_text_exact, text), context
    assert codes == {0, 1, 2}  # the mutations reach every outcome
