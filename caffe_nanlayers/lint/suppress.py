"""Inline disables: ``# lint-prototxt: disable=CODE[,CODE...]`` in the prototxt.

Where the comment is decides what it silences, like the ``noqa`` habits of
flake8 and ruff:

- after a field, on the same line: that line;
- after the ``{`` that opens a ``layer`` (or V1 ``layers``), or on its own
  line inside one: that layer;
- on its own line elsewhere: the next line;
- ``# lint-prototxt: disable-file=CODE``: the whole file.

Codes may be prefixes (``NAN1``) or ``all``; the first word that is not a
code ends the list, so a reason may follow (``disable=NAN101 stride on
purpose``). A code or prefix that no rule has, or a directive with no code,
silences nothing, and the linter says so in a note (as ruff warns about an
unknown code in ``noqa``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from caffe_nanlayers.lint.findings import Finding
from caffe_nanlayers.lint.model import Document

_DIRECTIVE = re.compile(r"lint-prototxt\s*:\s*(disable|disable-file)\s*=\s*([A-Za-z0-9_,\s]+)")


_CODE = re.compile(r"ALL|[A-Z]+[0-9]+")


def _codes(text: str) -> list[str]:
    """The codes that start ``text``, up to the first word that is not one; with none, that word."""
    words = text.replace(",", " ").upper().split()
    codes = []
    for word in words:
        if not _CODE.fullmatch(word):
            break
        codes.append(word)
    return codes or words[:1]


def _matches(code: str, patterns: list[str]) -> bool:
    return any(p == "ALL" or code.startswith(p) for p in patterns)


@dataclass
class Suppressions:
    file_codes: list[str] = field(default_factory=list)
    ranges: list[tuple[int, int, list[str]]] = field(default_factory=list)  # (first, last line, codes)
    named: list[tuple[int, int, str]] = field(default_factory=list)  # (line, column, code or stray word)

    def silences(self, finding: Finding) -> bool:
        if _matches(finding.code, self.file_codes):
            return True
        return any(a <= finding.line <= b and _matches(finding.code, codes) for a, b, codes in self.ranges)


def _layer_spans(document: Document) -> list[tuple[int, int]]:
    return [
        (node.line, node.end_line)
        for node in document.root.walk()
        if node.name in ("layer", "layers") and node.is_message
    ]


def _code_lines(document: Document) -> list[int]:
    lines = set()
    for node in document.root.walk():
        if node.name:
            lines.add(node.line)
            if node.value_line:
                lines.add(node.value_line)
            if node.end_line:
                lines.add(node.end_line)
    return sorted(lines)


def suppressions(document: Document) -> Suppressions:
    result = Suppressions()
    spans = None
    code_lines = None
    for comment in document.comments:
        match = _DIRECTIVE.search(comment.text)
        if not match:
            continue
        kind, codes = match.group(1), _codes(match.group(2))
        result.named.extend((comment.line, comment.col, code) for code in codes)
        codes = [c for c in codes if _CODE.fullmatch(c)]
        spans = spans if spans is not None else _layer_spans(document)
        if kind == "disable-file":
            result.file_codes.extend(codes)
        elif comment.trailing:
            opened = [s for s in spans if s[0] == comment.line]  # after a layer's '{': the layer
            last = max((s[1] for s in opened), default=comment.line)
            result.ranges.append((comment.line, last, codes))
        else:
            inside = [s for s in spans if s[0] <= comment.line <= s[1]]
            if inside:
                first, last = max(inside)  # the innermost layer
                result.ranges.append((first, last, codes))
            else:
                code_lines = code_lines if code_lines is not None else _code_lines(document)
                following = next((line for line in code_lines if line > comment.line), None)
                if following is not None:
                    result.ranges.append((following, following, codes))
    return result
