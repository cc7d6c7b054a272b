"""Reading nets and solvers for the tools that run them, with real caffe_pb2."""

import os
import stat

import pytest

from caffe_nanlayers import proto_io
from caffe_nanlayers.atomic import write_atomic
from caffe_nanlayers.errors import UserError

NET = 'name: "n"\nlayer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 } } }\n'


def test_net_file_is_read(caffe, tmp_path):
    path = tmp_path / "net.prototxt"
    path.write_text(NET)
    resolved = proto_io.read_net_or_solver(path)
    assert resolved.net.layer[0].name == "in" and resolved.solver is None


def test_syntax_error_names_path_line_and_column(caffe, tmp_path):
    path = tmp_path / "bad.prototxt"
    path.write_text('name: "n"\nlayer {\n  name: "in"\n  typo_field: 3\n}\n')
    with pytest.raises(UserError) as err:
        proto_io.read_net(path)
    message = str(err.value)
    assert message.startswith(f"{path}:4:")
    assert "typo_field" in message and "\n" not in message


def test_solver_net_found_relative_to_solver_dir(caffe, tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "net.prototxt").write_text(NET)
    solver = tmp_path / "models" / "solver.prototxt"
    solver.write_text('net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 10\n')
    monkeypatch.chdir(tmp_path)
    resolved = proto_io.read_net_or_solver(solver)
    assert resolved.path == tmp_path / "models" / "net.prototxt"
    assert "solver's directory" in resolved.note
    assert resolved.solver.max_iter == 10


def test_solver_with_missing_net_is_a_user_error(caffe, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    solver = tmp_path / "solver.prototxt"
    solver.write_text('net: "nowhere.prototxt"\nbase_lr: 0.01\n')
    with pytest.raises(UserError, match=r"nowhere\.prototxt"):
        proto_io.read_net_or_solver(solver)


def test_inline_net_param(caffe, tmp_path):
    solver = tmp_path / "solver.prototxt"
    solver.write_text("base_lr: 0.1\nnet_param { " + NET.replace("\n", " ") + " }\n")
    assert proto_io.read_net_or_solver(solver).net.layer[0].type == "Input"


def test_inline_net_param_over_several_lines_is_a_solver(caffe, tmp_path):
    """The net's own fields inside net_param { ... } do not make the solver a net."""
    solver = tmp_path / "solver.prototxt"
    solver.write_text(
        'base_lr: 0.1\nlr_policy: "fixed"\nnet_param {\n  name: "n"\n'
        '  layer {\n    name: "in"\n    type: "Input"\n    top: "x"\n'
        "    input_param { shape { dim: 1 } }\n  }\n}\n"
    )
    resolved = proto_io.read_net_or_solver(solver)
    assert resolved.solver is not None and resolved.note == "inline net_param"
    assert [layer.name for layer in resolved.net.layer] == ["in"]


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ('base_lr: 0.1\nnet_param {\n  layer { name: "a" }\n  input: "x"\n}\n', {"base_lr", "net_param"}),
        ('layer { name: "a{" type: "ReLU" }  # base_lr: 1 {\n', {"layer"}),
        ('net: "a" lr_policy: "fixed" test_state: { stage: "s" }', {"net", "lr_policy", "test_state"}),
        ('layer < name: "x" > base_lr: 1', {"layer", "base_lr"}),
    ],
)
def test_top_level_fields_skip_nested_fields_strings_and_comments(text, fields):
    assert proto_io.top_level_fields(text) == fields


def test_missing_file_and_binary_file(caffe, tmp_path):
    with pytest.raises(UserError, match="no such file"):
        proto_io.read_net(tmp_path / "absent.prototxt")
    junk = tmp_path / "junk.prototxt"
    junk.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(UserError, match="not a text file"):
        proto_io.read_net(junk)


def test_write_atomic_replaces_whole_file(tmp_path):
    target = tmp_path / "out" / "report.txt"
    write_atomic(target, "first")
    write_atomic(target, b"second")
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["report.txt"]


def test_write_atomic_gives_the_mode_open_would_or_keeps_the_targets(tmp_path):
    old_umask = os.umask(0o027)
    try:
        fresh = write_atomic(tmp_path / "fresh.txt", "x")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o640  # 0o666 & ~0o027, as open() gives
        kept = tmp_path / "kept.sh"
        kept.write_text("old")
        kept.chmod(0o755)
        write_atomic(kept, "new")
        assert (stat.S_IMODE(kept.stat().st_mode), kept.read_text()) == (0o755, "new")
    finally:
        os.umask(old_umask)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty, expected a net or solver prototxt"),
        ("# a net will go here\n\n", "only comments, expected a net or solver prototxt"),
        ('name: "n"\n', "the net has no layer"),
    ],
)
def test_a_file_without_a_layer_is_an_error_not_an_empty_net(caffe, tmp_path, text, message):
    path = tmp_path / "net.prototxt"
    path.write_text(text)
    with pytest.raises(UserError) as err:
        proto_io.read_net_or_solver(path)
    assert str(err.value) == f"{path}: {message}"


def test_a_solvers_net_without_a_layer_is_an_error(caffe, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text('name: "n"\n')
    (tmp_path / "solver.prototxt").write_text('net: "net.prototxt"\nbase_lr: 0.01\n')
    with pytest.raises(UserError, match=r"^net\.prototxt: the net has no layer$"):
        proto_io.read_net_or_solver("solver.prototxt")
    (tmp_path / "inline.prototxt").write_text('base_lr: 0.01\nnet_param { name: "n" }\n')
    with pytest.raises(UserError, match=r"^inline\.prototxt \(inline net_param\): the net has no layer$"):
        proto_io.read_net_or_solver("inline.prototxt")


def test_a_solvers_net_that_is_a_directory_is_said_so(caffe, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "solver.prototxt").write_text('net: "models"\nbase_lr: 0.01\n')
    with pytest.raises(UserError) as err:
        proto_io.read_net_or_solver("solver.prototxt")
    assert str(err.value) == "solver.prototxt: net file 'models' is a directory, expected a net prototxt"


@pytest.mark.parametrize(
    ("rules", "in_train"),
    [
        ("", True),
        ('include { phase: TRAIN stage: "s" }', True),  # some stages meet it
        ("include { phase: TEST }", False),
        ("exclude { phase: TRAIN }", False),
        ('exclude { phase: TRAIN stage: "deploy" }', True),  # out only in stage deploy
        ("exclude { min_level: 2 }", True),
        ("exclude { }", False),  # an empty rule is met by every state, as in Caffe
    ],
)
def test_a_layer_may_be_in_a_phase_whatever_its_level_and_stages(caffe, rules, in_train):
    layer = proto_io.parse_text(f'name: "l" type: "ReLU" {rules}', proto_io.caffe_pb2().LayerParameter(), "-")
    assert proto_io.layer_may_be_in_phase(layer, proto_io.caffe_pb2().TRAIN) is in_train


def test_a_net_named_from_the_repository_root_is_found_as_the_linter_finds_it(caffe, tmp_path, monkeypatch):
    """BVLC's solvers say net: "models/x/train_val.prototxt", for a run from the repository's root."""
    from caffe_nanlayers.lint.linter import resolve_net
    from caffe_nanlayers.lint.parser import parse_text as lint_parse

    (tmp_path / "models" / "x").mkdir(parents=True)
    (tmp_path / "models" / "x" / "train_val.prototxt").write_text(NET)
    solver = tmp_path / "models" / "x" / "solver.prototxt"
    solver.write_text('net: "models/x/train_val.prototxt"\nbase_lr: 0.01\n')
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    resolved = proto_io.read_net_or_solver(solver)
    assert resolved.path.resolve() == (tmp_path / "models" / "x" / "train_val.prototxt")
    assert resolved.note == f"net file {resolved.path} found relative to {tmp_path}"
    linted = resolve_net(lint_parse(solver.read_text()).root.get("net"), str(solver), ".")
    assert os.path.samefile(linted.found, resolved.path)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('base_lr: 0.1\nnet_param {\n  layer { name: "a" type: "ReLU" }\n}\n', "solver"),
        ('layer { name: "a" type: "ReLU" }\n', "net"),
        ("display: 1\nsnapshot: 10\n", "solver"),
        ('type: "Adam"\n', "solver"),
        ('name: "n"\n', "net"),
    ],
)
def test_the_linter_and_proto_io_tell_a_net_from_a_solver_alike(text, kind):
    from caffe_nanlayers.lint.linter import file_kind
    from caffe_nanlayers.lint.parser import parse_text as lint_parse

    assert file_kind(lint_parse(text).root) == kind
    assert proto_io.looks_like_solver(text) is (kind == "solver")
