"""The verdict of ``locate`` and ``doctor``, as a plain value with two formatters.

Both tools end the same way: where the first NaN/Inf was, the evidence, the
probable cause and its fix. Keeping that a value (not prints scattered in the
tools) lets the text and the JSON say exactly the same thing, and lets tests
assert on the verdict rather than on wording.
"""

from __future__ import annotations

import dataclasses
import json

from caffe_nanlayers.diagnose.causes import Cause


@dataclasses.dataclass
class Diagnosis:
    tool: str  # "doctor" | "locate"
    source: str  # the log or solver it is about
    nan_found: bool
    summary: str  # one line: what happened, or that nothing did
    iteration: int | None = None
    cause: Cause | None = None
    also_possible: list[Cause] = dataclasses.field(default_factory=list)
    evidence: list[str] = dataclasses.field(default_factory=list)
    details: dict = dataclasses.field(default_factory=dict)  # tool-specific, JSON-ready
    confidence: str | None = None  # of the cause: "high" | "medium" | "low" (doctor)
    next_steps: list[str] = dataclasses.field(default_factory=list)  # what to collect when unsure

    @property
    def exit_code(self) -> int:
        return 1 if self.nan_found else 0

    def as_dict(self) -> dict:
        return {
            "tool": self.tool,
            "source": self.source,
            "nan_found": self.nan_found,
            "summary": self.summary,
            "iteration": self.iteration,
            "cause": self.cause.as_dict() if self.cause else None,
            "confidence": self.confidence,
            "also_possible": [c.as_dict() for c in self.also_possible],
            "evidence": list(self.evidence),
            "next_steps": list(self.next_steps),
            **self.details,
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, allow_nan=False, default=str)

    def to_text(self) -> str:
        lines = [f"{self.source}: {self.summary}"]
        for item in self.evidence:
            lines.append(f"  - {item}")
        if self.cause:
            sure = f" ({self.confidence} confidence)" if self.confidence else ""
            lines.append(f"probable cause [{self.cause.id}]{sure}: {self.cause.title}")
            lines.append(f"  why: {self.cause.explanation}")
            lines.append(f"  fix: {self.cause.fix}")
        for other in self.also_possible:
            lines.append(f"also possible [{other.id}]: {other.title}; fix: {other.fix}")
        if self.next_steps:
            lines.append("to tell the causes apart:" if self.confidence != "high" else "next:")
            lines += [f"  - {step}" for step in self.next_steps]
        return "\n".join(lines)
