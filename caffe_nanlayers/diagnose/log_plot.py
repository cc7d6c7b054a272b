"""Draw a training log: loss outputs on a log scale, lr beside them, the first NaN marked.

A picture shows in a second whether the loss climbed for a hundred
iterations or jumped at once, which is the question the doctor's verdict
turns on; people check it before they trust the verdict. matplotlib is
optional: asking for a plot without it is a clear error, not a crash.
"""

from __future__ import annotations

import math
import os

from caffe_nanlayers.atomic import atomic_path
from caffe_nanlayers.diagnose.caffe_log import Series, TrainingLog
from caffe_nanlayers.errors import missing_extra, writing


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise missing_extra("--plot", "matplotlib", "plot") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# Up to this many readings, each is drawn as a point too.
_MARKED_POINTS = 50


def _positive(series: Series) -> tuple[list[int], list[float]]:
    # readings of an excerpt printed before its first Iteration line have no iteration to draw at
    points = [
        (r.iteration, abs(r.value))
        for r in series.kept()
        if r.iteration is not None and math.isfinite(r.value) and r.value != 0
    ]
    return [p[0] for p in points], [p[1] for p in points]


def plot_log(
    log: TrainingLog,
    path: str | os.PathLike,
    first_nan: int | None,
    title: str = "",
    sign_label: str = "first NaN/Inf",
) -> None:
    """Write a PNG of the log's losses and learning rate to ``path`` (atomically)."""
    plt = _pyplot()
    figure, loss_axis = plt.subplots(figsize=(9, 5), dpi=100)
    try:
        series = [("loss", log.losses)] + [(f"output {n}", r) for n, r in log.outputs.items()]
        if len(log.outputs) == 1 and log.losses:
            series = series[:1]  # the single output is the loss itself
        for label, readings in series:
            xs, ys = _positive(readings)
            if xs:
                # A short run's points must show even where one is alone between NaNs.
                marker = "o" if len(xs) <= _MARKED_POINTS else None
                loss_axis.plot(xs, ys, label=label, linewidth=1.2, marker=marker, markersize=3)
        loss_axis.set_yscale("log")
        loss_axis.set_xlabel("iteration")
        loss_axis.set_ylabel("|loss| (log scale)")
        lr_axis = loss_axis.twinx()
        xs, ys = _positive(log.lrs)
        if xs:
            lr_axis.plot(xs, ys, color="tab:gray", linestyle="--", linewidth=1, label="lr")
            lr_axis.set_yscale("log")
            lr_axis.set_ylabel("lr (log scale)")
        else:
            lr_axis.set_yticks([])
            lr_axis.set_ylabel("lr (never finite)")
        bad_lr = log.lrs.first_bad()
        if bad_lr is not None and bad_lr.iteration is not None:
            marker = [ys[-1] if ys else 1.0]
            lr_axis.plot([bad_lr.iteration], marker, "x", color="tab:gray", label="lr = NaN/Inf")
        if first_nan is not None:
            loss_axis.axvline(first_nan, color="tab:red", linestyle=":", linewidth=1.5)
            loss_axis.annotate(
                f"{sign_label}\niteration {first_nan}",
                xy=(first_nan, 0.95),
                xycoords=("data", "axes fraction"),
                xytext=(5, 0),  # right of the line, where no loss is drawn (it is NaN there)
                textcoords="offset points",
                ha="left",
                va="top",
                color="tab:red",
            )
        logged = [i for s in (log.losses, log.lrs) for i in s.iterations if i is not None]
        if logged:  # NaN readings are not drawn, but were logged: the axis spans them too
            low, high = min(logged), max(logged)
            pad = max(0.5, 0.02 * (high - low))
            loss_axis.set_xlim(low - pad, high + pad)
        handles = loss_axis.get_legend_handles_labels()
        more = lr_axis.get_legend_handles_labels()
        loss_axis.legend(handles[0] + more[0], handles[1] + more[1], loc="lower left", fontsize="small")
        loss_axis.set_title(title or "training log")
        figure.tight_layout()
        with writing(path, "the PNG plot"), atomic_path(path, suffix=".png") as tmp:
            figure.savefig(tmp, format="png")
    finally:
        plt.close(figure)
