"""Check throughput: is CheckFiniteLayer's clean path as cheap as one read of the blob?

The check runs on every blob of every iteration, so its clean path must cost
no more than reading the array once. ``numpy.sum`` of the same float32 array
is that practical limit (one pass, no temporaries); the snippet Caffe users
copy, ``np.sum(1 - np.isfinite(x))``, is what people use today. The dirty
path (statistics of the NaNs, paid once, when something is wrong) is timed
too, as a multiple of the sum, so nobody is surprised by its cost.

Target: from 1M elements up, at least 0.9x the speed of ``numpy.sum`` and at
least 5x the speed of the snippet.

    python bench/bench_check.py [--quick]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from timing import calls_for, fmt_seconds, interleaved, ratios, summarize

from caffe_nanlayers.finite import all_finite, nonfinite_stats

SIZES = [1 << 10, 1 << 16, 1 << 20, 1 << 24, 1 << 26]
QUICK_SIZES = [1 << 10, 1 << 16, 1 << 20]
TARGET_FROM = 1 << 20
TARGET_VS_SUM = 0.9
TARGET_VS_SNIPPET = 5.0
BAD_SHARE = 1e-3  # the dirty arrays hold 0.1% NaN, at random places


def snippet(x):
    """The check Caffe users copy into their own Python layers."""
    return np.sum(1 - np.isfinite(x))


def dirty_path(x):
    """What CheckFiniteLayer does when a blob is bad: the check, then the statistics."""
    return all_finite(x) or nonfinite_stats(x)


def size_label(n: int) -> str:
    return f"{n >> 20}M" if n >= 1 << 20 else f"{n >> 10}K"


def measure(size: int, repeats: int, block_seconds: float, rng) -> dict:
    clean = rng.standard_normal(size, dtype=np.float32)
    dirty = clean.copy()
    dirty[rng.choice(size, max(1, int(size * BAD_SHARE)), replace=False)] = np.nan
    # The bench is worthless if the contenders disagree on the answer.
    if not (all_finite(clean) and not all_finite(dirty) and snippet(clean) == 0 and snippet(dirty) > 0):
        raise AssertionError(f"check and snippet disagree at size {size}")
    contenders = {
        "sum": lambda: np.sum(clean),
        "check": lambda: all_finite(clean),
        "snippet": lambda: snippet(clean),
        "dirty": lambda: dirty_path(dirty),
    }
    number = {name: calls_for(func, block_seconds) for name, func in contenders.items()}
    times = interleaved(contenders, repeats=repeats, number=number)
    vs_sum = ratios(times["sum"], times["check"])
    vs_snippet = ratios(times["snippet"], times["check"])
    dirty_cost = ratios(times["dirty"], times["sum"])
    if size >= TARGET_FROM:
        met = vs_sum.median >= TARGET_VS_SUM and vs_snippet.median >= TARGET_VS_SNIPPET
        verdict = "met" if met else "MISSED"
    else:
        verdict = "(no target)"
    return {
        "size": size,
        "times": {name: summarize(values) for name, values in times.items()},
        "vs_sum": vs_sum,
        "vs_snippet": vs_snippet,
        "dirty_cost": dirty_cost,
        "verdict": verdict,
    }


def run(quick: bool = False) -> dict:
    rng = np.random.default_rng(7)
    sizes = QUICK_SIZES if quick else SIZES
    # Many short blocks rather than a few long ones: on a busy machine the
    # median of many paired ratios is what stays put from run to run.
    repeats = 7 if quick else 21
    block = 0.005 if quick else 0.01
    results = [measure(size, repeats, block, rng) for size in sizes]
    rows = [
        [
            size_label(r["size"]),
            fmt_seconds(r["times"]["sum"].median),
            fmt_seconds(r["times"]["check"].median),
            r["vs_sum"].fmt(),
            fmt_seconds(r["times"]["snippet"].median),
            r["vs_snippet"].fmt(digits=1),
            fmt_seconds(r["times"]["dirty"].median),
            r["dirty_cost"].fmt(digits=1),
            r["verdict"],
        ]
        for r in results
    ]
    return {
        "title": "1. Check throughput (float32, clean path of CheckFiniteLayer)",
        "columns": [
            "elements",
            "numpy.sum",
            "check",
            "check speed vs sum",
            "snippet",
            "check speed vs snippet",
            f"dirty path ({BAD_SHARE:.1%} NaN)",
            "dirty cost, in sums",
            f"target (>= {TARGET_VS_SUM}x sum, >= {TARGET_VS_SNIPPET:g}x snippet, from 1M)",
        ],
        "rows": rows,
        "notes": [
            "check = `caffe_nanlayers.finite.all_finite`, the function CheckFiniteLayer calls on each blob; "
            "snippet = `np.sum(1 - np.isfinite(x))`; dirty path = the check, then `nonfinite_stats` "
            "(counts, first index, finite range).",
            f"Ratios are speeds (time of the other / time of the check), median over {repeats} interleaved "
            "repeats, min-max in brackets; times are medians per call.",
        ],
        "results": results,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes up to 1M, fewer repeats")
    args = parser.parse_args(argv)
    result = run(quick=args.quick)
    print(result["title"])
    for row in result["rows"]:
        print("  ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
