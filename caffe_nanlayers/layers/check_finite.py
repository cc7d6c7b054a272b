"""CheckFiniteLayer: stop at the first NaN/Inf, forward or backward, and say where.

It replaces the ``checkFiniteLayer`` snippet Caffe users pass around, which
checks only the forward pass in practice: its backward looks at a top's diff
only when ``propagate_down`` is false, that is, never when it matters. Here
the backward pass checks every top's diff, the gradient arriving at this
point of the net, whatever ``propagate_down`` says.

A check is meant to stay in a training net, so the clean path is one read of
each blob (``finite.all_finite``); statistics, names and dumps are computed
only once something is wrong.
"""

from __future__ import annotations

import errno
import json
import re
from pathlib import Path

import numpy as np

from caffe_nanlayers.atomic import atomic_path
from caffe_nanlayers.finite import all_finite
from caffe_nanlayers.layers.base import LABEL, NanLayer, has_memory, logger
from caffe_nanlayers.params import Key

SCHEMA = {
    "label": LABEL,
    "mode": Key(
        str,
        default="raise",
        choices=("raise", "warn", "dump"),
        doc="raise NonFiniteError; warn: log a warning through Python logging and go on; "
        "dump: save the offending blobs as .npz under dump_dir, then raise",
    ),
    "dump_dir": Key(
        str, default="nan_dumps", doc="directory for mode 'dump' (created if missing; relative to the cwd)"
    ),
    "direction": Key(
        str,
        default="both",
        choices=("both", "forward", "backward"),
        doc="forward checks every bottom's data; backward checks every top's diff",
    ),
}


class CheckFiniteLayer(NanLayer):
    """Checks its bottoms' data (forward) and its tops' diffs (backward).

    Any number of bottoms; in place (top == bottom: nothing is copied), not
    in place (data forward and diffs backward are copied, honouring
    ``propagate_down``) or without tops (a forward-only probe).
    """

    SCHEMA = SCHEMA
    TOPS = "same_or_none"

    def setup_layer(self, bottom, top):
        direction = self.params["direction"]
        self.check_forward = direction in ("both", "forward")
        self.check_backward = direction in ("both", "backward")
        self.mode = self.params["mode"]
        self.events = 0  # passes in which something non-finite was found (useful with mode 'warn')

    # forward and backward run for every check in every iteration: on the
    # clean path they read each blob once and build nothing.

    def forward(self, bottom, top):
        iteration = self.forward_passes
        self.forward_passes += 1
        if self.check_forward:
            bad = _nonfinite(bottom, diff=False)
            if bad:
                self._found("forward", bad, iteration)
        if not self.in_place:
            self.pass_forward(bottom, top)

    def backward(self, top, propagate_down, bottom):
        iteration = self.backward_passes
        self.backward_passes += 1
        if self.check_backward:
            bad = _nonfinite(top, diff=True)
            if bad:
                self._found("backward", bad, iteration)
        if not self.in_place:
            self.pass_backward(top, propagate_down, bottom)

    def _found(self, direction, bad, iteration):
        """Report the non-finite arrays ``bad`` ({blob index: array}) as ``mode`` says."""
        self.events += 1
        found = self.measure(direction, bad)
        if self.mode == "warn":
            logger.warning("%s", self.nonfinite_error(direction, found, iteration))
            return
        dump_path = dump_failure = None
        if self.mode == "dump":
            try:
                dump_path = self._dump(direction, bad, found, iteration)
            except OSError as exc:
                # The NaN is what the user must hear about; a full disk or a
                # read-only dump_dir is a footnote to it, not a replacement.
                dump_failure = _os_reason(exc)
        raise self.nonfinite_error(direction, found, iteration, dump_path, dump_failure)

    def _dump(self, direction, arrays, found, iteration) -> Path:
        """Write the bad blobs and what is known about them to one .npz file.

        ``blob<i>`` holds bottom i's data (forward) or top i's diff (backward);
        ``meta`` a JSON string: layer, label, direction, iteration and, per
        blob, its index, name, shape and counts.
        """
        if "\0" in str(self.params["dump_dir"]):  # no system call takes it: os raises a bare ValueError
            raise OSError(errno.EINVAL, "a path cannot hold a NUL byte", repr(self.params["dump_dir"]))
        directory = Path(self.params["dump_dir"])
        directory.mkdir(parents=True, exist_ok=True)
        stem = re.sub(r"[^\w.-]+", "_", self.name or self.label or type(self).__name__)
        path = directory / f"{stem}-{direction}-iter{iteration}.npz"
        n = 1
        while path.exists():
            path = directory / f"{stem}-{direction}-iter{iteration}-{n}.npz"
            n += 1
        meta = {
            "layer": self.name,
            "label": self.label,
            "direction": direction,
            "iteration": iteration,
            "blobs": [
                {"index": index, "name": name, "array": f"blob{index}", **stats.as_dict()}
                for index, name, stats in found
            ],
        }
        # A file object, not a name: given a name, np.savez appends ".npz" to the temporary one.
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)), **{f"blob{i}": arrays[i] for i, _, _ in found})
        return path


def _nonfinite(blobs, diff: bool) -> dict | None:
    """{index: array} of the blobs whose data (or diff) holds NaN or Inf; None when none does."""
    bad = None
    for i in range(len(blobs)):
        blob = blobs[i]  # a new wrapper at each indexing: fetched once
        if has_memory(blob):
            array = blob.diff if diff else blob.data
            if not all_finite(array):
                if bad is None:
                    bad = {}
                bad[i] = array
    return bad


def _os_reason(exc: OSError) -> str:
    """'Not a directory: nan_dumps/x.npz' rather than '[Errno 20] Not a directory: ...'."""
    if exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    return exc.strerror or str(exc)


# The name of the snippet this layer replaces, so existing prototxt files keep working.
checkFiniteLayer = CheckFiniteLayer
