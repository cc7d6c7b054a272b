"""Findings as text, JSON, GitHub annotations or SARIF: one function each, nothing else.

The text format is flake8's and ruff's, ``path:line:col: CODE message``, so
editors and CI log parsers already understand it; colour only on a terminal.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections import Counter
from urllib.parse import quote

from caffe_nanlayers.errors import printable
from caffe_nanlayers.lint.findings import Finding
from caffe_nanlayers.lint.rules import NOT_LINTED, RULES

FORMATS = ("text", "json", "github", "sarif")
_COLOURS = {"error": "\033[31m", "warning": "\033[33m", "info": "\033[36m"}
_BOLD, _RESET = "\033[1m", "\033[0m"


def summary(findings: list[Finding]) -> str:
    counts = Counter(f.severity for f in findings)
    parts = [f"{counts[s]} {s}{'s' if counts[s] != 1 else ''}" for s in ("error", "warning", "info")]
    parts = [p for p in parts if not p.startswith("0 ")]
    files = len({f.path for f in findings})
    noun = "problem" if len(findings) == 1 else "problems"
    return f"Found {len(findings)} {noun} ({', '.join(parts)}) in {files} file{'s' if files != 1 else ''}."


def format_text(findings: list[Finding], colour: bool = False) -> str:
    lines = []
    for f in findings:
        path, message = printable(f.path), printable(f.message)
        if colour:
            code = f"{_COLOURS.get(f.severity, '')}{_BOLD}{f.code}{_RESET}"
            lines.append(f"{_BOLD}{path}{_RESET}:{f.line}:{f.column}: {code} {message}")
        else:
            lines.append(f"{path}:{f.line}:{f.column}: {f.code} {message}")
    if findings:
        lines.append(summary(findings))
    return "\n".join(lines)


def format_json(findings: list[Finding]) -> str:
    return json.dumps([f.as_dict() for f in findings], indent=2)


def _github_escape(text: str, property_value: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def format_github(findings: list[Finding]) -> str:
    level = {"error": "error", "warning": "warning", "info": "notice"}
    return "\n".join(
        f"::{level.get(f.severity, 'warning')} file={_github_escape(printable(f.path), True)},line={f.line},"
        f"col={f.column},title={f.code}::{_github_escape(printable(f.message))}"
        for f in findings
    )


def sarif_uri(path: str, cwd: str | None = None) -> str:
    """Relative to the working directory when the file is below it (code scanning resolves such a URI
    against the checkout), else an absolute file:// URI."""
    absolute = os.path.abspath(path)
    try:
        relative = os.path.relpath(absolute, cwd or os.getcwd())
    except ValueError:  # another drive (Windows)
        relative = os.pardir
    if relative.split(os.sep)[0] == os.pardir:
        return pathlib.Path(absolute).as_uri()
    return quote(relative.replace(os.sep, "/"))


def format_sarif(findings: list[Finding]) -> str:
    level = {"error": "error", "warning": "warning", "info": "note"}
    known = (
        {NOT_LINTED.code: NOT_LINTED, **RULES} if any(f.code == NOT_LINTED.code for f in findings) else RULES
    )
    rules = [
        {
            "id": code,
            "name": known[code].name,
            "shortDescription": {"text": known[code].summary},
            "fullDescription": {"text": known[code].doc.split("\n\n")[0].replace("\n", " ")},
            "help": {"text": known[code].doc},
            "defaultConfiguration": {"level": level[known[code].severity]},
        }
        for code in sorted(known)
    ]
    index = {r["id"]: i for i, r in enumerate(rules)}
    results = [
        {
            "ruleId": f.code,
            "ruleIndex": index.get(f.code, 0),
            "level": level.get(f.severity, "warning"),
            "message": {"text": f.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": sarif_uri(f.path)},
                        "region": {"startLine": f.line, "startColumn": f.column},
                    }
                }
            ],
        }
        for f in findings
    ]
    log = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "lint-prototxt", "rules": rules}}, "results": results}],
    }
    return json.dumps(log, indent=2)


def render(findings: list[Finding], fmt: str, colour: bool = False) -> str:
    if fmt == "text":
        return format_text(findings, colour)
    return {"json": format_json, "github": format_github, "sarif": format_sarif}[fmt](findings)
