"""Read Caffe net and solver prototxt files into caffe_pb2 messages, for the tools that run nets.

The scanner, ``instrument`` and ``locate`` all start from a user's file that
may be a net or a solver, may name its net relative to the working
directory (as Caffe does) or to itself, and may have a typo. They share this
module so that all of them resolve files the same way and turn protobuf's
parse errors into one ``path:line:col: message`` line. (The linter keeps its
own position-preserving parser: it must work without Caffe.)
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from caffe_nanlayers.caffe_net import import_caffe
from caffe_nanlayers.errors import UserError, reading
from caffe_nanlayers.net_state import StateRule, meets_rule
from caffe_nanlayers.solver_files import SOLVER, SOLVER_DIRECTORY, WORKING_DIRECTORY, kind_of, net_file_bases

# A quoted string, a comment, a brace, or a field name followed by ':' or '{'.
_TOKEN = re.compile(r""""(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|#[^\n]*|[{}<>]|\b([A-Za-z_]\w*)\s*[:{<]""")


def caffe_pb2():
    """The caffe_pb2 module of the Caffe at hand (imports pycaffe quietly)."""
    import_caffe()
    from caffe.proto import caffe_pb2 as pb2

    return pb2


def _read_text(path: str | os.PathLike) -> str:
    with reading(path, "a .prototxt file"):
        return Path(path).read_text(encoding="utf-8")


def parse_text(text: str, message, path: str | os.PathLike):
    """Merge prototxt ``text`` into ``message``; a syntax error becomes a UserError naming path:line:col."""
    from google.protobuf import text_format

    try:
        text_format.Merge(text, message)
    except text_format.ParseError as exc:
        line, col = getattr(exc, "GetLine", lambda: None)(), getattr(exc, "GetColumn", lambda: None)()
        detail = str(exc)
        detail = re.sub(r"^\d+:\d+ : ", "", detail)
        where = f"{path}:{line}:{col}" if line else str(path)
        kind = type(message).__name__
        raise UserError(f"{where}: invalid {kind}: {detail}") from None
    return message


def looks_like_solver(text: str) -> bool:
    """Tell a solver from a net by content, as Caffe users name files anyhow.

    Only the top-level fields count: the layers of a solver's inline ``net_param { ... }``
    are the net's, not the file's.
    """
    return kind_of(top_level_fields(text)) == SOLVER


def top_level_fields(text: str) -> set[str]:
    """The names of the fields a prototxt sets outside every ``{ }`` (strings and comments skipped)."""
    fields, depth = set(), 0
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if match.group(1):
            if depth == 0:
                fields.add(match.group(1))
            if token[-1] in "{<":
                depth += 1
        elif token in ("{", "<"):
            depth += 1
        elif token in ("}", ">"):
            depth = max(depth - 1, 0)
    return fields


_COMMENT_OR_BLANK = re.compile(r"^\s*(#.*)?$")


def _require_content(text: str, path) -> None:
    """An empty file parses as an empty message: said here, not found later as "no layer"."""
    if all(_COMMENT_OR_BLANK.match(line) for line in text.splitlines()):
        what = "only comments" if text.strip() else "empty"
        raise UserError(f"{path}: {what}, expected a net or solver prototxt")


def _require_layers(net, path) -> None:
    """A net without layers would give a silently empty answer (nothing instrumented, nothing scanned)."""
    if not net.layer and not net.layers:
        raise UserError(f"{path}: the net has no layer")


def read_net(path: str | os.PathLike):
    text = _read_text(path)
    _require_content(text, path)
    net = parse_text(text, caffe_pb2().NetParameter(), path)
    _require_layers(net, path)
    return net


def read_solver(path: str | os.PathLike):
    return parse_text(_read_text(path), caffe_pb2().SolverParameter(), path)


@dataclasses.dataclass
class ResolvedNet:
    """A net to run, and where it came from (for messages)."""

    net: object  # caffe_pb2.NetParameter
    path: Path | None  # the net file, or None for an inline net_param
    solver: object | None = None  # caffe_pb2.SolverParameter when reached through a solver
    solver_path: Path | None = None
    note: str = ""  # how the net file was found


def resolve_net_file(name: str, solver_path: Path) -> tuple[Path, str]:
    """Find a solver's net file where the linter finds it (``solver_files.net_file_bases``)."""
    candidates = [(Path(name), "")] if Path(name).is_absolute() else _candidates(name, solver_path)
    for candidate, how in candidates:
        if candidate.is_file():
            return candidate, f"net file {candidate} found {how}" if len(candidates) > 1 else ""
    for candidate, _ in candidates:
        if candidate.is_dir():
            where = f" ({candidate})" if str(candidate) != name else ""
            raise UserError(
                f"{solver_path}: net file {name!r} is a directory{where}, expected a net prototxt"
            )
    tried = "the working directory"
    if len(candidates) > 1 and solver_path.parent.resolve() != Path.cwd().resolve():
        tried += f", the solver's directory {solver_path.parent} and its parents"
    raise UserError(f"{solver_path}: net file {name!r} not found (tried {tried})")


def _candidates(name: str, solver_path: Path) -> list[tuple[Path, str]]:
    """(path as the user would write it, how it was found) for each of ``net_file_bases``."""
    out = []
    for base, where in net_file_bases(solver_path, Path.cwd()):
        if where == WORKING_DIRECTORY:
            out.append((Path(name), "relative to the working directory, as Caffe resolves it"))
        elif where == SOLVER_DIRECTORY:
            out.append((solver_path.parent / name, "relative to the solver's directory"))
        else:
            out.append((_shown(Path(base) / name), f"relative to {_shown(Path(base))}"))
    return out


def _shown(path: Path) -> Path:
    """A path under the working directory relative to it, as the user would write it."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def read_net_or_solver(path: str | os.PathLike, which: str = "train") -> ResolvedNet:
    """Read a net file, or a solver and its train (or first test) net."""
    path = Path(path)
    text = _read_text(path)
    _require_content(text, path)
    if not looks_like_solver(text):
        net = parse_text(text, caffe_pb2().NetParameter(), path)
        _require_layers(net, path)
        return ResolvedNet(net=net, path=path)
    solver = parse_text(text, caffe_pb2().SolverParameter(), path)
    inline = None
    if which == "train":
        if solver.HasField("train_net_param"):
            inline = ResolvedNet(solver.train_net_param, None, solver, path, "inline train_net_param")
        elif solver.HasField("net_param"):
            inline = ResolvedNet(solver.net_param, None, solver, path, "inline net_param")
        name = solver.train_net or solver.net
    else:
        if solver.test_net_param:
            inline = ResolvedNet(solver.test_net_param[0], None, solver, path, "inline test_net_param")
        elif solver.HasField("net_param"):
            inline = ResolvedNet(solver.net_param, None, solver, path, "inline net_param")
        name = solver.test_net[0] if solver.test_net else solver.net
    if inline is not None:
        _require_layers(inline.net, f"{path} ({inline.note})")
        return inline
    if not name:
        raise UserError(f"{path}: solver names no {which} net (expected net:, {which}_net: or net_param)")
    net_path, note = resolve_net_file(name, path)
    return ResolvedNet(read_net(net_path), net_path, solver, path, note)


def net_to_text(net) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(net)


def rule_met(rule, phase: int, level: int | None, stages: set[str] | None, unknown: bool = False) -> bool:
    """Caffe's Net::StateMeetsRule for a caffe_pb2 NetStateRule (``net_state.meets_rule``)."""
    fields = StateRule(
        phase=rule.phase if rule.HasField("phase") else None,
        min_level=rule.min_level if rule.HasField("min_level") else None,
        max_level=rule.max_level if rule.HasField("max_level") else None,
        stage=tuple(rule.stage),
        not_stage=tuple(rule.not_stage),
    )
    return meets_rule(fields, phase, level, stages, unknown)


def layer_may_be_in_phase(layer, phase: int) -> bool:
    """Whether some level and stages put ``layer`` in a net of ``phase`` (neither is known).

    In if an include rule may be met; out only if an exclude rule is met whatever they are.
    """
    if layer.include:
        return any(rule_met(rule, phase, None, None, unknown=True) for rule in layer.include)
    return not any(rule_met(rule, phase, None, None, unknown=False) for rule in layer.exclude)


def layer_in_state(layer, phase: int, level: int = 0, stages: set[str] | frozenset = frozenset()) -> bool:
    """Caffe's Net::FilterNet for one layer: out if an exclude rule is met, in if an include rule is."""
    stages = set(stages)
    if layer.include and layer.exclude:
        raise UserError(
            f"layer {layer.name!r}: specify include or exclude rules, not both (Caffe refuses it)"
        )
    if layer.include:
        return any(rule_met(rule, phase, level, stages) for rule in layer.include)
    return not any(rule_met(rule, phase, level, stages) for rule in layer.exclude)
