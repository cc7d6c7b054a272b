"""Check field names, value types and enum values against Caffe's own schema.

The schema is ``caffe.proto`` as compiled into pycaffe's ``caffe_pb2.py``.
Importing ``caffe`` to get it costs about a second (numpy, skimage, the C++
library), which a pre-commit hook would feel on every commit; so the
serialized descriptor is read out of ``caffe_pb2.py`` and loaded into a
private descriptor pool (tens of milliseconds, and no clash with a real
``import caffe`` later in the same process). When that fails, the plain
import is the fallback; when pycaffe is absent, ``load_schema`` says why and
the other rules run without it.

Unknown fields are warnings, not errors: forks (SSD, NVCaffe, ...) add
fields this Caffe does not know.
"""

from __future__ import annotations

import ast
import difflib
import functools
import importlib.util
import math
import os
import re
import sys
from dataclasses import dataclass

from caffe_nanlayers.lint.model import IDENTIFIER, NUMBER, STRING, Node

NET, SOLVER = "caffe.NetParameter", "caffe.SolverParameter"

# FieldDescriptor.CPPTYPE_* values (stable across protobuf versions)
_INT32, _INT64, _UINT32, _UINT64, _DOUBLE, _FLOAT, _BOOL, _ENUM, _STRING, _MESSAGE = range(1, 11)
_INT_RANGES = {
    _INT32: (-(2**31), 2**31 - 1, "int32"),
    _INT64: (-(2**63), 2**63 - 1, "int64"),
    _UINT32: (0, 2**32 - 1, "uint32"),
    _UINT64: (0, 2**64 - 1, "uint64"),
}
_BOOL_WORDS = {"true": True, "True": True, "t": True, "false": False, "False": False, "f": False}
FLT_MAX = 3.4028234663852886e38

# Codes of the schema findings (their rule modules hold the documentation).
UNKNOWN_FIELD, BAD_VALUE, REPEATED_SINGULAR = "NAN001", "NAN002", "NAN003"
SCHEMA_CODES = (UNKNOWN_FIELD, BAD_VALUE, REPEATED_SINGULAR)  # skipped together when there is no caffe.proto


@dataclass
class SchemaProblem:
    code: str
    node: Node
    message: str
    at_value: bool = False


class Schema:
    """Message descriptors of caffe.proto, looked up by full name (``caffe.NetParameter``)."""

    def __init__(self, find_message, origin: str):
        self._find = find_message
        self.origin = origin

    def message(self, full_name: str):
        return self._find(full_name)

    def has(self, full_name: str) -> bool:
        try:
            self._find(full_name)
        except KeyError:
            return False
        return True

    def problems(self, root: Node, full_name: str) -> list[SchemaProblem]:
        found: list[SchemaProblem] = []
        pending = [(root, self.message(full_name))]
        while pending:  # a loop over the messages, not nested generators: a large net has 150,000
            message, descriptor = pending.pop()
            _check_message(message, descriptor, pending, found)
        found.sort(key=lambda p: (p.node.line, p.node.col))
        return found


def _caffe_pb2_path() -> str | None:
    try:
        spec = importlib.util.find_spec("caffe")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(next(iter(spec.submodule_search_locations)), "proto", "caffe_pb2.py")
    return path if os.path.isfile(path) else None


_SERIALIZED = re.compile(r"(?:AddSerializedFile\(|serialized_pb=)\s*(b'(?:[^'\\]|\\.)*')")


def _load_private(path: str) -> Schema | None:
    """caffe_pb2's descriptor, loaded into our own pool without importing caffe."""
    with open(path, encoding="utf-8") as f:
        match = _SERIALIZED.search(f.read())
    if match is None:
        return None
    from google.protobuf import descriptor_pool

    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(ast.literal_eval(match.group(1)))
    return Schema(pool.FindMessageTypeByName, path)


def _load_imported() -> Schema:
    os.environ.setdefault("GLOG_minloglevel", "2")
    import caffe.proto.caffe_pb2 as caffe_pb2  # the slow path: imports pycaffe

    pool = caffe_pb2.DESCRIPTOR.pool
    return Schema(pool.FindMessageTypeByName, caffe_pb2.__file__)


@functools.lru_cache(maxsize=1)
def load_schema() -> tuple[Schema | None, str]:
    """(schema, "") when caffe_pb2 is available, else (None, why not)."""
    if "caffe.proto.caffe_pb2" in sys.modules:
        return _load_imported(), ""
    path = _caffe_pb2_path()
    if path is None:
        return None, "pycaffe (caffe.proto.caffe_pb2) is not importable"
    try:
        schema = _load_private(path)
        if schema is not None:
            return schema, ""
    except Exception:  # an odd caffe_pb2.py or protobuf: fall back to the real import
        pass
    try:
        return _load_imported(), ""
    except Exception as exc:
        return None, f"caffe.proto.caffe_pb2 failed to import ({type(exc).__name__}: {exc})"


def suggest(word: str, choices, cutoff: float = 0.75) -> str:
    """`` (did you mean 'x'?)`` for a near miss (case aside), else an empty string."""
    choices = list(choices)
    by_upper = {c.upper(): c for c in choices}
    close = difflib.get_close_matches(word.upper(), list(by_upper), n=1, cutoff=cutoff)
    return f" (did you mean '{by_upper[close[0]]}'?)" if close else ""


@functools.cache
def _enum_names(enum) -> frozenset[str]:
    return frozenset(v.name for v in enum.values)


# (field, kind, raw) -> _check_value's verdict: a scalar's value follows from its kind and spelling,
# and real nets repeat the same few (``lr_mult: 1``, ``type: CONSTANT``) tens of thousands of times.
# Bounded, so that a file of millions of distinct numbers does not grow it without end.
_VERDICTS: dict[tuple, str | None] = {}
_VERDICTS_MAX = 1 << 16
_UNSEEN = object()


def _check_value_once(node: Node, field) -> str | None:
    """``_check_value``, computed once per field, kind and spelling."""
    key = (field, node.kind, node.raw)
    why = _VERDICTS.get(key, _UNSEEN)
    if why is _UNSEEN:
        why = _check_value(node, field)
        if len(_VERDICTS) < _VERDICTS_MAX:
            _VERDICTS[key] = why
    return why


def _check_value(node: Node, field) -> str | None:
    """Why ``node``'s scalar does not fit ``field``, or None when it does."""
    cpp = field.cpp_type
    if cpp == _STRING:
        if node.kind != STRING:
            return f"'{field.name}' is a string: expected a quoted value, found {node.raw}"
        return None
    if cpp == _BOOL:
        if node.kind == IDENTIFIER and node.value in _BOOL_WORDS:
            return None
        if node.kind == NUMBER and node.value in (0, 1) and isinstance(node.value, int):
            return None
        return f"'{field.name}' is a bool: expected true or false, found {node.raw}"
    if cpp == _ENUM:
        enum = field.enum_type
        if node.kind == IDENTIFIER and node.value in _enum_names(enum):
            return None
        names = [v.name for v in enum.values]
        if node.kind == NUMBER and isinstance(node.value, int) and enum.values_by_number.get(node.value):
            return None
        hint = suggest(str(node.value), names, cutoff=0.6) if node.kind != NUMBER else ""
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        return f"'{field.name}' expects one of {shown}: found {node.raw}{hint}"
    if cpp in _INT_RANGES:
        low, high, type_name = _INT_RANGES[cpp]
        if node.kind != NUMBER or not isinstance(node.value, int):
            return f"'{field.name}' is an {type_name}: expected an integer, found {node.raw}"
        if not low <= node.value <= high:
            return f"'{field.name}' is an {type_name}: {node.raw} is out of range [{low}, {high}]"
        return None
    if cpp in (_FLOAT, _DOUBLE):
        if node.kind != NUMBER:
            return f"'{field.name}' is a number: expected a number, found {node.raw}"
        finite = isinstance(node.value, int) or math.isfinite(node.value)  # ints of 400 digits included
        if cpp == _FLOAT and finite and abs(node.value) > FLT_MAX:
            return f"'{field.name}' is a float: {node.raw} overflows to inf"
        return None
    return None


def _is_repeated(field) -> bool:
    flag = getattr(field, "is_repeated", None)  # protobuf >= 6; older versions have only .label
    if flag is not None:
        return bool(flag() if callable(flag) else flag)
    return field.label == 3  # LABEL_REPEATED


@functools.cache
def _fields(descriptor) -> dict[str, tuple]:
    """name -> (field, its message type or None for a scalar, is repeated, the value kind that needs no
    further check): read once per message type, not once per use."""
    plain = {_STRING: STRING}
    return {
        name: (
            field,
            field.message_type if field.cpp_type == _MESSAGE else None,
            _is_repeated(field),
            plain.get(field.cpp_type),
        )
        for name, field in descriptor.fields_by_name.items()
    }


@functools.lru_cache(maxsize=4096)
def _unknown_field_message(name: str, descriptor) -> str:
    """The same fork field appears hundreds of times in a big net: the near-miss search runs once."""
    return f"unknown field '{name}' in {descriptor.name}{suggest(name, descriptor.fields_by_name)}"


def _check_message(message: Node, descriptor, pending: list, found: list[SchemaProblem]) -> None:
    """Adds the problems of ``message``'s own fields to ``found``, and its message fields to ``pending``.

    A plain function, not a generator: a large net has 150,000 messages, most without a problem."""
    add = found.append
    fields = _fields(descriptor)
    seen: dict[str, Node] = {}
    listed: set[str] = set()
    for child in message.children or ():
        info = fields.get(child.name)
        if info is None:
            add(SchemaProblem(UNKNOWN_FIELD, child, _unknown_field_message(child.name, descriptor)))
            continue
        field, message_type, repeated, plain = info
        is_message = child.children is not None
        if message_type is not None and not is_message:
            add(
                SchemaProblem(
                    BAD_VALUE,
                    child,
                    f"'{child.name}' is a {message_type.name} message: expected '{{', found {child.raw}",
                    at_value=True,
                )
            )
            continue
        if message_type is None and is_message:
            add(
                SchemaProblem(
                    BAD_VALUE,
                    child,
                    f"'{child.name}' is a scalar field: expected ':' and a value, found '{{'",
                )
            )
            continue
        if not repeated:  # only a singular field can be set twice
            name = child.name
            if child.listed:
                if name not in listed:
                    listed.add(name)
                    add(
                        SchemaProblem(
                            REPEATED_SINGULAR,
                            child,
                            f"'{name}' is not a repeated field: Caffe refuses a list '[...]' for it "
                            "and does not load the file",
                        )
                    )
                seen.setdefault(name, child)
            else:
                first = seen.get(name)
                if first is None:
                    seen[name] = child
                else:
                    add(
                        SchemaProblem(
                            REPEATED_SINGULAR,
                            child,
                            f"'{name}' is set twice (first on line {first.line}): Caffe refuses the file "
                            f'(Non-repeated field "{name}" is specified multiple times)',
                        )
                    )
        if message_type is not None:
            pending.append((child, message_type))
        elif child.kind != plain:  # a quoted value for a string field is always right
            why = _check_value_once(child, field)
            if why:
                add(SchemaProblem(BAD_VALUE, child, why, at_value=True))
