"""A finding is a plain value; formatters alone decide how it is shown.

Severity orders the findings a user should read first; the exit code does not
depend on it (any finding exits 1, as in ruff and flake8).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITIES = (ERROR, WARNING, INFO)


@dataclass(frozen=True, order=True)
class Finding:
    path: str
    line: int
    column: int
    code: str
    severity: str
    message: str

    def as_dict(self) -> dict:
        return asdict(self)


def printable(text: str) -> str:
    """``text`` with control and other unprintable characters escaped (``\\n``, ``\\x1b``).

    A layer or file name is the user's data: a newline in it must not print what looks like another
    finding, nor an ESC sequence clear the terminal, nor a carriage return overwrite the path.
    """
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        else:
            code = ord(ch)
            out.append(
                f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
            )
    return "".join(out)
