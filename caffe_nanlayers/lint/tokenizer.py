"""Split protobuf text format into tokens that carry their line and column.

It follows protobuf's own tokenizer closely enough to accept what Caffe
accepts (``#`` comments, single- or double-quoted strings with C escapes,
adjacent strings, ``1e-3``, ``0x1F``, ``.5``, ``1.0f``), and it fails with a
position and a plain description of what it found, never with a traceback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from caffe_nanlayers.lint.model import Comment

# Token kinds
IDENT, NUMBER, STRING, SYMBOL, EOF = "identifier", "number", "string", "symbol", "end of file"

SYMBOLS = set("{}<>[]:,;-")
_DIGITS = set("0123456789")

_NUMBER = re.compile(
    r"0[xX][0-9a-fA-F]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fF]?",
)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_SIMPLE_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}


class TokenizeError(Exception):
    """Bad text at a position; the parser turns it into the user's one-line error."""

    def __init__(self, line: int, col: int, message: str):
        super().__init__(message)
        self.line, self.col, self.message = line, col, message


@dataclass(slots=True)
class Token:
    kind: str
    text: str  # as written (for strings: including quotes)
    line: int
    col: int
    value: str | None = None  # decoded string for STRING tokens

    def describe(self) -> str:
        if self.kind == EOF:
            return "end of file"
        if self.kind == SYMBOL:
            return f"'{self.text}'"
        text = self.text if len(self.text) <= 40 else self.text[:37] + "..."
        return f"{self.kind} {text}"


def _decode_string(body: str, line: int, col: int) -> str:
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        i += 1
        if i >= len(body):
            message = "expected an escape sequence after '\\', found the end of the string"
            raise TokenizeError(line, col, message)
        esc = body[i]
        if esc in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[esc])
            i += 1
        elif esc in "01234567":
            digits = re.match(r"[0-7]{1,3}", body[i:]).group(0)
            out.append(chr(int(digits, 8)))
            i += len(digits)
        elif esc in "xX":
            m = re.match(r"[0-9a-fA-F]{1,2}", body[i + 1 :])
            if not m:
                raise TokenizeError(line, col, "expected hex digits after '\\x', found none")
            out.append(chr(int(m.group(0), 16)))
            i += 1 + len(m.group(0))
        else:
            raise TokenizeError(line, col, f"expected a valid escape sequence, found '\\{esc}'")
    return "".join(out)


def _escaped(ch: str) -> str:
    """An unprintable character as its escape, without the quotes repr() would add."""
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def tokenize(text: str) -> tuple[list[Token], list[Comment]]:
    """All tokens of ``text`` (ending with an EOF token) and all its comments."""
    tokens: list[Token] = []
    comments: list[Comment] = []
    line, line_start, i, n = 1, 0, 0, len(text)
    last_code_line = 0
    while i < n:
        ch = text[i]
        col = i - line_start + 1
        if ch == "\n":
            line, line_start, i = line + 1, i + 1, i + 1
            continue
        if ch in " \t\r\f\v":
            i += 1
            continue
        if ch == "#":
            end = text.find("\n", i)
            end = n if end < 0 else end
            comments.append(Comment(line, col, text[i + 1 : end], trailing=last_code_line == line))
            i = end
            continue
        last_code_line = line
        if ch in SYMBOLS:
            tokens.append(Token(SYMBOL, ch, line, col))
            i += 1
            continue
        if ch in "\"'":
            j = i + 1
            while j < n and text[j] != ch:
                if text[j] == "\n":
                    message = f"expected a closing {ch} before the end of the line, found none"
                    raise TokenizeError(line, col, message)
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise TokenizeError(line, col, f"expected a closing {ch}, found the end of file")
            raw = text[i : j + 1]
            tokens.append(Token(STRING, raw, line, col, _decode_string(raw[1:-1], line, col)))
            i = j + 1
            continue
        if ch in _DIGITS or (ch == "." and i + 1 < n and text[i + 1] in _DIGITS):  # ASCII: not "²"
            m = _NUMBER.match(text, i)
            end = m.end()
            if end < n and (text[end].isalnum() or text[end] in "_."):
                bad = re.match(r"[\w.]+", text[i:]).group(0)
                raise TokenizeError(line, col, f"expected a number, found '{bad}'")
            tokens.append(Token(NUMBER, m.group(0), line, col))
            i = end
            continue
        m = _IDENT.match(text, i)
        if m:
            tokens.append(Token(IDENT, m.group(0), line, col))
            i = m.end()
            continue
        if ch == "\ufeff":  # an editor's UTF-8 byte order mark; protobuf's parser, and so Caffe, refuses it
            message = "expected a field, a value or a symbol, found a UTF-8 byte order mark (U+FEFF)"
            raise TokenizeError(line, col, message)
        shown = ch if ch.isprintable() else _escaped(ch)
        raise TokenizeError(line, col, f"expected a field, a value or a symbol, found character '{shown}'")
    tokens.append(Token(EOF, "", line, i - line_start + 1))
    return tokens, comments
