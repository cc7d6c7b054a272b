"""Lint files: find them, tell nets from solvers, follow solvers to their nets, run the rules.

This is the one place that knows the order of things; the rules know only
their context, and the CLI only options and output. Parse errors do not stop
the run: each is one line in ``Report.errors`` (exit code 2), and the other
files are still linted. Each is also a ``Finding`` with the code NAN000 in
``Report.not_linted``, for the machine formats.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from caffe_nanlayers.errors import UserError
from caffe_nanlayers.lint.context import FileContext, NetContext, NetRef, Problem, SolverContext
from caffe_nanlayers.lint.findings import Finding
from caffe_nanlayers.lint.model import Document, Node
from caffe_nanlayers.lint.net import build_net
from caffe_nanlayers.lint.parser import PrototxtSyntaxError, parse_file, parse_text
from caffe_nanlayers.lint.rules import NOT_LINTED, RULES, Rule
from caffe_nanlayers.lint.schema import SCHEMA_CODES, load_schema
from caffe_nanlayers.lint.shapes import Shape
from caffe_nanlayers.lint.suppress import suppressions
from caffe_nanlayers.lint.usage import (
    SolverUse,
    Usage,
    python_driver,
    scripts_load_weights,
    solver_uses,
    usage_of,
)
from caffe_nanlayers.solver_files import (
    NET,
    SOLVER,
    SOLVER_DIRECTORY,
    WORKING_DIRECTORY,
    kind_of,
    net_file_bases,
)

# Other Caffe messages people keep in *.prototxt files, told by their top-level fields alone:
# SSD's label maps (item { name label display_name }). They are checked against their own message.
OTHER_MESSAGES = {"caffe.LabelMap": {"item"}}
NET_REF_FIELDS = ("net", "train_net", "test_net")
INLINE_NET_FIELDS = ("net_param", "train_net_param", "test_net_param")


@dataclass
class Options:
    select: list[str] | None = None  # codes or prefixes; None: every rule that is on by default
    ignore: list[str] = field(default_factory=list)
    input_shapes: dict[str, Shape] = field(default_factory=dict)
    use_schema: bool = True
    cwd: str | None = None  # where Caffe would be run from (default: the current directory)


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # one line each: path:line:col: expected ..., found ...
    not_linted: list[Finding] = field(default_factory=list)  # the same errors as NAN000 findings
    notes: list[str] = field(default_factory=list)
    files: int = 0
    usages: dict[str, Usage] = field(default_factory=dict)  # each net file: the phases it is built in


def _matches(code: str, patterns: Iterable[str]) -> bool:
    return any(code.startswith(p) for p in patterns)


def selected_rules(select: list[str] | None, ignore: list[str]) -> list[Rule]:
    """Rules after --select/--ignore (codes or prefixes; ALL for every rule)."""
    patterns = [p.upper() for p in (select or [])]
    ignore = [p.upper() for p in ignore]
    for pattern in patterns + ignore:
        if pattern != "ALL" and not any(code.startswith(pattern) for code in RULES):
            raise UserError(f"unknown rule code or prefix '{pattern}' (see --list-rules)")
    chosen = []
    for code, rule in RULES.items():
        on = select is None or "ALL" in patterns or _matches(code, patterns)
        if on and not _matches(code, ignore):
            chosen.append(rule)
    return chosen


def file_kind(root: Node) -> str:
    """NET, SOLVER or the full name of another Caffe message (caffe.LabelMap), from the top-level fields."""
    names = {c.name for c in root.children or ()}
    for message, fields in OTHER_MESSAGES.items():
        if names and names <= fields:
            return message
    return kind_of(names)


def expand_paths(paths: Iterable[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(files, errors as (path, message)): directories become their *.prototxt files, recursively, sorted."""
    files, errors = [], []
    for path in paths:
        if os.path.isdir(path):
            found, unreadable = [], []
            for dirpath, dirnames, filenames in os.walk(path, onerror=unreadable.append):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                found.extend(os.path.join(dirpath, f) for f in filenames if f.endswith(".prototxt"))
            for exc in unreadable:
                errors.append((exc.filename or path, f"cannot read the directory: {exc.strerror or exc}"))
            if not found and not unreadable:
                errors.append((path, "no *.prototxt files found under this directory"))
            files.extend(sorted(found))
        elif os.path.exists(path):
            files.append(path)
        else:
            errors.append((path, _missing(path)))
    return files, errors


def _missing(path: str) -> str:
    """Why a path that os.path.exists denies is not there: absent, or behind a directory we cannot enter."""
    try:
        os.stat(path)
    except PermissionError as exc:
        return f"cannot read the file: {exc.strerror} (a directory on its path cannot be entered)"
    except OSError:
        pass
    return "expected a prototxt file or a directory, found no such path"


def resolve_net(node: Node, solver_path: str, cwd: str) -> NetRef:
    """Find a solver's net file: the working directory (what Caffe does), the solver's directory, its parents.

    ``found`` is a path this process can open, relative when the solver's path was relative.
    """
    value = str(node.value)
    if os.path.isabs(value):
        return NetRef(node, value if os.path.isfile(value) else None, "an absolute path", [value])
    relative = not os.path.isabs(solver_path)

    def shown(path: str) -> str:
        return os.path.normpath(os.path.relpath(path) if relative else path)

    said = {WORKING_DIRECTORY: "the working directory", SOLVER_DIRECTORY: "the solver's directory"}
    tried = []
    for base, where in net_file_bases(solver_path, cwd):
        candidate = os.path.join(base, value)
        tried.append(candidate)
        if os.path.isfile(candidate):
            return NetRef(node, shown(candidate), said.get(where) or shown(base) + os.sep, tried)
    return NetRef(node, None, "", tried)


class Linter:
    def __init__(self, options: Options | None = None):
        self.options = options or Options()
        self.rules = selected_rules(self.options.select, self.options.ignore)
        self.cwd = self.options.cwd or os.getcwd()
        self.schema = None
        self.report = Report()
        self._schema_note = None  # said only once a file was linted without the schema
        wants_schema = any(r.code in SCHEMA_CODES for r in self.rules)
        if wants_schema and self.options.use_schema:
            self.schema, why = load_schema()
            if self.schema is None:
                self._schema_note = f"note: schema checks ({', '.join(SCHEMA_CODES)}) skipped: {why}"
        self._seen: set[str] = set()
        self._uses: dict[str, list[SolverUse]] = {}  # real path of a net file -> the solvers naming it
        self._scripts: dict = {}  # directory -> its scripts that step a solver or load weights

    def _run(self, scope: str, ctx, path: str) -> list[Finding]:
        found = []
        for rule in self.rules:
            if rule.scope != scope:
                continue
            try:
                for problem in rule.check(ctx):
                    found.append(self._finding(rule, problem, path))
            except Exception as exc:  # a bug in one rule must not hide the others' findings
                why = f"{type(exc).__name__}: {exc}"
                self.error(path, f"internal error in rule {rule.code} ({why}); please report it")
        return found

    def error(self, path: str, message: str, line: int = 1, col: int = 1, positioned: bool = True) -> None:
        """A file not linted (or not fully): a line for stderr, and a NAN000 finding for the machine formats.

        ``positioned=False`` for a path with no line to point at (a directory): ``path: message``.
        """
        where = f"{path}:{line}:{col}" if positioned else path
        self.report.errors.append(f"{where}: {message}")
        self.report.not_linted.append(Finding(path, line, col, NOT_LINTED.code, NOT_LINTED.severity, message))

    @staticmethod
    def _finding(rule: Rule, problem: Problem, path: str) -> Finding:
        line, col = problem.position
        return Finding(path, line, col, rule.code, problem.severity or rule.severity, problem.message)

    def _follow(self, document: Document) -> list[NetRef]:
        """A solver's net references, resolved; each file found records how this solver uses it."""
        root = document.root
        refs = [
            resolve_net(node, document.path, self.cwd)
            for name in NET_REF_FIELDS
            for node in root.all(name)
            if isinstance(node.value, str)
        ]
        for ref in refs:
            if ref.found is None:
                continue
            loads = (
                scripts_load_weights(document.path, self._scripts) if os.path.isfile(document.path) else False
            )
            use = solver_uses(root, document.path, ref.node.name, loads)
            self._uses.setdefault(os.path.realpath(ref.found), []).append(use)
            if ref.where != "the working directory":
                self.report.notes.append(
                    f"note: {document.path}:{ref.node.value_line}:{ref.node.value_col}: {ref.node.name} "
                    f"{ref.node.raw} is not in the working directory; linting {ref.found}, found relative "
                    f"to {ref.where} (Caffe resolves it against the working directory)"
                )
        return refs

    def _net_context(self, path: str, node: Node, uses: list[SolverUse]) -> NetContext:
        net = build_net(node)
        return NetContext(path, net, self.options.input_shapes, usage=usage_of(net, uses))

    def lint_document(
        self, document: Document, kind: str, refs: list[NetRef], documents: dict[str, Document] | None = None
    ) -> None:
        path, root = document.path, document.root
        if kind not in (NET, SOLVER) and (self.schema is None or not self.schema.has(kind)):
            self.report.notes.append(
                f"note: {path}: a {kind.removeprefix('caffe.')} (not a net or a solver): not checked "
                "without a caffe.proto that defines it"
            )
            self.report.files += 1
            return
        findings = self._run("file", FileContext(document, kind, self.schema), path)
        if kind == NET:
            uses = self._uses.get(os.path.realpath(path), [])
            context = self._net_context(path, root, uses)
            self.report.usages[path] = context.usage
            findings += self._run("net", context, path)
        elif kind == SOLVER:
            inline = [node for name in INLINE_NET_FIELDS for node in root.all(name) if node.is_message]
            nets = [build_net(node) for node in inline]
            for ref in refs:
                net_document = (documents or {}).get(os.path.realpath(ref.found)) if ref.found else None
                if net_document is not None:
                    nets.append(build_net(net_document.root))
            driver = python_driver(path, self._scripts) if os.path.isfile(path) else None
            findings += self._run("solver", SolverContext(path, root, refs, nets, driver), path)
            for node in inline:
                field = node.name.removesuffix("_param")
                loads = scripts_load_weights(path, self._scripts) if os.path.isfile(path) else False
                use = solver_uses(root, path, field, loads)
                findings += self._run("net", self._net_context(path, node, [use]), path)
        silenced = suppressions(document)
        for line, col, pattern in silenced.named:
            if pattern == "ALL" or (pattern[-1].isdigit() and any(c.startswith(pattern) for c in RULES)):
                continue
            self.report.notes.append(
                f"note: {path}:{line}:{col}: unknown rule code or prefix '{pattern}' in a lint-prototxt "
                "disable comment (see --list-rules): it silences nothing"
            )
        unique = sorted(set(findings), key=lambda f: (f.line, f.column, f.code, f.message))
        self.report.findings.extend(f for f in unique if not silenced.silences(f))
        self.report.files += 1

    def _parse(self, path: str, text: str | None = None) -> Document | None:
        try:
            return parse_text(text, path) if text is not None else parse_file(path)
        except PrototxtSyntaxError as exc:
            self.error(exc.path, exc.detail, exc.line, exc.col)
        except UserError as exc:  # an unreadable file: "path:1:1: cannot read the file: ..."
            self.error(path, str(exc).removeprefix(f"{path}:1:1: "))
        return None

    def run(self, paths: list[str], texts: dict[str, str] | None = None) -> Report:
        """Parse everything first (solvers pull in their nets), then lint in order.

        Two passes, so that a net listed before its solver is still linted as that solver uses it.
        """
        collecting = gc.isenabled()
        gc.disable()  # the trees hold no cycles; the collector would walk every node of every file held
        try:
            return self._run_all(paths, texts or {})
        finally:
            if collecting:
                gc.enable()

    def _run_all(self, paths: list[str], texts: dict[str, str]) -> Report:
        queue = list(paths)
        parsed: list[tuple[Document, str, list[NetRef]]] = []
        while queue:
            current = queue.pop(0)
            key = os.path.realpath(current) if current not in texts else current
            if key in self._seen:
                continue
            self._seen.add(key)
            document = self._parse(current, texts.get(current))
            if document is None:
                continue
            kind = file_kind(document.root)
            refs = self._follow(document) if kind == SOLVER else []
            queue[:0] = [r.found for r in refs if r.found is not None]
            parsed.append((document, kind, refs))
        documents = {os.path.realpath(d.path): d for d, _, _ in parsed}
        for document, kind, refs in parsed:
            self.lint_document(document, kind, refs, documents)
        if self._schema_note and self.report.files:
            # Not when nothing parsed: a parse error alone stays the one line it promises to be.
            self.report.notes.insert(0, self._schema_note)
            self._schema_note = None
        return self.report


def lint_paths(paths: Iterable[str], options: Options | None = None) -> Report:
    """Lint files and directories (recursively, ``*.prototxt``), and the nets their solvers name."""
    linter = Linter(options)
    files, errors = expand_paths(paths)
    for path, message in errors:
        linter.error(path, message, positioned=not os.path.isdir(path))
    return linter.run(files)


def lint_text(text: str, path: str = "<string>", options: Options | None = None) -> Report:
    """Lint prototxt text (a net or a solver); ``path`` names it in findings."""
    return Linter(options).run([path], texts={path: text})
