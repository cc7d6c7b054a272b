"""The one parser of ``param_str``, shared by every Python layer of the package.

Caffe hands a Python layer one free-form string. Users pass around two
styles: a bare word (the widely copied ``checkFiniteLayer`` snippet uses
``param_str: "prefix-check_loss"`` as a label) and a dict literal, written in
JSON or in Python syntax. Both are accepted here, and nothing else: a dict is
read with ``json.loads`` then ``ast.literal_eval`` (never ``eval``, never
YAML), and checked against the layer's schema, so a typo fails when the net
is built, with a message naming the layer, the key and the valid keys,
instead of being ignored for a whole training run.

Pure Python, no Caffe import: the linter checks ``param_str`` with it too.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import json
import math
import re
from collections.abc import Mapping
from typing import Any, Callable

from caffe_nanlayers.errors import UserError

FLOAT32_MAX = 3.4028234663852886e38

_KIND_NAMES = {
    str: "a string",
    float: "a number",
    int: "an integer",
    bool: "true or false",
    "range": "a list [lo, hi] of two numbers",
}


class ParamError(UserError):
    """A ``param_str`` that does not fit its layer's schema."""

    def __init__(self, message: str, *, layer_class: str, layer_name: str | None = None, key=None):
        super().__init__(message)
        self.layer_class = layer_class
        self.layer_name = layer_name
        self.key = key


@dataclasses.dataclass(frozen=True)
class Key:
    """One key of a layer's ``param_str``: its kind, default and constraints.

    ``kind`` is ``str``, ``float``, ``int``, ``bool`` or ``"range"`` (a
    ``[lo, hi]`` pair of numbers). ``check`` returns what is wrong with a value
    of the right kind (e.g. ``"must be > 0"``), or None. A key that is neither
    required nor defaulted may be omitted or given as ``null`` / ``None``.
    """

    kind: Any
    default: Any = None
    required: bool = False
    choices: tuple = ()
    check: Callable[[Any], str | None] | None = None
    doc: str = ""

    def describe_type(self) -> str:
        if self.choices:
            return " | ".join(repr(c) for c in self.choices)
        return _KIND_NAMES[self.kind]


Schema = Mapping[str, Key]


# Validators shared by the layers' schemas.
def positive(value) -> str | None:
    return None if math.isfinite(value) and value > 0 else "must be a finite number > 0"


def non_negative(value) -> str | None:
    return None if value >= 0 else "must be >= 0"


def float32_finite(value) -> str | None:
    if not math.isfinite(value) or abs(value) > FLOAT32_MAX:
        return "must be a finite number that float32 can hold"
    return None


def ordered_range(value) -> str | None:
    lo, hi = value
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "must hold two finite numbers"
    return None if lo <= hi else "must be [lo, hi] with lo <= hi"


def parse_param_str(
    text: str | None,
    schema: Schema,
    *,
    layer_class: str,
    layer_name: str | None = None,
    label_key: str = "label",
) -> dict:
    """The validated parameters of one layer: every schema key, defaults filled in.

    ``text`` is a dict literal (JSON or Python syntax), or a plain string,
    taken as the value of ``label_key``; empty means all defaults.
    """
    where = layer_class + (f" {layer_name!r}" if layer_name else "")
    valid = "valid keys: " + ", ".join(sorted(schema))

    def fail(problem: str, key: str | None = None):
        raise ParamError(
            f"{where}: param_str {text!r}: {problem}; {valid}",
            layer_class=layer_class,
            layer_name=layer_name,
            key=key,
        )

    given = _read(text or "", schema, label_key, fail)
    values = {}
    for key in given:
        if not isinstance(key, str) or key not in schema:
            close = difflib.get_close_matches(str(key), list(schema), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            fail(f"unknown key {key!r}{hint}", key=str(key))
    for key, spec in schema.items():
        if key not in given or (given[key] is None and not spec.required and spec.default is None):
            if spec.required:
                fail(f"key {key!r} is required ({spec.describe_type()})", key=key)
            values[key] = spec.default
            continue
        values[key] = _validate(key, given[key], spec, fail)
    return values


def _read(text: str, schema: Schema, label_key: str, fail) -> dict:
    stripped = text.strip()
    if not stripped:
        return {}
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except (ValueError, RecursionError) as json_error:
            try:
                value = ast.literal_eval(stripped)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                fail(f"is not a valid dict literal in JSON or Python syntax ({json_error})")
        if not isinstance(value, dict):
            fail("is not a dict literal")
        return value
    # A bare word is the label. But "mode: warn" is a dict the user forgot to
    # write as one: taking it as a label would silently ignore the setting.
    looks_like_key = re.match(r"\s*['\"]?(\w+)['\"]?\s*[:=]", stripped)
    if looks_like_key and looks_like_key.group(1) in schema:
        fail(f"looks like a key: value pair; write a dict literal, e.g. {{'{looks_like_key.group(1)}': ...}}")
    if label_key not in schema:
        fail("is not a dict literal")
    return {label_key: stripped}


def _validate(key: str, value, spec: Key, fail):
    def to_float(number) -> float:
        try:
            return float(number)
        except OverflowError:  # an integer literal of hundreds of digits
            digits = len(str(abs(number)))
            fail(
                f"key {key!r} must be a number that fits a float, not an integer of {digits} digits", key=key
            )

    kind = spec.kind
    ok = True
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = to_float(value) if ok else value
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is bool or kind is str:
        ok = isinstance(value, kind)
    elif kind == "range":
        ok = (
            isinstance(value, (list, tuple))
            and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        )
        value = (to_float(value[0]), to_float(value[1])) if ok else value
    if not ok:
        fail(f"key {key!r} must be {_KIND_NAMES[kind]}, not {value!r} ({type(value).__name__})", key=key)
    if spec.choices and value not in spec.choices:
        choices = ", ".join(repr(c) for c in spec.choices)
        fail(f"key {key!r} must be one of {choices}, not {value!r}", key=key)
    problem = spec.check(value) if spec.check else None
    if problem:
        fail(f"key {key!r} {problem}, not {value!r}", key=key)
    return value
