"""Parse protobuf text format (prototxt) into a ``Document`` of positioned ``Node``s.

Accepts every form Caffe's C++ parser does: ``field: value``,
``field { ... }``, ``field: { ... }``, ``field < ... >``, lists
``field: [a, b]`` and ``field [{...}, {...}]``, optional ``,``/``;``
separators, adjacent strings, and signed ``inf``/``nan``. A syntax error is a
``PrototxtSyntaxError`` (a ``UserError``) whose message is one line:
``path:line:col: expected ..., found ...``.
"""

from __future__ import annotations

import gc

from caffe_nanlayers.errors import UserError
from caffe_nanlayers.lint import tokenizer as tk
from caffe_nanlayers.lint.fastparse import Unhandled, parse_fast
from caffe_nanlayers.lint.model import IDENTIFIER, NUMBER, STRING, Document, Node

_CLOSE = {"{": "}", "<": ">"}
_SPECIAL_FLOATS = {"inf": float("inf"), "infinity": float("inf"), "nan": float("nan")}
# Deeper nesting than any real net; guards the recursion against junk like "a{a{a{...".
MAX_DEPTH = 100


class PrototxtSyntaxError(UserError):
    """A file that is not valid protobuf text format."""

    def __init__(self, path: str, line: int, col: int, message: str):
        super().__init__(f"{path}:{line}:{col}: {message}")
        self.path, self.line, self.col, self.detail = path, line, col, message


def parse_number(text: str, negative: bool = False) -> int | float:
    """A number token's value: int when it is written as an integer, float otherwise."""
    if text.isdigit() and (text[0] != "0" or len(text) == 1):  # most numbers: plain decimal integers
        return -int(text) if negative else int(text)
    sign = -1 if negative else 1
    lowered = text.lower()
    if lowered.startswith("0x"):
        return sign * int(lowered, 16)
    if lowered.endswith("f") and not lowered.startswith("0x"):
        return sign * float(lowered[:-1])
    if any(c in lowered for c in ".e"):
        return sign * float(lowered)
    if len(lowered) > 1 and lowered.startswith("0"):
        return sign * int(lowered, 8)
    return sign * int(lowered)


class _Parser:
    def __init__(self, path: str, tokens: list[tk.Token]):
        self.path, self.tokens, self.pos = path, tokens, 0

    @property
    def tok(self) -> tk.Token:
        return self.tokens[self.pos]

    def error(self, expected: str, token: tk.Token | None = None):
        token = token or self.tok
        message = f"expected {expected}, found {token.describe()}"
        raise PrototxtSyntaxError(self.path, token.line, token.col, message)

    def at(self, symbol: str) -> bool:
        return self.tok.kind == tk.SYMBOL and self.tok.text == symbol

    def take(self) -> tk.Token:
        token = self.tok
        self.pos += 1
        return token

    def fields(self, close: str | None, depth: int, opener: tk.Token | None = None) -> list[Node]:
        """Fields until ``close`` (or end of file at top level)."""
        if depth > MAX_DEPTH:
            self.error(f"at most {MAX_DEPTH} nested messages")
        nodes: list[Node] = []
        while True:
            if close is None and self.tok.kind == tk.EOF:
                return nodes
            if close is not None and self.at(close):
                return nodes
            if close is not None and opener is not None and self.tok.kind == tk.EOF:
                self.error(f"'{close}' closing the '{opener.text}' of line {opener.line}")
            if self.tok.kind != tk.IDENT:
                what = "a field name" if close is None else f"a field name or '{close}'"
                self.error(what)
            nodes.extend(self.field(depth))
            if self.at(",") or self.at(";"):
                self.take()

    def field(self, depth: int) -> list[Node]:
        name_tok = self.take()
        name = name_tok.text
        colon = False
        if self.at(":"):
            self.take()
            colon = True
        if self.at("{") or self.at("<"):
            return [self.message(name, name_tok, depth)]
        if self.at("["):
            return self.list_value(name, name_tok, depth, colon)
        if not colon:
            self.error(f"':' or '{{' after field name '{name}'")
        return [self.scalar(name, name_tok)]

    def message(self, name: str, name_tok: tk.Token, depth: int) -> Node:
        open_tok = self.take()
        close = _CLOSE[open_tok.text]
        children = self.fields(close, depth + 1, open_tok)
        end_tok = self.take()  # the closing symbol: fields() stops only there
        return Node(
            name,
            name_tok.line,
            name_tok.col,
            children=children,
            value_line=open_tok.line,
            value_col=open_tok.col,
            end_line=end_tok.line,
        )

    def list_value(self, name: str, name_tok: tk.Token, depth: int, colon: bool) -> list[Node]:
        self.take()  # '['
        nodes: list[Node] = []
        while not self.at("]"):
            if self.at("{") or self.at("<"):
                nodes.append(self.message(name, name_tok, depth))
            elif colon:
                nodes.append(self.scalar(name, name_tok))
            else:
                self.error("'{' (a list without ':' holds messages)")
            nodes[-1].listed = True
            if self.at(","):
                self.take()
            elif not self.at("]"):
                self.error("',' or ']' in a list")
        self.take()
        return nodes

    def scalar(self, name: str, name_tok: tk.Token) -> Node:
        first = self.tok
        negative = False
        if self.at("-"):
            self.take()
            negative = True
        token = self.tok
        node = Node(name, name_tok.line, name_tok.col, value_line=first.line, value_col=first.col)
        if token.kind == tk.NUMBER:
            self.take()
            try:
                node.value = parse_number(token.text, negative)
            except ValueError:
                self.error("a number", token)
            node.kind, node.raw = NUMBER, ("-" if negative else "") + token.text
        elif token.kind == tk.IDENT:
            self.take()
            special = _SPECIAL_FLOATS.get(token.text.lower())
            if negative:
                if special is None:
                    self.error("a number after '-'", token)
                node.value, node.kind = -special, NUMBER
            elif special is not None:
                node.value, node.kind = special, NUMBER
            else:
                node.value, node.kind = token.text, IDENTIFIER
            node.raw = ("-" if negative else "") + token.text
        elif token.kind == tk.STRING and not negative:
            parts = [self.take()]
            while self.tok.kind == tk.STRING:
                parts.append(self.take())
            node.value = "".join(p.value or "" for p in parts)
            node.kind, node.raw = STRING, " ".join(p.text for p in parts)
        else:
            self.error(f"a value for '{name}'")
        return node


def parse_text(text: str, path: str = "<string>") -> Document:
    """Parse prototxt ``text``; ``path`` is only used in messages."""
    # The tree holds no reference cycles, and the collector would walk every node just built (and all
    # the trees still held) again and again while a big file is parsed: it is paused meanwhile.
    collecting = gc.isenabled()
    gc.disable()
    try:
        children, comments, last_line = parse_fast(text, parse_number, MAX_DEPTH)
    except Unhandled:
        return parse_text_exact(text, path)
    finally:
        if collecting:
            gc.enable()
    return Document(path, Node("", 1, 1, children=children, end_line=last_line), comments, text)


def parse_text_exact(text: str, path: str = "<string>") -> Document:
    """The reference parser: every form Caffe accepts, every error worded (slower: tokens first)."""
    try:
        tokens, comments = tk.tokenize(text)
    except tk.TokenizeError as exc:
        raise PrototxtSyntaxError(path, exc.line, exc.col, exc.message) from None
    parser = _Parser(path, tokens)
    children = parser.fields(None, 0)
    root = Node("", 1, 1, children=children, end_line=tokens[-1].line)
    return Document(path, root, comments, text)


# Far above any real net (the largest model-zoo nets are a few MB), far below what would exhaust memory:
# /dev/zero or a stray 4 GB file is one line, not a MemoryError.
MAX_BYTES = 64 * 1024 * 1024


def parse_file(path: str, max_bytes: int = MAX_BYTES) -> Document:
    """Read and parse a file; unreadable, oversized or non-UTF-8 files are a ``UserError`` too."""
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise UserError(f"{path}:1:1: cannot read the file: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise PrototxtSyntaxError(
            path,
            1,
            1,
            f"expected a prototxt file of at most {max_bytes // (1024 * 1024)} MB, found a larger one",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise PrototxtSyntaxError(
            path, line, col, f"expected UTF-8 text, found byte 0x{data[exc.start]:02x}"
        ) from None
    return parse_text(text, path)
