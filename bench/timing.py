"""Interleaved timing and paired ratios: how every bench here measures.

The machines these benches run on are noisy (shared cores, frequency
changes, other jobs). Timing A for a while and then B for a while lets a
slow patch hit only one of them. So every contender runs once per repeat,
in a rotating order (A B C, B C A, C A B, ...), and each figure is the
median over repeats of a ratio taken within the same repeat: drift that
hits a whole repeat cancels out of the ratio. The spread (min-max over
repeats) is reported next to every median so a reader can see the noise.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Callable


@dataclasses.dataclass(frozen=True)
class Summary:
    """Median and spread of one series of repeats."""

    median: float
    low: float
    high: float
    n: int

    def fmt(self, unit: str = "x", digits: int = 2) -> str:
        """``1.02x (0.97-1.10)``: median, then min-max over the repeats."""
        return f"{self.median:.{digits}f}{unit} ({self.low:.{digits}f}-{self.high:.{digits}f})"


def summarize(values: list[float]) -> Summary:
    return Summary(statistics.median(values), min(values), max(values), len(values))


def ratios(numerator: list[float], denominator: list[float]) -> Summary:
    """Per-repeat ratios of two interleaved series, summarized."""
    return summarize([a / b for a, b in zip(numerator, denominator, strict=True)])


def calls_for(func: Callable[[], object], seconds: float, cap: int = 1_000_000) -> int:
    """How many calls of ``func`` take about ``seconds`` (at least one)."""
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            func()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 4 or n >= cap:
            return max(1, min(cap, round(n * seconds / max(elapsed, 1e-9))))
        n *= 4


def interleaved(
    contenders: dict[str, Callable[[], object]],
    repeats: int,
    number: int | dict[str, int] = 1,
    warmup: int = 1,
) -> dict[str, list[float]]:
    """Seconds per call of each contender, one value per repeat.

    ``number`` calls (per contender, or one count for all) make one timed
    block; blocks of all contenders alternate within each repeat, starting
    from a different contender each time.
    """
    names = list(contenders)
    for _ in range(warmup):
        for name in names:
            contenders[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            func = contenders[name]
            n = number[name] if isinstance(number, dict) else number
            start = time.perf_counter()
            for _ in range(n):
                func()
            times[name].append((time.perf_counter() - start) / n)
    return times


def fmt_seconds(seconds: float) -> str:
    """A duration with a unit a reader takes in at a glance."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"
