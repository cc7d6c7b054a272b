"""Add an in-place CheckFiniteLayer after every layer of a net, as prototxt.

A check placed in place on layer L's tops sees, in forward, the data L just
produced, and in backward, the gradient arriving at L's tops (written by the
layers that consume them) before L's own backward runs. With a check after
every layer, the first one to fire names the producer of the first NaN:
forward, the layer it follows; backward, the consumer of that layer's tops
(``replay.gradient_producers`` resolves that on a live net).

When the net comes from a file, the checks are inserted into the user's own
text, so comments and layout survive and a diff shows only what was added;
the result is parsed back and compared with the intended net, and if the
text could not be patched faithfully it is written from the parsed net
instead. Each check copies its layer's include/exclude rules, so it exists
in exactly the phases its layer does. Loss layers get no check (see
``is_loss_layer``: it would silently switch off backward for the whole net);
their output is the loss, which the tools read directly.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib

from caffe_nanlayers.errors import UserError
from caffe_nanlayers.proto_io import caffe_pb2

CHECK_MODULE = "caffe_nanlayers.layers"
CHECK_LAYER = "CheckFiniteLayer"
CHECK_LAYER_NAMES = (CHECK_LAYER, "checkFiniteLayer")
DIRECTIONS = ("both", "forward", "backward")
MODES = ("raise", "warn", "dump")
INPUTS = ""  # CheckPoint.after for the check on the net's declared inputs


@dataclasses.dataclass(frozen=True)
class CheckPoint:
    """One added check: its name, the layer it follows and the blobs it watches."""

    name: str
    after: str  # the layer it follows; INPUTS for the net's declared inputs
    after_type: str
    blobs: tuple[str, ...]
    direction: str

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "blobs": list(self.blobs), "after": self.after or None}


@dataclasses.dataclass
class Instrumented:
    net: object  # caffe_pb2.NetParameter with the checks
    checks: list[CheckPoint]
    complete: bool  # every layer with tops is checked, in both directions
    text: str  # prototxt of ``net``, with comments marking what was added

    def check_after(self, check_name: str) -> CheckPoint | None:
        return next((c for c in self.checks if c.name == check_name), None)


def is_check_layer(layer) -> bool:
    return layer.type == "Python" and layer.python_param.layer in CHECK_LAYER_NAMES


def is_loss_layer(layer) -> bool:
    """A layer whose top is a loss: no check may follow it in place.

    Caffe decides which layers run backward from the last layer down: a layer
    after the loss that does not itself contribute to the loss marks the loss
    blob "skip backprop", and the loss layer, seeing all its tops skipped,
    then runs no backward at all: the whole net would get zero gradients.
    (A loss output is checked anyway: locate reads it after every step.)
    """
    return layer.type.endswith("Loss") or any(w != 0 for w in layer.loss_weight)


def _names(net) -> list[str]:
    return [layer.name for layer in net.layer]


def _select(net, only, skip, source_name: str) -> set[str]:
    names = _names(net)
    for option, given_names in (("--only", only), ("--skip", skip)):
        for given in given_names or ():
            if given not in names:
                close = difflib.get_close_matches(given, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise UserError(f"{source_name}: {option}: no layer named {given!r} in the net{hint}")
    chosen = set(only) if only else set(names)
    return chosen - set(skip or ())


def _check_layer(
    name: str, after: str, blobs, direction: str, mode: str, dump_dir: str | None, rules_from=None
):
    pb2 = caffe_pb2()
    layer = pb2.LayerParameter(name=name, type="Python")
    layer.bottom.extend(blobs)
    layer.top.extend(blobs)
    params = {"label": f"after {after}" if after else "net input", "mode": mode, "direction": direction}
    if dump_dir is not None:
        params["dump_dir"] = dump_dir
    layer.python_param.module = CHECK_MODULE
    layer.python_param.layer = CHECK_LAYER
    layer.python_param.param_str = repr(params)  # a Python dict literal, as the layer's docs show
    if rules_from is not None:
        layer.include.extend(rules_from.include)
        layer.exclude.extend(rules_from.exclude)
        if rules_from.HasField("phase"):
            layer.phase = rules_from.phase
    return layer


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}"
    taken.add(candidate)
    return candidate


def instrument_net(
    net,
    *,
    only=None,
    skip=None,
    direction: str = "both",
    mode: str = "raise",
    dump_dir: str | None = None,
    source_text: str | None = None,
    source_name: str = "the net",
) -> Instrumented:
    """A copy of ``net`` (a NetParameter) with a check after each selected layer."""
    if direction not in DIRECTIONS:
        raise UserError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    if mode not in MODES:
        raise UserError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if len(net.layers):
        raise UserError(
            f"{source_name} uses the legacy 'layers' (V1) format: upgrade it first "
            "(Caffe's upgrade_net_proto_text tool)"
        )
    chosen = _select(net, only, skip, source_name)
    taken = set(_names(net))
    out = caffe_pb2().NetParameter()
    out.CopyFrom(net)
    del out.layer[:]
    checks: list[CheckPoint] = []
    inserted_after: dict[int, object] = {}  # index of the layer followed -> check layer; -1 for inputs
    declared_inputs = list(net.input)
    if declared_inputs and not only:
        name = _unique("input/check_finite", taken)
        check = _check_layer(name, INPUTS, declared_inputs, direction, mode, dump_dir)
        out.layer.append(check)
        inserted_after[-1] = check
        checks.append(CheckPoint(name, INPUTS, "input", tuple(declared_inputs), direction))
    for index, layer in enumerate(net.layer):
        out.layer.add().CopyFrom(layer)
        if is_check_layer(layer) or is_loss_layer(layer) or not layer.top or layer.name not in chosen:
            continue
        name = _unique(f"{layer.name}/check_finite", taken)
        check = _check_layer(name, layer.name, layer.top, direction, mode, dump_dir, rules_from=layer)
        out.layer.append(check)
        inserted_after[index] = check
        checks.append(CheckPoint(name, layer.name, layer.type, tuple(layer.top), direction))
    complete = direction == "both" and not only and not skip
    header = _header(source_name, len(checks), direction, mode)
    text = None
    if source_text is not None:
        text = _patched_text(source_text, inserted_after, header, out)
    if text is None:
        text = _rendered_text(out, header, {c.name for c in checks})
    return Instrumented(out, checks, complete, text)


def one_line(text: str) -> str:
    """``text`` safe inside a one-line comment or message: a newline in a layer's name would end the
    comment, and what follows it would be read as prototxt (Caffe rejects the net)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def _header(source_name: str, count: int, direction: str, mode: str) -> str:
    return (
        f"# Instrumented by caffe-nan instrument from {one_line(source_name)}: {count} in-place "
        "CheckFiniteLayer\n"
        f"# checks (direction {direction}, mode {mode}), each marked by a comment and named\n"
        f"# '<layer>/check_finite' after the layer it follows. Train from the original file\n"
        f"# once the NaN is found.\n"
    )


def _comment(check) -> str:
    params = ast.literal_eval(check.python_param.param_str)
    return f"# caffe-nan instrument: added check, {one_line(params['label'])}\n"


def _layer_text(layer) -> str:
    from google.protobuf import text_format

    # text_format escapes every ' inside strings; unescaped is valid too and keeps param_str readable.
    return "layer {\n" + text_format.MessageToString(layer, indent=2).replace("\\'", "'") + "}\n"


def _rendered_text(net, header: str, added: set[str]) -> str:
    from google.protobuf import text_format

    head = caffe_pb2().NetParameter()
    head.CopyFrom(net)
    del head.layer[:]
    parts = [header, text_format.MessageToString(head)]
    for layer in net.layer:
        if layer.name in added:
            parts.append(_comment(layer))
        parts.append(_layer_text(layer))
    return "".join(parts)


def _patched_text(source: str, inserted_after: dict[int, object], header: str, expected) -> str | None:
    """Insert the checks into the user's text; None if the result is not exactly ``expected``."""
    from caffe_nanlayers.proto_io import parse_text

    spans = layer_spans(source)
    if spans is None or len(spans) != len(expected.layer) - len(inserted_after):
        return None
    inserts: list[tuple[int, str]] = []
    for index, check in inserted_after.items():
        if index == -1:
            at = spans[0][0] if spans else len(source)
            inserts.append((at, _comment(check) + _layer_text(check)))
        else:
            end = spans[index][1]
            if source.startswith("\n", end):
                inserts.append((end + 1, _comment(check) + _layer_text(check)))
            else:
                inserts.append((end, "\n" + _comment(check) + _layer_text(check)))
    text = source
    for at, piece in sorted(inserts, key=lambda i: -i[0]):
        text = text[:at] + piece + text[at:]
    text = header + "\n" + text
    try:
        parsed = parse_text(text, caffe_pb2().NetParameter(), "instrumented net")
    except UserError:
        return None
    return text if parsed == expected else None


def layer_spans(text: str) -> list[tuple[int, int]] | None:
    """(start, end) offsets of each top-level ``layer`` block; None for text this scanner cannot follow."""
    spans: list[tuple[int, int]] = []
    depth, i, n = 0, 0, len(text)
    start = None
    while i < n:
        ch = text[i]
        if ch == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if ch in "\"'":
            i += 1
            while i < n and text[i] != ch:
                i += 2 if text[i] == "\\" else 1
            i += 1
            continue
        if ch in "{<":
            depth += 1
        elif ch in "}>":
            depth -= 1
            if depth < 0:
                return None
            if depth == 0 and start is not None:
                spans.append((start, i + 1))
                start = None
        elif depth == 0 and (ch.isalpha() or ch == "_"):
            j = i
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            word = text[i:j]
            if word == "layers":
                return None
            if word == "layer":
                start = max(text.rfind("\n", 0, i) + 1, spans[-1][1] if spans else 0)
            i = j
            continue
        i += 1
    return spans if depth == 0 else None
