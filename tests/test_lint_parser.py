"""The prototxt parser: every form Caffe accepts, positions, and one-line errors."""

from __future__ import annotations

import math

import pytest

from caffe_nanlayers.errors import UserError
from caffe_nanlayers.lint.parser import PrototxtSyntaxError, parse_file, parse_text


def fields(text):
    return parse_text(text).root.children


def test_scalar_forms_and_positions():
    a, b, c = fields('a: 1\n  b: "x y"\nc: FOO')
    assert (a.name, a.value, a.line, a.col) == ("a", 1, 1, 1)
    assert (b.value, b.line, b.col, b.value_line, b.value_col) == ("x y", 2, 3, 2, 6)
    assert (c.value, c.kind) == ("FOO", "identifier")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v: 1e-3", 0.001),
        ("v: -2", -2),
        ("v: .5", 0.5),
        ("v: 1.0f", 1.0),
        ("v: 0x1F", 31),
        ("v: -inf", -math.inf),
        ("v: inf", math.inf),
        ("v: 1E+2", 100.0),
    ],
)
def test_numbers(text, expected):
    assert fields(text)[0].value == expected


def test_nan_is_a_number():
    node = fields("v: nan")[0]
    assert node.kind == "number" and math.isnan(node.value)


def test_message_forms_are_equivalent():
    for text in ("m { x: 1 }", "m: { x: 1 }", "m < x: 1 >", "m: < x: 1 >"):
        (m,) = fields(text)
        assert m.is_message and m.scalar("x") == 1, text


def test_lists_expand_to_repeated_fields():
    nodes = fields("d: [1, 2, 3] m [{x: 1}, {x: 2}]")
    assert [n.value for n in nodes if n.name == "d"] == [1, 2, 3]
    assert [n.scalar("x") for n in nodes if n.name == "m"] == [1, 2]


def test_strings_escapes_and_concatenation():
    (s,) = fields(r"""s: 'it\'s' "\x41\101\n" """)
    assert s.value == "it'sAA\n"


def test_separators_and_comments_are_kept():
    doc = parse_text("a: 1, b: 2; # trailing\n# own line\nc: 3")
    assert [n.name for n in doc.root.children] == ["a", "b", "c"]
    assert [(c.line, c.trailing, c.text) for c in doc.comments] == [
        (1, True, " trailing"),
        (2, False, " own line"),
    ]


def test_end_line_of_messages():
    (m,) = fields("m {\n  x: 1\n}\n")
    assert (m.line, m.end_line) == (1, 3)


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("layer {\n  name: 'x'\n", "3:1", "expected '}' closing the '{' of line 1, found end of file"),
        ("a: }", "1:4", "expected a value for 'a', found '}'"),
        ("}", "1:1", "expected a field name, found '}'"),
        ('a: "x', "1:4", 'expected a closing ", found the end of file'),
        ("a 3", "1:3", "expected ':' or '{' after field name 'a', found number 3"),
        ("a: -foo", "1:5", "expected a number after '-', found identifier foo"),
        ("a: 1x", "1:4", "expected a number, found '1x'"),
        ("a: [1, 2", "1:9", "expected ',' or ']' in a list, found end of file"),
        ("a: @", "1:4", "expected a field, a value or a symbol, found character '@'"),
        ("a: 1 \x01", "1:6", "expected a field, a value or a symbol, found character '\\x01'"),
        ("a: 1 \u200b", "1:6", "expected a field, a value or a symbol, found character '\\u200b'"),
        (
            "\ufeffa: 1",
            "1:1",
            "expected a field, a value or a symbol, found a UTF-8 byte order mark (U+FEFF)",
        ),
    ],
)
def test_syntax_errors_are_one_line_with_position(text, where, message):
    with pytest.raises(PrototxtSyntaxError) as info:
        parse_text(text, "f.prototxt")
    assert str(info.value) == f"f.prototxt:{where}: {message}"
    assert "\n" not in str(info.value)
    assert isinstance(info.value, UserError)


def test_deep_nesting_is_an_error_not_a_recursion_crash():
    with pytest.raises(PrototxtSyntaxError, match="nested"):
        parse_text("a {" * 5000)


def test_binary_file_is_a_user_error(tmp_path):
    path = tmp_path / "junk.prototxt"
    path.write_bytes(b"name: 'x'\n\xff\xfe")
    with pytest.raises(PrototxtSyntaxError, match=r"junk.prototxt:2:1: expected UTF-8 text, found byte 0xff"):
        parse_file(str(path))


def test_byte_order_mark_is_named_once_quoted(tmp_path):
    """Caffe refuses a file saved with a BOM ('Failed to parse NetParameter file'): name the character."""
    path = tmp_path / "bom.prototxt"
    path.write_bytes("\ufeffname: 'x'\n".encode())
    with pytest.raises(PrototxtSyntaxError) as info:
        parse_file(str(path))
    assert str(info.value).endswith(
        ":1:1: expected a field, a value or a symbol, found a UTF-8 byte order mark (U+FEFF)"
    )
    assert "''" not in str(info.value)


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot read"):
        parse_file(str(tmp_path / "nope.prototxt"))


def test_last_singular_value_wins_like_caffe():
    root = parse_text("base_lr: 0.1 base_lr: 0.2").root
    assert root.scalar("base_lr") == 0.2


def test_the_fast_path_builds_the_exact_parser_tree_on_every_real_file(shared_dir):
    """Both parsers on every corpus file and example: the same nodes, positions and comments."""
    from conftest import EXAMPLES

    from caffe_nanlayers.lint.fastparse import parse_fast
    from caffe_nanlayers.lint.parser import MAX_DEPTH, parse_number, parse_text_exact

    paths = sorted((shared_dir / "corpus").rglob("*.prototxt")) + sorted(EXAMPLES.rglob("*.prototxt"))
    assert len(paths) > 350
    for path in paths:
        text = path.read_text(encoding="utf-8")
        children, comments, last_line = parse_fast(text, parse_number, MAX_DEPTH)  # none falls back
        if len(text) > 12_000:
            continue  # the exact parser takes seconds on the 12 MB of large nets: small files suffice
        exact = parse_text_exact(text, str(path))
        assert children == exact.root.children and comments == exact.comments, path
        assert last_line == exact.root.end_line, path


@pytest.mark.parametrize(
    "text",
    [
        "a: [1, 2]",
        'a: "x" "y"',
        "a:\n  1\nb\n{\n c: -inf }",
        "a { b: 1 } }",
        "a: 1,, b: 2",
        "a < b: 1 }",
        "a: - 3",
        "a: -x",
        'a: "\\q"',
        "a: 12abc",
        "a { " * 101 + "}" * 101,
        "a: 1 ; b: 'x' # c\n# d\n",
        "a: 1\n\n \n\tb {\r\n\r\n c: 2 }\n\n\n# x\n\n",
        "a\n\n:\n \n 1\nb\n\n{ c: inf d: -inf e: x }",
    ],
)
def test_fast_and_exact_parsers_agree_on_odd_forms(text):
    from caffe_nanlayers.lint.parser import parse_text_exact

    def outcome(parse):
        try:
            document = parse(text, "odd.prototxt")
        except PrototxtSyntaxError as exc:
            return str(exc)
        return document.root, document.comments

    assert outcome(parse_text) == outcome(parse_text_exact)


def test_a_non_ascii_digit_is_a_syntax_error_not_a_crash():
    """'²'.isdigit() is true, but no number starts with it: the tokenizer once crashed on it."""
    with pytest.raises(PrototxtSyntaxError, match="found character '²'"):
        parse_text("a: ²")
