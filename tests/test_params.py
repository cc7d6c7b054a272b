"""The one param_str parser: its syntaxes, its schema checks and its messages (no Caffe)."""

import pytest

from caffe_nanlayers.errors import UserError
from caffe_nanlayers.params import FLOAT32_MAX, Key, ParamError, ordered_range, parse_param_str, positive

SCHEMA = {
    "label": Key(str, default=""),
    "mode": Key(str, default="raise", choices=("raise", "warn")),
    "threshold": Key(float, default=1.0, check=positive),
    "every": Key(int, default=10),
    "clip": Key("range", default=None, check=ordered_range),
    "flag": Key(bool, default=False),
}


def parse(text, schema=SCHEMA, **kw):
    return parse_param_str(text, schema, layer_class="TestLayer", **kw)


def test_empty_gives_defaults():
    defaults = {"label": "", "mode": "raise", "threshold": 1.0, "every": 10, "clip": None, "flag": False}
    assert parse("") == defaults
    assert parse(None)["mode"] == "raise"


def test_plain_string_is_the_label_as_in_the_snippet():
    assert parse("prefix-check_loss")["label"] == "prefix-check_loss"
    assert parse("  after fc2 ")["label"] == "after fc2"


@pytest.mark.parametrize(
    "text",
    [
        '{"mode": "warn", "threshold": 2, "clip": [0, 1], "flag": true}',  # JSON
        "{'mode': 'warn', 'threshold': 2.0, 'clip': (0, 1), 'flag': True}",  # Python
        "{'mode': 'warn', 'threshold': 2, 'clip': [0, 1.0], 'flag': True,}",  # Python, trailing comma
    ],
)
def test_json_and_python_dicts(text):
    values = parse(text)
    assert values["mode"] == "warn" and values["threshold"] == 2.0 and isinstance(values["threshold"], float)
    assert values["clip"] == (0.0, 1.0) and values["flag"] is True


def test_null_means_default_for_optional_keys():
    assert parse('{"clip": null}')["clip"] is None


def test_unknown_key_names_layer_key_and_valid_keys():
    with pytest.raises(ParamError) as err:
        parse("{'mod': 'warn'}", layer_name="check_fc2")
    message = str(err.value)
    assert "TestLayer 'check_fc2'" in message
    assert "unknown key 'mod'" in message and "did you mean 'mode'?" in message
    assert "valid keys: clip, every, flag, label, mode, threshold" in message
    assert err.value.key == "mod" and err.value.layer_name == "check_fc2"
    assert isinstance(err.value, UserError)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{'threshold': 'ten'}", "key 'threshold' must be a number, not 'ten' (str)"),
        ("{'threshold': True}", "key 'threshold' must be a number"),
        ("{'every': 2.5}", "key 'every' must be an integer"),
        ("{'label': 3}", "key 'label' must be a string"),
        ("{'flag': 1}", "key 'flag' must be true or false"),
        ("{'clip': [1]}", "key 'clip' must be a list [lo, hi] of two numbers"),
        ("{'mode': 'stop'}", "key 'mode' must be one of 'raise', 'warn', not 'stop'"),
        ("{'threshold': 0}", "key 'threshold' must be a finite number > 0, not 0.0"),
        ("{'threshold': -1e999}", "key 'threshold' must be a finite number > 0"),
        ("{'clip': [2, 1]}", "key 'clip' must be [lo, hi] with lo <= hi"),
    ],
)
def test_wrong_type_or_bad_value(text, expected):
    with pytest.raises(ParamError, match="valid keys: ") as err:
        parse(text)
    assert expected in str(err.value)
    assert err.value.key in text


def test_required_key():
    schema = {"label": Key(str, default=""), "threshold": Key(float, required=True)}
    with pytest.raises(ParamError, match="key 'threshold' is required"):
        parse("", schema)
    with pytest.raises(ParamError, match="key 'threshold' is required"):
        parse("just a label", schema)
    assert parse("{'threshold': 3}", schema)["threshold"] == 3.0


@pytest.mark.parametrize("text", ["{'mode': }", "{'mode': 'warn'", "{'a': __import__('os').getcwd()}"])
def test_invalid_literal_is_an_error_and_never_evaluated(text):
    with pytest.raises(ParamError, match="not a valid dict literal"):
        parse(text)


def test_non_string_key():
    with pytest.raises(ParamError, match="unknown key 1;"):
        parse("{1: 2}")


@pytest.mark.parametrize("text", ["mode: warn", "mode=warn", "'mode': 'warn'"])
def test_key_value_pair_without_braces_is_not_taken_for_a_label(text):
    with pytest.raises(ParamError, match="write a dict literal"):
        parse(text)


def test_no_label_key_means_dict_only():
    with pytest.raises(ParamError, match="is not a dict literal"):
        parse("some text", {"threshold": Key(float, default=1.0)})


def test_float32_limits_are_exact():
    assert float(FLOAT32_MAX) == float.fromhex("0x1.fffffep+127")


@pytest.mark.parametrize("text", ["{'threshold': %s}", '{"clip": [0, %s]}', "{'threshold': -%s}"])
def test_integer_too_large_for_a_number_is_a_param_error(text):
    with pytest.raises(
        ParamError, match="must be a number that fits a float, not an integer of 400 digits; valid keys: "
    ):
        parse(text % ("9" * 400))


def test_nesting_too_deep_is_a_param_error():
    with pytest.raises(ParamError, match="not a valid dict literal"):
        parse('{"label":' + "[" * 100_000 + "]" * 100_000 + "}")
