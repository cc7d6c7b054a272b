"""The parsed prototxt: a tree of fields that remember where they were written.

protobuf's own ``text_format`` returns messages without positions, and a
linter that cannot say ``file:line:col`` is of little use. Every rule works on
this tree instead: a ``Node`` is one field as written, with its name, its
value (or its children, for a message) and the line and column of its name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Union

Scalar = Union[str, int, float, bool]

# How a scalar was written: a quoted string, a number, or a bare identifier
# (enum values, true/false, inf/nan).
STRING, NUMBER, IDENTIFIER = "string", "number", "identifier"

_FLOAT_INT_MAX = 2**1023  # a little under float's largest value: larger ints do not convert

# The spellings protobuf's text-format parser accepts for a bool field.
_TRUE_WORDS = ("true", "True", "t", 1)
_FALSE_WORDS = ("false", "False", "f", 0)


@dataclass(slots=True)
class Node:
    """One field: ``name: value`` (a scalar) or ``name { children }`` (a message)."""

    name: str
    line: int
    col: int
    value: Scalar | None = None
    kind: str | None = None  # STRING, NUMBER or IDENTIFIER for scalars; None for messages
    raw: str = ""  # the scalar as written (numbers keep their spelling)
    value_line: int = 0
    value_col: int = 0
    children: list[Node] | None = None
    end_line: int = 0  # the line of the closing brace, for messages
    listed: bool = False  # written inside a list, ``name: [a, b]``
    # The children by name, built on the first look-up (the rules look up about a million times in a
    # large model collection; a walk of the children each time was a tenth of the run).
    _by_name: dict[str, list[Node]] | None = field(default=None, compare=False, repr=False)

    @property
    def is_message(self) -> bool:
        return self.children is not None

    def _index(self) -> dict[str, list[Node]]:
        index = self._by_name
        if index is None:
            index = {}
            for c in self.children or ():
                found = index.get(c.name)
                if found is None:
                    index[c.name] = [c]
                else:
                    found.append(c)
            self._by_name = index
        return index

    def by_name(self) -> dict[str, list[Node]]:
        """The children grouped by name, in order: for code that reads many fields of one node at once
        (a net's 75,000 layers). Shared with the look-ups below: read it, never change it."""
        index = self._by_name
        return index if index is not None else self._index()

    def all(self, name: str) -> list[Node]:
        """Every child called ``name``, in order (repeated fields)."""
        index = self._by_name
        if index is None:
            index = self._index()
        found = index.get(name)
        return list(found) if found else []

    def get(self, name: str) -> Node | None:
        """The last child called ``name``: Caffe's parser keeps the last of a repeated singular field."""
        index = self._by_name
        if index is None:
            index = self._index()
        found = index.get(name)
        return found[-1] if found else None

    def scalar(self, name: str, default: Scalar | None = None) -> Scalar | None:
        """The value of the scalar child ``name``, or ``default`` when absent or not a scalar."""
        node = self.get(name)
        if node is None or node.is_message:
            return default
        return node.value

    def flag(self, name: str, default: bool | None = None) -> bool | None:
        """A boolean child read as protobuf's text format does (true/True/t/1, false/False/f/0).

        Booleans are kept as the identifiers they were written as, so comparing
        ``scalar()`` with True or False is always wrong: use this.
        """
        value = self.scalar(name)
        if value in _TRUE_WORDS:
            return True
        if value in _FALSE_WORDS:
            return False
        return default

    def number(self, name: str, default: float | None = None) -> float | None:
        """A numeric child (an int stays an int); ``default`` when absent or not a number.

        An integer too large for a float (``base_lr: 1000...0`` with 400 digits) is returned as an
        infinity of its sign, so that the rules' float arithmetic cannot overflow; NAN002 reports it.
        """
        value = self.scalar(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return default
        if isinstance(value, int) and abs(value) > _FLOAT_INT_MAX:
            return math.inf if value > 0 else -math.inf
        return value

    def integers(self, name: str) -> list[int]:
        """The integral values of the repeated child ``name`` (junk like inf or 2.5 is left out)."""
        out = []
        for c in self.all(name):
            v = c.value
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if isinstance(v, float) and not (math.isfinite(v) and v.is_integer()):
                continue
            out.append(int(v))
        return out

    def walk(self):
        """This node and every node below it, depth first, in file order (a loop, not nested generators)."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            if node.children:
                stack.extend(reversed(node.children))


@dataclass
class Comment:
    """A ``#`` comment: where it is, its text, and whether code precedes it on its line."""

    line: int
    col: int
    text: str
    trailing: bool


@dataclass
class Document:
    """A parsed file: the top-level fields (as the children of a root node) and its comments."""

    path: str
    root: Node
    comments: list[Comment] = field(default_factory=list)
    text: str = ""  # the file as read, for rules that can rule a file out by a word it lacks
