"""The rules reference, ``docs/lint-rules.md``, rendered from the rules' own docstrings.

Each rule's rationale, fix and PASS/FAIL examples are written once, beside its
check (the examples are test cases too); the page is generated from them so
that it cannot drift from the code, and a test fails when it is out of date::

    python -m caffe_nanlayers.lint.reference > docs/lint-rules.md
"""

from __future__ import annotations

import sys

from caffe_nanlayers.lint.rules import NOT_LINTED, RULES, Rule

HEADER = """# lint-prototxt rules

Generated from the rules' docstrings by `python -m caffe_nanlayers.lint.reference`;
`lint-prototxt --explain CODE` prints the same text. Codes: NAN0xx schema
(caffe.proto), NAN1xx nets, NAN2xx solvers. Usage and options: [lint-prototxt](lint.md).
"""


def markdown(doc: str) -> str:
    """A docstring's text as Markdown: ``literal`` becomes `literal`, a ``Label::`` block a fenced one."""
    out: list[str] = []
    in_block = False
    for line in doc.splitlines():
        if in_block and line.strip() and not line.startswith("    "):
            _close_block(out)
            in_block = False
        if in_block:
            if line.strip() or out[-1] != "```prototxt":  # no blank line first in a block
                out.append(line[4:])
        elif line.rstrip().endswith("::"):
            out += [line.rstrip()[:-1].replace("``", "`"), "", "```prototxt"]
            in_block = True
        else:
            out.append(line.replace("``", "`"))
    if in_block:
        _close_block(out)
    return "\n".join(out).rstrip() + "\n"


def _close_block(out: list[str]) -> None:
    while out and not out[-1].strip():
        out.pop()
    out += ["```", ""]


def section(rule: Rule) -> str:
    return f"## {rule.code} {rule.name} ({rule.severity})\n\n{rule.summary}\n\n{markdown(rule.doc)}"


def reference() -> str:
    return "\n".join([HEADER, *(section(rule) for rule in (NOT_LINTED, *RULES.values()))])


if __name__ == "__main__":
    sys.stdout.write(reference())
