"""A finding is a plain value; formatters alone decide how it is shown.

Severity orders the findings a user should read first; the exit code does not
depend on it (any finding exits 1, as in ruff and flake8).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

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
