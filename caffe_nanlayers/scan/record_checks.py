"""What the scan reports of one record's values: non-finite counts, and labels that are no class index.

The scan layer (in Caffe's net) and the workers that read a source without
Caffe (``fast_path``, ``hdf5_range``) measure with these same functions, so a
finding is word for word the same whichever read the record. Nothing here
imports pycaffe: a worker that never runs Caffe never pays its import.
"""

from __future__ import annotations

import numpy as np

from caffe_nanlayers.finite import nonfinite_stats


def bad_label_rows(labels: np.ndarray, num_classes: int | None, ignore_label: int | None) -> np.ndarray:
    """Indices of the rows of ``labels`` (one row per record) holding a finite label that is no class index.

    Non-finite labels are left to the non-finite check, which reports them with counts.
    """
    values = labels.reshape(labels.shape[0], -1)
    with np.errstate(invalid="ignore"):
        bad = (values < 0) | (values != np.floor(values))
        if num_classes is not None:
            bad |= values >= num_classes  # +Inf too: hence the isfinite below, after every test
        if ignore_label is not None:
            bad &= values != ignore_label
        bad &= np.isfinite(values)
    return np.nonzero(bad.any(axis=1))[0]


def nonfinite_finding(values: np.ndarray) -> dict | None:
    stats = nonfinite_stats(values)
    if stats is None:
        return None
    return {
        "kind": "nonfinite",
        "nan": stats.nan,
        "posinf": stats.posinf,
        "neginf": stats.neginf,
        "size": stats.size,
        "min": stats.finite_min,
        "max": stats.finite_max,
    }


def label_finding(values: np.ndarray, label: dict) -> dict:
    flat = values.reshape(-1)
    finite = flat[np.isfinite(flat)]
    bad = finite[(finite < 0) | (finite != np.floor(finite))]
    if label["num_classes"] is not None:
        bad = np.concatenate([bad, finite[finite >= label["num_classes"]]])
    if label["ignore_label"] is not None:
        bad = bad[bad != label["ignore_label"]]
    return {
        "kind": "label",
        "nan": 0,
        "posinf": 0,
        "neginf": 0,
        "size": int(flat.size),
        "min": float(finite.min()),
        "max": float(finite.max()),
        "label": float(bad[0]),
        "num_classes": label["num_classes"],
        "ignore_label": label["ignore_label"],
    }
