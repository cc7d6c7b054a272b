"""What the three layers share: set-up, identity pass-through, messages, errors.

How a layer learns its prototxt name (which Caffe does not tell it) is
``naming``'s job; a layer asks it only when there is something to report.
"""

from __future__ import annotations

import logging
import sys

import caffe

from caffe_nanlayers.errors import NonFiniteError, UserError
from caffe_nanlayers.finite import nonfinite_stats
from caffe_nanlayers.layers import naming
from caffe_nanlayers.params import Key, parse_param_str

logger = logging.getLogger(__name__.rsplit(".", 1)[0])  # "caffe_nanlayers.layers"

LABEL = Key(str, default="", doc="free text shown in every message of this layer, e.g. 'after fc2'")


class NanLayer(caffe.Layer):
    """Base of the package's layers; subclasses set ``SCHEMA`` and ``TOPS``.

    ``TOPS`` is ``"same"`` (one top per bottom, in place or not) or
    ``"same_or_none"`` (also no top at all: a forward-only probe).
    """

    SCHEMA: dict = {"label": LABEL}
    TOPS = "same"

    # Filled by bind_names() or, on the error path, by resolve_names().
    name: str | None = None
    bottom_names: list | None = None
    top_names: list | None = None

    def setup(self, bottom, top):
        # First, so that a layer whose param_str fails can still be named.
        self._set_up_index = naming.count_set_up(self)
        self.params = self._parse()
        self.label = self.params["label"]
        self.forward_passes = 0
        self.backward_passes = 0
        n_bottom, n_top = len(bottom), len(top)
        if n_bottom == 0 or not (n_top == n_bottom or (n_top == 0 and self.TOPS == "same_or_none")):
            self.resolve_names()
            expected = "as many tops as bottoms" + (" (or none)" if self.TOPS == "same_or_none" else "")
            raise UserError(
                f"{self.who()}: needs at least one bottom and {expected}; "
                f"has {n_bottom} bottom(s), {n_top} top(s)"
            )
        # Caffe makes a layer in place by giving it the same Blob as top and
        # bottom, fixed for the life of the net: decided once here, so the
        # per-iteration reshape and pass-through cost nothing in place.
        self.in_place = all(_same_blob(bottom[i], top[i]) for i in range(n_top))
        _ensure_visible_logging()
        self.setup_layer(bottom, top)

    def setup_layer(self, bottom, top):
        """Subclass hook, called at the end of ``setup``."""

    def _parse(self):
        def parse(layer_name):
            return parse_param_str(
                self.param_str, self.SCHEMA, layer_class=type(self).__name__, layer_name=layer_name
            )

        try:
            return parse(None)
        except UserError:
            name = self.resolve_names()  # error path: worth a look-up
            if not name:
                raise
        return parse(name)  # raises again, now naming the layer

    def reshape(self, bottom, top):
        if self.in_place:
            return  # the top is the bottom: Caffe has shaped it already
        for i in range(len(top)):
            top[i].reshape(*bottom[i].shape)  # not .data: see has_memory

    # -- identity pass-through, shared by the layers that do not change data --

    def pass_forward(self, bottom, top):
        if self.in_place:
            return
        for i in range(len(top)):
            if not has_memory(bottom[i]):
                continue
            src, dst = bottom[i].data, top[i].data
            if not same_memory(src, dst):
                dst[...] = src

    def pass_backward(self, top, propagate_down, bottom):
        if self.in_place:
            return
        for i in range(len(top)):
            if propagate_down[i] and has_memory(top[i]):
                src, dst = top[i].diff, bottom[i].diff
                if not same_memory(src, dst):
                    dst[...] = src

    # -- names and messages (error path only) --

    def who(self) -> str:
        """How messages name this layer: class, prototxt name, label."""
        text = type(self).__name__
        text += f" {self.name!r}" if self.name else " (layer name unknown: see bind_names)"
        label = getattr(self, "label", "")
        return text + (f" [{label}]" if label else "")

    def blob_name(self, direction: str, index: int) -> str | None:
        names = self.bottom_names if direction == "forward" else self.top_names
        return names[index] if names is not None and index < len(names) else None

    def resolve_names(self) -> str | None:
        """Find this layer's prototxt name and blob names; cache and return the name."""
        if self.name is None and not getattr(self, "_looked_up_names", False):
            self._looked_up_names = True
            found = naming.find_in_live_nets(self) or naming.find_in_command_line_prototxt(self)
            if found:
                self.name, self.bottom_names, self.top_names = found
        return self.name

    def measure(self, direction: str, arrays: dict) -> list:
        """[(blob index, blob name, NonFiniteStats)] of the bad ones among ``arrays`` ({index: array})."""
        self.resolve_names()
        found = []
        for index, array in arrays.items():
            stats = nonfinite_stats(array)
            if stats is not None:
                found.append((index, self.blob_name(direction, index), stats))
        return found

    def nonfinite_error(
        self, direction: str, found: list, iteration: int, dump_path=None, dump_failure: str | None = None
    ) -> NonFiniteError:
        """The error for what ``measure`` found in one pass.

        The attributes describe the first bad blob; the message describes all
        of them, and where they were dumped or why they could not be.
        """
        if direction == "forward":
            kind, what = "bottom", "data"
        else:
            kind, what = "top", "diff (the gradient arriving here)"
        lines = [
            f"{kind} {index}" + (f" {name!r}" if name else "") + f" {what}: {stats.describe()}"
            for index, name, stats in found
        ]
        message = f"{self.who()}: non-finite values in {direction} pass, iteration {iteration}: "
        message += "\n  ".join(lines)
        if dump_path:
            message += f"\n  blobs saved to {dump_path}"
        if dump_failure:
            message += f"\n  dump failed: {dump_failure}"
        index, name, stats = found[0]
        return NonFiniteError(
            message,
            layer=self.name,
            label=self.label or None,
            direction=direction,
            blob_index=index,
            blob_name=name,
            stats=stats,
            iteration=iteration,
            dump_path=str(dump_path) if dump_path else None,
        )


def has_memory(blob) -> bool:
    """Whether ``blob.data`` and ``blob.diff`` may be read.

    A blob with a 0 in its shape (an empty batch, say) holds nothing and
    Caffe never allocates it: pycaffe's ``.data`` of it is a failed CHECK
    that aborts the whole process. The layers skip such blobs.
    """
    return blob.count > 0


def _same_blob(a, b) -> bool:
    """Whether two pycaffe blobs are one (pycaffe gives a new wrapper each time, so compare data).

    Blobs without memory are taken as distinct. Wrong for an empty in-place
    blob, but harmless: the pass-through skips empty blobs and never copies
    a blob onto itself.
    """
    return has_memory(a) and has_memory(b) and same_memory(a.data, b.data)


def same_memory(a, b) -> bool:
    """True for an in-place layer: top and bottom are one blob (nothing to copy)."""
    return a.__array_interface__["data"][0] == b.__array_interface__["data"][0]


class _FallbackHandler(logging.StreamHandler):
    """stderr output for the ``caffe train`` case, where nobody configures logging.

    Stays silent as soon as the application configures the root logger, so
    messages are never printed twice.
    """

    def emit(self, record):
        if not logging.getLogger().handlers:
            super().emit(record)


def _ensure_visible_logging():
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = _FallbackHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"[{logger.name}] %(levelname)s %(message)s"))
    logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
