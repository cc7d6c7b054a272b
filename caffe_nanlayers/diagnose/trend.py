"""Did a series of numbers grow by orders of magnitude before it went NaN?

Gradient explosion and a bad batch look the same at the moment of the NaN;
what tells them apart is the history before it. ``locate`` (gradient and
weight norms it measured) and ``doctor`` (losses it read) ask the same
question of different series, so the rule lives here once.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

# Two orders of magnitude between the start of a run and its last finite
# values: more than any healthy loss curve climbs, less than any explosion.
EXPLOSION_FACTOR = 100.0


def growth(values: Sequence[float], minimum: int = 3) -> float | None:
    """How many times larger the last finite values are than the early ones (None: fewer than ``minimum``).

    A log displayed every 100 iterations may hold two readings before its NaN: the doctor asks
    with ``minimum=2`` (393 then 1.7e6 is growth enough), locate, which sees every step, with 3.
    """
    finite = [abs(v) for v in values if math.isfinite(v)]
    if len(finite) < max(2, minimum):
        return None
    early = finite[: max(1, len(finite) // 3)]
    baseline = statistics.median(early)
    peak = max(finite[-3:])
    if baseline <= 0:
        positive = [v for v in finite if v > 0]
        if not positive:
            return None
        baseline = min(positive)
    return peak / baseline


def is_explosion(ratio: float | None, factor: float = EXPLOSION_FACTOR) -> bool:
    """Whether a growth ratio (``growth``, or a last/first ratio; None: unknown) is an explosion."""
    return ratio is not None and ratio >= factor


def exploded(values: Sequence[float], factor: float = EXPLOSION_FACTOR) -> bool:
    return is_explosion(growth(values), factor)


def last_finite(values: Sequence[float]) -> float:
    """The last finite value of a series (NaN when it has none)."""
    return next((v for v in reversed(values) if math.isfinite(v)), math.nan)
