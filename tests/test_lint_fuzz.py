"""Fuzz: mutated real prototxt files give findings or one clean error line, never a traceback."""

from __future__ import annotations

import re

import pytest
from conftest import EXAMPLES, SHARED
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caffe_nanlayers.commands.lint import main
from caffe_nanlayers.lint import Options, lint_paths

SEEDS = sorted(EXAMPLES.rglob("*.prototxt")) + sorted((SHARED / "corpus" / "bvlc").rglob("*.prototxt"))
TEXTS = [p.read_bytes() for p in SEEDS]
ERROR_LINE = re.compile(r"^\S.*:\d+:\d+: expected .+, found .+$")
HUGE = [b"1e400", b"-1e39", b"99999999999999999999999", b"nan", b"-inf", b"0x7fffffffffffffff", b"1e-400"]


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(TEXTS)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["brace", "truncate", "junk", "huge", "swap", "delete_line"]))
        if not data:
            break
        if op == "brace":
            braces = [i for i, b in enumerate(data) if b in b"{}<>[]"]
            if braces:
                del data[draw(st.sampled_from(braces))]
        elif op == "truncate":
            del data[draw(st.integers(0, len(data) - 1)) :]
        elif op == "junk":
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(min_size=1, max_size=12))
        elif op == "huge":
            numbers = [m.span() for m in re.finditer(rb"(?<![\w.])-?\d+(\.\d+)?(e-?\d+)?", bytes(data))]
            if numbers:
                a, b = draw(st.sampled_from(numbers))
                data[a:b] = draw(st.sampled_from(HUGE))
        elif op == "swap":
            values = [m.span(1) for m in re.finditer(rb":\s*(\S+)", bytes(data))]
            if len(values) >= 2:
                (a1, b1), (a2, b2) = sorted(draw(st.lists(st.sampled_from(values), min_size=2, max_size=2)))
                if b1 <= a2:
                    first, second = bytes(data[a1:b1]), bytes(data[a2:b2])
                    data[a2:b2] = first
                    data[a1:b1] = second
        elif op == "delete_line":
            lines = bytes(data).split(b"\n")
            del lines[draw(st.integers(0, len(lines) - 1))]
            data = bytearray(b"\n".join(lines))
    return bytes(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=mutated())
def test_mutations_never_crash(tmp_path, text):
    path = tmp_path / "fuzz.prototxt"
    path.write_bytes(text)
    report = lint_paths([str(path)], Options(cwd=str(tmp_path)))
    for error in report.errors:
        assert "internal error" not in error, error
        assert "\n" not in error and ERROR_LINE.match(error), error
    for finding in report.findings:
        assert finding.line >= 1 and finding.column >= 1 and "\n" not in finding.message


@pytest.mark.parametrize("junk", [b"\x00\x01\x02binary", b"\xff" * 64, b"{" * 100_000, b"layer {" * 3000])
def test_junk_through_the_cli_exits_2_with_one_line(tmp_path, capsys, junk):
    path = tmp_path / "junk.prototxt"
    path.write_bytes(junk)
    code = main([str(path)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and ERROR_LINE.match(err.strip()), err
