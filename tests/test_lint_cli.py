"""lint-prototxt's command line: output formats, selection, inline disables, exit codes, README sync."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from conftest import REPO

from caffe_nanlayers.commands.lint import main
from caffe_nanlayers.lint.rules import NOT_LINTED, RULES

POLY_BAD = 'base_lr: 0.01\nlr_policy: "poly"\npower: 0.9\n'


@pytest.fixture
def write(tmp_path):
    def write(name, text):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return str(path)

    return write


def run(capsys, *argv):
    code = main(list(argv), prog="lint-prototxt")
    out, err = capsys.readouterr()
    return code, out, err


def test_text_output_and_exit_codes(capsys, write):
    bad = write("solver.prototxt", POLY_BAD)
    code, out, _ = run(capsys, "--no-schema", bad)
    assert code == 1
    lines = out.splitlines()
    message = "max_iter is missing: it defaults to 0 and 'caffe train' stops before iteration 1"
    assert lines[0] == f"{bad}:1:1: NAN203 {message}"
    assert lines[1].startswith(f"{bad}:2:1: NAN202 ")
    assert lines[-1] == "Found 2 problems (2 errors) in 1 file."
    assert "\033[" not in out  # no colour when not a terminal
    good = write("ok.prototxt", 'base_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 10\n')
    assert run(capsys, "--no-schema", good) == (0, "", "")


def test_json_format(capsys, write):
    bad = write("solver.prototxt", POLY_BAD)
    code, out, _ = run(capsys, "--format", "json", "--no-schema", bad)
    data = json.loads(out)
    assert code == 1 and [d["code"] for d in data] == ["NAN203", "NAN202"]
    assert set(data[0]) == {"path", "line", "column", "code", "severity", "message"}
    assert run(capsys, "--json", "--no-schema", bad)[1] == out


def test_github_format(capsys, write):
    bad = write("solver.prototxt", POLY_BAD)
    _, out, _ = run(capsys, "--format", "github", "--no-schema", bad)
    assert out.splitlines()[0].startswith(
        f"::error file={bad},line=1,col=1,title=NAN203::max_iter is missing"
    )


def test_sarif_format(capsys, write, tmp_path, monkeypatch):
    bad = write("solver.prototxt", POLY_BAD)
    monkeypatch.chdir(tmp_path)
    _, out, _ = run(capsys, "--format", "sarif", "--no-schema", bad)
    log = json.loads(out)
    assert log["version"] == "2.1.0"
    run_ = log["runs"][0]
    rules = run_["tool"]["driver"]["rules"]
    result = run_["results"][0]
    assert result["ruleId"] == "NAN203" and result["level"] == "error"
    assert rules[result["ruleIndex"]]["id"] == "NAN203"
    assert result["locations"][0]["physicalLocation"]["region"] == {"startLine": 1, "startColumn": 1}
    # Relative to the working directory, as code scanning expects; outside it, an absolute file:// URI.
    assert result["locations"][0]["physicalLocation"]["artifactLocation"] == {"uri": "solver.prototxt"}
    monkeypatch.chdir(REPO)
    log = json.loads(run(capsys, "--format", "sarif", "--no-schema", bad)[1])
    uri = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == (tmp_path / "solver.prototxt").as_uri()


def test_select_and_ignore_by_code_and_prefix(capsys, write):
    bad = write("solver.prototxt", POLY_BAD)
    assert json.loads(run(capsys, "--json", "--select", "NAN203", bad)[1])[0]["code"] == "NAN203"
    assert [
        d["code"] for d in json.loads(run(capsys, "--json", "--select", "NAN2", "--ignore", "NAN203", bad)[1])
    ] == ["NAN202"]
    assert run(capsys, "--ignore", "NAN2", "--no-schema", bad)[0] == 0
    code, _, err = run(capsys, "--select", "XYZ1", bad)
    assert code == 2 and err.strip() == "lint-prototxt: unknown rule code or prefix 'XYZ1' (see --list-rules)"


def test_inline_disables(capsys, write):
    net = write(
        "net.prototxt",
        """
layer {
  # lint-prototxt: disable=NAN112
  name: "drop" type: "Dropout" bottom: "x" top: "x"
  dropout_param { dropout_ratio: 1 }
}
layer { name: "drop2" type: "Dropout" bottom: "x" top: "x"
  dropout_param { dropout_ratio: 1 }  # lint-prototxt: disable=NAN1
}
layer { name: "drop3" type: "Dropout" bottom: "x" top: "x"
  dropout_param { dropout_ratio: 1 }
}
# lint-prototxt: disable=NAN112
layer { name: "drop4" type: "Dropout" bottom: "x" top: "x" dropout_param { dropout_ratio: 1 } }
layer {  # lint-prototxt: disable=NAN112 the ratio is on purpose
  name: "drop5" type: "Dropout" bottom: "x" top: "x"
  dropout_param { dropout_ratio: 1 }
}
""",
    )
    _, out, err = run(capsys, "--json", "--select", "NAN112", net)
    assert [d["line"] for d in json.loads(out)] == [11]  # only drop3 is not silenced
    assert err == ""  # every code named is a rule's, and the words after them are a reason
    whole = write("file.prototxt", "# lint-prototxt: disable-file=all\n" + POLY_BAD)
    assert run(capsys, whole)[0] == 0


def test_a_disable_that_names_no_rule_is_a_note(capsys, write):
    """As ruff does for an unknown noqa code: it silences nothing, the user is told, the exit code stays."""
    net = write(
        "net.prototxt",
        'layer { name: "d" type: "Dropout" bottom: "x" top: "x"  # lint-prototxt: disable=NAN999,NAN3\n'
        "  dropout_param { dropout_ratio: 1 } }\n"
        "# lint-prototxt: disable=nan\n"
        'layer { name: "r" type: "ReLU" bottom: "x" top: "x" }\n',
    )
    code, out, err = run(capsys, "--no-schema", net)
    assert code == 1 and "NAN112" in out  # not silenced
    assert err.splitlines() == [
        f"note: {net}:1:57: unknown rule code or prefix '{bad}' in a lint-prototxt disable comment "
        "(see --list-rules): it silences nothing"
        for bad in ("NAN999", "NAN3")
    ] + [
        f"note: {net}:3:1: unknown rule code or prefix 'NAN' in a lint-prototxt disable comment "
        "(see --list-rules): it silences nothing"
    ]


def test_syntax_error_is_one_line_exit_2(capsys, write):
    bad = write("broken.prototxt", 'layer {\n  name: "x"\n')
    good = write("solver.prototxt", POLY_BAD)
    code, out, err = run(capsys, "--no-schema", bad, good)
    assert code == 2
    assert err == f"{bad}:3:1: expected '}}' closing the '{{' of line 1, found end of file\n"
    assert "NAN203" in out  # the other file is still linted


def test_missing_path_and_no_path(capsys, tmp_path):
    code, _, err = run(capsys, str(tmp_path / "nope.prototxt"))
    assert code == 2 and err.endswith(
        "nope.prototxt:1:1: expected a prototxt file or a directory, found no such path\n"
    )
    code, _, err = run(capsys)
    assert code == 2 and "expected at least one prototxt file" in err


def test_a_directory_without_prototxt_files_is_an_error(capsys, write, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no prototxt here")
    assert run(capsys, str(empty)) == (2, "", f"{empty}: no *.prototxt files found under this directory\n")
    good = write("ok.prototxt", 'base_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 10\n')
    code, out, err = run(capsys, "--no-schema", str(empty), good)
    assert code == 2 and out == "" and len(err.splitlines()) == 1  # the other path is still linted


@pytest.mark.parametrize("fmt", ["json", "github", "sarif"])
def test_files_not_linted_are_entries_in_the_machine_formats(capsys, write, tmp_path, monkeypatch, fmt):
    """A tool that reads only the output still sees a file that was not checked (NAN000, severity error)."""
    monkeypatch.chdir(tmp_path)
    write("broken.prototxt", 'layer {\n  name: "x"\n')
    write("solver.prototxt", POLY_BAD)
    code, out, err = run(capsys, "--format", fmt, "--no-schema", "broken.prototxt", "solver.prototxt", "nope")
    assert code == 2
    assert err.splitlines() == [
        "nope:1:1: expected a prototxt file or a directory, found no such path",
        "broken.prototxt:3:1: expected '}' closing the '{' of line 1, found end of file",
    ]
    if fmt == "json":
        entries = [(d["path"], d["line"], d["column"], d["code"], d["severity"]) for d in json.loads(out)]
        assert entries == [
            ("solver.prototxt", 1, 1, "NAN203", "error"),
            ("solver.prototxt", 2, 1, "NAN202", "error"),
            ("nope", 1, 1, "NAN000", "error"),
            ("broken.prototxt", 3, 1, "NAN000", "error"),
        ]
        assert json.loads(out)[3]["message"] == "expected '}' closing the '{' of line 1, found end of file"
    elif fmt == "github":
        assert out.splitlines()[-1] == (
            "::error file=broken.prototxt,line=3,col=1,title=NAN000::"
            "expected '}' closing the '{' of line 1, found end of file"
        )
    else:
        run_ = json.loads(out)["runs"][0]
        rules = run_["tool"]["driver"]["rules"]
        (result,) = [
            r for r in run_["results"] if r["locations"][0]["physicalLocation"]["region"]["startLine"] == 3
        ]
        assert result["ruleId"] == "NAN000" and rules[result["ruleIndex"]]["id"] == "NAN000"
        assert result["level"] == "error"
    assert run(capsys, "--format", fmt, "--no-schema", "solver.prototxt")[0] == 1  # none without errors


def test_directories_are_searched_recursively(capsys, write, tmp_path):
    write("a/b/solver.prototxt", POLY_BAD)
    write("a/notes.txt", "not a prototxt")
    data = json.loads(run(capsys, "--json", "--no-schema", str(tmp_path))[1])
    assert {d["path"].rsplit("/", 1)[-1] for d in data} == {"solver.prototxt"}


def test_solver_net_resolution_and_missing_net(capsys, write, tmp_path, monkeypatch):
    write("run/models/net.prototxt", 'layer { name: "d" type: "Dropout" dropout_param { dropout_ratio: 2 } }')
    solver = write("run/models/solver.prototxt", 'net: "models/net.prototxt"\n' + POLY_BAD + "max_iter: 10\n")
    monkeypatch.chdir(tmp_path / "run")
    _, out, err = run(capsys, "--json", "--no-schema", "models/solver.prototxt")
    assert [(d["path"], d["code"]) for d in json.loads(out)] == [("models/net.prototxt", "NAN112")]
    assert err == ""  # found in the working directory, where Caffe looks: nothing to say
    monkeypatch.chdir(tmp_path)
    _, out, err = run(capsys, "--json", "--no-schema", "run/models/solver.prototxt")
    assert [(d["path"], d["code"]) for d in json.loads(out)] == [("run/models/net.prototxt", "NAN112")]
    assert "found relative to run/" in err and "Caffe resolves it against the working directory" in err
    write("run/models/solver.prototxt", 'net: "nowhere.prototxt"\n' + POLY_BAD + "max_iter: 10\n")
    data = json.loads(run(capsys, "--json", "--no-schema", solver)[1])
    assert [(d["line"], d["column"], d["code"]) for d in data] == [(1, 6, "NAN210")]


def test_input_shape_option_turns_a_warning_into_an_error(capsys, write):
    net = write(
        "net.prototxt",
        'layer { name: "d" type: "HDF5Data" top: "data" }\n'
        'layer { name: "p" type: "Pooling" bottom: "data" top: "p"\n'
        "  pooling_param { pool: AVE kernel_size: 3 stride: 5 } }\n",
    )
    assert json.loads(run(capsys, "--json", net)[1])[0]["severity"] == "warning"
    data = json.loads(run(capsys, "--json", "--input-shape", "data=1,1,10,10", net)[1])
    assert data[0]["severity"] == "error" and "AVE pooling yields NaN" in data[0]["message"]
    assert run(capsys, "--input-shape", "1,a,3", net)[0] == 2


def test_explain_and_list_rules(capsys):
    code, out, _ = run(capsys, "--explain", "nan101")
    assert code == 0 and out.startswith("NAN101 pooling-empty-window (warning)") and "Fix:" in out
    assert run(capsys, "--explain", "NAN999")[0] == 2
    code, out, _ = run(capsys, "--explain", "nan000")
    assert code == 0 and out.startswith("NAN000 not-linted (error)") and "Fix:" in out
    code, out, _ = run(capsys, "--list-rules")
    assert code == 0 and len(out.splitlines()) == len(RULES) + 1 and out.startswith("NAN000  error")


def test_colour_only_when_asked_or_on_a_terminal(capsys, write):
    bad = write("solver.prototxt", POLY_BAD)
    assert "\033[31m" in run(capsys, "--color", "always", "--no-schema", bad)[1]


def test_caffe_nan_lint_dispatches_without_importing_caffe_or_numpy(write):
    bad = write("solver.prototxt", POLY_BAD)
    code = (
        "import sys\nfrom caffe_nanlayers.cli import main\nrc = main(['lint', sys.argv[1]])\n"
        "assert 'numpy' not in sys.modules and 'caffe' not in sys.modules, 'heavy import'\nsys.exit(rc)"
    )
    result = subprocess.run([sys.executable, "-c", code, bad], capture_output=True, text=True)
    assert result.returncode == 1, result.stderr
    assert "NAN203" in result.stdout


def test_docs_list_every_rule():
    section = (REPO / "docs" / "lint.md").read_text()
    rows = re.findall(r"^\| (NAN\d{3}) \| (\w+) \| (.+?) \|$", section, re.MULTILINE)
    # NAN000 (a file not linted) is not a rule, but the table lists it first, as --list-rules does.
    assert rows == [(NOT_LINTED.code, NOT_LINTED.severity, NOT_LINTED.summary)] + [
        (r.code, r.severity, r.summary) for r in RULES.values()
    ]


def test_the_rules_reference_is_generated_from_the_rules_docstrings():
    """docs/lint-rules.md is rendered from the rules themselves: regenerate it when a rule changes."""
    from caffe_nanlayers.lint.reference import reference

    page = (REPO / "docs" / "lint-rules.md").read_text()
    assert page == reference(), "run: python -m caffe_nanlayers.lint.reference > docs/lint-rules.md"
    for rule in (NOT_LINTED, *RULES.values()):
        assert f"\n## {rule.code} {rule.name} ({rule.severity})\n" in page


def test_pre_commit_hook_points_at_the_console_script():
    text = (REPO / ".pre-commit-hooks.yaml").read_text()
    assert "entry: lint-prototxt" in text and "id: lint-prototxt" in text


def test_ctrl_c_and_a_closed_stdout_end_the_run_as_in_every_command(tmp_path):
    """Ctrl-C is one line and exit 130; a reader that goes away (`| head`) is exit 141, no traceback."""
    net = tmp_path / "net.prototxt"
    net.write_text(
        "".join(f'layer {{ name: "l{i}" type: "ReLU" bottom: "x" top: "x" }}\n' for i in range(5000))
    )
    code = (
        "import sys, signal, caffe_nanlayers.lint.linter as linter\n"
        "def interrupted(*a, **k): raise KeyboardInterrupt\n"
        "linter.lint_paths = interrupted\n"
        "from caffe_nanlayers.commands.lint import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(net)], capture_output=True, text=True)
    assert (result.returncode, result.stdout, result.stderr) == (130, "", "lint-prototxt: interrupted\n")
    many = tmp_path / "many"
    many.mkdir()
    for i in range(300):  # enough findings to fill a pipe that nobody reads
        (many / f"s{i}.prototxt").write_text('base_lr: 0.01\nlr_policy: "poly"\n')
    reader = subprocess.Popen(
        [sys.executable, "-m", "caffe_nanlayers.commands.lint", "--no-schema", str(many)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    reader.stdout.close()  # the reader goes away before the first line
    err = reader.stderr.read().decode()
    assert reader.wait() == 141 and "Traceback" not in err
