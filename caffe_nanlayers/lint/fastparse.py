"""The parser's fast path: one regular expression and one pass from text to ``Node``s, for valid files.

Real nets are large (a detection net of 8,000 layers' lines is 200 KB, a model collection 13 MB):
tokenizing into objects and then parsing them cost about 40 microseconds a line. Here the regular
expression engine skips blanks, line ends and finds each token, lines are counted with
``str.count`` between tokens, and nodes are built as the tokens come, with no token objects.

It accepts the common forms only (``name: value``, ``name { }``, ``name: { }``, ``name < >``,
separators, adjacent strings, signed numbers). Anything else (a list ``[...]``, a syntax error, a
bad escape, deep nesting) raises ``Unhandled``, and the caller parses the text again with the
exact tokenizer and parser, which accept every form and word every error. Both build the same tree:
a test compares them on every corpus file and on fuzzed ones.
"""

from __future__ import annotations

import re

from caffe_nanlayers.lint.model import IDENTIFIER, NUMBER, STRING, Comment, Node
from caffe_nanlayers.lint.tokenizer import _decode_string

_BLANK = r"[ \t\r\n\f\v]*"
_NAME = r"[A-Za-z_][A-Za-z0-9_.]*"
_NUMBER = r"(?:0[xX][0-9a-fA-F]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fF]?)(?![\w.])"
_STRING = r"\"[^\"\\\n]*(?:\\.[^\"\\\n]*)*\"|'[^'\\\n]*(?:\\.[^'\\\n]*)*'"
_VALUE = rf"-?[ \t]*(?:{_NUMBER}|{_NAME})(?![\w.])|{_STRING}"
# The blanks before a token, with (1) their first line end and (2) their last one when there are more:
# the line count then needs no search of the text for most tokens, which follow exactly one line end.
_BLANKS = r"[ \t\r\f\v]*(?:(\n)[ \t\r\f\v]*(?:(\n)[ \t\r\f\v]*)*)?"
# One match per field, not per token. The common forms, on one line: (3) a name and its value, sorted
# by the expression itself into (4) a plain quoted string, (5) a decimal integer, (6) an enum word or a
# bool, or (7) any other value; (8) a name and (9) the '{' or '<' that opens it; (10) a closing brace.
# The same spread over lines: (11) a name, then (12) the '{' after its ':', or (13) its value, or (14)
# a '{' without ':'. Then (15) a separator, (16) a comment, (17) the end, and (18) anything else, which
# the fast path leaves to the exact parser.
_FIELD = re.compile(
    rf"""{_BLANKS}(?:
      ({_NAME})[ \t]*:[ \t]*(?:
          ("[^"\\\n]*")
        | ((?:[1-9][0-9]*|0)(?![\w.]))
        | ((?!(?i:inf|infinity|nan)(?![\w.])){_NAME}(?![\w.]))
        | ({_VALUE}))
    | ({_NAME})[ \t]*:?[ \t]*([{{<])
    | ([}}>])
    | ({_NAME}){_BLANK}(?::{_BLANK}(?:([{{<])|({_VALUE}))|([{{<]))
    | ([,;])
    | (\#[^\n]*)
    | (\Z)
    | (.)
    )""",
    re.VERBOSE | re.DOTALL,
)
_CLOSE = {"{": "}", "<": ">"}
_SPECIAL_FLOATS = {"inf": float("inf"), "infinity": float("inf"), "nan": float("nan")}
_DIGITS = set("0123456789.")
_LETTERS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")


class Unhandled(Exception):
    """Not a form the fast path takes: parse the text with the exact parser instead."""


def _scalar(token: str, parse_number, line: int, col: int) -> tuple:
    """(value, kind, raw) of a value as matched (a leading '-' and blanks included)."""
    negative = token[0] == "-"
    if negative:
        token = token[1:].lstrip(" \t")
    first = token[0]
    if first in _DIGITS:
        try:
            return parse_number(token, negative), NUMBER, "-" + token if negative else token
        except ValueError:
            raise Unhandled from None
    if first == '"' or first == "'":
        if negative:
            raise Unhandled
        value = token[1:-1]
        if "\\" in value:
            try:
                value = _decode_string(value, line, col)
            except Exception:
                raise Unhandled from None
        return value, STRING, token
    special = _SPECIAL_FLOATS.get(token.lower())
    if special is None:
        if negative:
            raise Unhandled
        return token, IDENTIFIER, token
    return (-special if negative else special), NUMBER, "-" + token if negative else token


def parse_fast(text: str, parse_number, max_depth: int) -> tuple[list[Node], list[Comment], int]:
    """(top-level nodes, comments, last line) of valid ``text``; ``Unhandled`` for anything else."""
    count = text.count
    rfind = text.rfind
    comments: list[Comment] = []
    nodes: list[Node] = []
    stack: list[tuple] = []  # (nodes of the enclosing level, name, line, col, open line, open col, close)
    line, line_start = 1, 0
    last_code_line = 0
    after_field = False  # a separator may follow a field, once
    append = nodes.append
    for m in _FIELD.finditer(text):
        group = m.lastindex
        first_end = m.start(1)
        if first_end >= 0:  # the blanks before the token end a line, or more
            last_end = m.start(2)
            if last_end < 0:
                line += 1
                line_start = first_end + 1
            else:
                line += count("\n", first_end, last_end + 1)
                line_start = last_end + 1
        if group < 8:  # name: value, its kind told by the group that matched it
            name, raw = m.group(3, group)
            vcol = m.start(group) - line_start + 1
            if group == 4:
                value, kind = raw[1:-1], STRING
            elif group == 5:
                value, kind = int(raw), NUMBER
            elif group == 6:
                value, kind = raw, IDENTIFIER
            else:
                value, kind, raw = _scalar(raw, parse_number, line, vcol)
            append(Node(name, line, m.start(3) - line_start + 1, value, kind, raw, line, vcol))
            last_code_line = line
            after_field = True
        elif group == 10:  # a closing brace
            if not stack:
                raise Unhandled
            outer, name, name_line, name_col, open_line, open_col, close = stack.pop()
            if m.group(10) != close:
                raise Unhandled
            outer.append(Node(name, name_line, name_col, None, None, "", open_line, open_col, nodes, line))
            nodes = outer
            append = nodes.append
            last_code_line = line
            after_field = True
        elif group == 9:  # name {
            if len(stack) >= max_depth:
                raise Unhandled
            brace = m.group(9)
            name_col, open_col = m.start(8) - line_start + 1, m.start(9) - line_start + 1
            stack.append((nodes, m.group(8), line, name_col, line, open_col, _CLOSE[brace]))
            nodes = []
            append = nodes.append
            last_code_line = line
            after_field = False
        elif group == 16:
            col = m.start(16) - line_start + 1
            comments.append(Comment(line, col, m.group(16)[1:], trailing=last_code_line == line))
        elif 11 <= group <= 14:  # a field spread over lines: place its name and value one by one
            name_start, other = m.start(11), m.start(group)
            name_line, name_col = line, name_start - line_start + 1
            between = count("\n", name_start, other)  # line ends between the name and what follows
            if between:
                line += between
                line_start = rfind("\n", name_start, other) + 1
            other_col = other - line_start + 1
            if group == 13:
                value, kind, raw = _scalar(m.group(13), parse_number, line, other_col)
                append(Node(m.group(11), name_line, name_col, value, kind, raw, line, other_col))
                after_field = True
            else:
                if len(stack) >= max_depth:
                    raise Unhandled
                stack.append(
                    (nodes, m.group(11), name_line, name_col, line, other_col, _CLOSE[m.group(group)])
                )
                nodes = []
                append = nodes.append
                after_field = False
            last_code_line = line
        elif group == 15:
            if not after_field:
                raise Unhandled
            last_code_line = line
            after_field = False
        elif group == 17:
            if stack:
                raise Unhandled
            return nodes, comments, line
        else:
            raise Unhandled
    raise Unhandled  # not reached: \Z always matches at the end
