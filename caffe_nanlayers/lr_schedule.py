"""Caffe's learning-rate formula, evaluated the way SGDSolver::GetLearningRate does.

The formula is computed in double and stored in a float (Caffe's ``Dtype``),
so a schedule can underflow to 0 or overflow to inf where the algebra says it
should not. ``first_bad_iteration`` finds the first iteration in
``[0, max_iter)`` where the rate is NaN, ±inf, negative or zero, without
looping over millions of iterations: it samples, then bisects, and checks the
iterations where the rate jumps (steps).

It serves the linter's solver rules, the doctor (which parameters a policy
needs) and locate (the rate at the failing iteration): one formula for all.
"""

from __future__ import annotations

import bisect
import functools
import math
import struct
from dataclasses import dataclass, field

POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")

# What each policy reads besides base_lr (and, for poly, max_iter).
REQUIRED = {
    "fixed": (),
    "step": ("stepsize", "gamma"),
    "exp": ("gamma",),
    "inv": ("gamma", "power"),
    "multistep": ("stepvalue", "gamma"),
    "poly": ("max_iter", "power"),
    "sigmoid": ("gamma", "stepsize"),
}

FLT_MAX = 3.4028234663852886e38
SAMPLES = 2048


_FLOAT32 = struct.Struct("f")
_PACK, _UNPACK = _FLOAT32.pack, _FLOAT32.unpack


def to_float32(x: float) -> float:
    """``x`` rounded to a C float, as assigning to ``Dtype rate`` does (overflow gives ±inf).

    NaN and ±inf pass through the packing unchanged; only a finite value too large for a float
    overflows. A schedule evaluates this hundreds of thousands of times on a model collection."""
    try:
        return _UNPACK(_PACK(x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def _pow(base: float, exponent: float) -> float:
    """C's pow: NaN for a negative base with a fractional exponent, inf for 0 to a negative power."""
    if base == 0 and exponent < 0:
        return math.inf
    try:
        result = math.pow(base, exponent)
    except ValueError:
        return math.nan
    except OverflowError:
        return math.inf if base > 0 or (float(exponent).is_integer() and exponent % 2 == 0) else -math.inf
    except ZeroDivisionError:
        return math.inf
    return result


def _exp(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


@dataclass
class Schedule:
    """The solver fields GetLearningRate reads (Caffe's defaults: 0, except what is given)."""

    policy: str
    base_lr: float = 0.0
    gamma: float = 0.0
    power: float = 0.0
    stepsize: int = 0
    stepvalues: list[int] = field(default_factory=list)
    max_iter: int = 0

    @functools.cached_property
    def _as_float32(self) -> tuple[float, float, float]:
        """base_lr, gamma and power as the C floats Caffe holds them in (rounded once, not per iteration)."""
        return to_float32(self.base_lr), to_float32(self.gamma), to_float32(self.power)

    @functools.cached_property
    def _sorted_steps(self) -> list[int]:
        """The stepvalues sorted once: counting those passed is then a bisection, not a walk of all."""
        return sorted(self.stepvalues)

    def rate(self, it: int) -> float:
        """The learning rate at iteration ``it``; raises ZeroDivisionError where Caffe gets SIGFPE."""
        base, gamma, power = self._as_float32
        p = self.policy
        if p == "fixed":
            r = base
        elif p == "step":
            r = base * _pow(gamma, it // self.stepsize)  # integer division: stepsize 0 is SIGFPE
        elif p == "exp":
            r = base * _pow(gamma, it)
        elif p == "inv":
            r = base * _pow(to_float32(1.0 + to_float32(gamma * it)), -power)  # float math, as Caffe
        elif p == "multistep":
            step = bisect.bisect_right(self._sorted_steps, it)  # how many stepvalues are <= it
            r = base * _pow(gamma, step)
        elif p == "poly":
            ratio = to_float32(it / self.max_iter) if self.max_iter else (math.nan if it == 0 else math.inf)
            r = base * _pow(to_float32(1.0 - ratio), power)
        elif p == "sigmoid":
            r = base * (1.0 / (1.0 + _exp(-gamma * (it - float(self.stepsize)))))
        else:
            raise ValueError(f"unknown lr_policy {p!r}")
        if math.isnan(r):
            return r
        return to_float32(r)

    def jump_points(self, last: int) -> list[int]:
        """Iterations where a piecewise-constant schedule changes."""
        if self.policy == "multistep":
            return [v for v in self.stepvalues if 0 <= v <= last]
        if self.policy == "step" and self.stepsize > 0:
            count = last // self.stepsize
            if count <= SAMPLES:
                return [k * self.stepsize for k in range(1, count + 1)]
            return [k * self.stepsize for k in range(1, SAMPLES + 1)] + [count * self.stepsize]
        return []


def is_bad(rate: float) -> bool:
    return math.isnan(rate) or math.isinf(rate) or rate <= 0


@dataclass
class BadRate:
    iteration: int
    rate: float | None  # None: the division by zero that kills Caffe with SIGFPE

    def describe(self) -> str:
        if self.rate is None:
            return "integer division by zero (Caffe dies with SIGFPE)"
        if math.isnan(self.rate):
            return "lr = nan"
        if math.isinf(self.rate):
            return f"lr = {'-' if self.rate < 0 else ''}inf"
        return f"lr = {self.rate:g}"


def first_bad_iteration(schedule: Schedule) -> BadRate | None:
    """The first iteration in [0, max_iter) (at least iteration 0) whose rate is unusable."""
    last = max(schedule.max_iter - 1, 0)
    if schedule.policy == "step" and schedule.stepsize == 0:
        return BadRate(0, None)
    candidates = {0, 1, last} | set(schedule.jump_points(last))
    step = max(1, last // SAMPLES)
    candidates.update(range(0, last + 1, step))
    ordered = sorted(c for c in candidates if 0 <= c <= last)
    previous_good = -1
    for it in ordered:
        rate = schedule.rate(it)
        if is_bad(rate):
            lo, hi = previous_good, it  # rate(lo) good (or lo = -1), rate(hi) bad: bisect for the first
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if is_bad(schedule.rate(mid)):
                    hi = mid
                else:
                    lo = mid
            return BadRate(hi, schedule.rate(hi))
        previous_good = it
    return None
