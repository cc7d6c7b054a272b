"""What a rule is given: the parsed file, the net or solver built from it, and helpers.

Rules receive one of three contexts, by the ``SCOPE`` they declare: ``file``
(every parsed file, for the schema checks), ``net`` (each net: a net file, or
a solver's inline ``net_param``) and ``solver``. They yield ``Problem``s;
the linter adds the path, the code and the severity, applies ``--select`` and
inline disables, and hands ``Finding``s to a formatter.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from caffe_nanlayers.lint.model import Document, Node
from caffe_nanlayers.lint.net import Net, NetState
from caffe_nanlayers.lint.schema import Schema, SchemaProblem
from caffe_nanlayers.lint.shapes import Shape, ShapeTrace, trace_shapes
from caffe_nanlayers.lint.usage import BOTH, Usage


@dataclass
class Problem:
    """A rule's report: where (a node, or its value) and what; severity overrides the rule's default."""

    node: Node
    message: str
    severity: str | None = None
    at_value: bool = False

    @property
    def position(self) -> tuple[int, int]:
        if self.at_value and self.node.value_line:
            return self.node.value_line, self.node.value_col
        return self.node.line, self.node.col


@dataclass
class FileContext:
    document: Document
    kind: str  # "net", "solver", or the full name of another Caffe message (caffe.LabelMap)
    schema: Schema | None

    @functools.cached_property
    def schema_problems(self) -> list[SchemaProblem]:
        if self.schema is None:
            return []
        from caffe_nanlayers.lint.schema import NET, SOLVER

        message = {"net": NET, "solver": SOLVER}.get(self.kind, self.kind)
        return self.schema.problems(self.document.root, message)


@dataclass
class NetContext:
    path: str
    net: Net
    input_shapes: dict[str, Shape] = field(default_factory=dict)
    usage: Usage = field(default_factory=lambda: Usage(BOTH, "no solver in this run names it"))

    @functools.cached_property
    def states(self) -> list[NetState]:
        """The states Caffe builds this net in: those of the phases it is used in."""
        return self.usage.states(self.net)

    @functools.cached_property
    def traces(self) -> list[ShapeTrace]:
        """Shapes through the net in every state it is built in."""
        return [trace_shapes(self.net, state, self.input_shapes) for state in self.states]


@dataclass
class NetRef:
    """A solver's ``net:``/``train_net:``/``test_net:`` and where (if anywhere) it was found."""

    node: Node
    found: str | None  # the path linted
    where: str = ""  # "the working directory", "the solver's directory", or an ancestor directory
    tried: list[str] = field(default_factory=list)


@dataclass
class SolverContext:
    path: str
    root: Node
    net_refs: list[NetRef] = field(default_factory=list)
    nets: list[Net] = field(default_factory=list)  # the nets it trains: inline, and the files found
    driven_by: str | None = None  # a Python script beside it that steps it: 'caffe train' never runs it
