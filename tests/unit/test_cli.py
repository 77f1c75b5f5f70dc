"""`trinity validate` and `trinity schema` as a user runs them: exit codes, the
`file:line:col: level: path: message` lines with their hints, and the --json shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main

ROOT = Path(__file__).resolve().parents[2]

VALID = """\
name: greeting
steps:
  - id: hello
    type: agent_task
    agent: demo-echo
    message: Hello
"""

INVALID = """\
name: broken
steps:
  - id: wait
    type: timer
  - id: tell
    type: notification
    chanel: slack
    message: done
    depends_on: wait
"""

WARNING_ONLY = """\
name: Not A Slug
steps:
  - id: hello
    type: agent_task
    agent: demo-echo
    message: Hello
"""


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name, text in {"valid": VALID, "invalid": INVALID, "warning": WARNING_ONLY}.items():
        out[name] = tmp_path / f"{name}.yaml"
        out[name].write_text(text)
    return out


def test_a_valid_file_exits_0_and_says_ok(files: dict[str, Path],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", str(files["valid"])])
    out, err = capsys.readouterr()
    assert code == 0
    assert out == f"{files['valid']}: ok\n"
    assert "1 file(s): 1 valid, 0 invalid; 0 error(s), 0 warning(s)" in err


def test_an_invalid_file_exits_1_with_one_located_line_and_hint_per_error(
        files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", str(files["invalid"])])
    out, err = capsys.readouterr()
    path = files["invalid"]
    assert code == 1
    assert out.splitlines() == [
        f"{path}:3:5: error: steps[0]: timer 'wait' needs a delay (like 10m) or an until time",
        "    hint: delay: 10m",
        f"{path}:5:5: error: steps[1]: a notification needs a channel",
        "    hint: channel: slack, email or webhook",
        f"{path}:7:5: error: steps[1].chanel: unknown key 'chanel' in a notification step",
        "    hint: did you mean 'channel'?",
    ]
    assert "0 valid, 1 invalid; 3 error(s), 0 warning(s)" in err


def test_warnings_alone_exit_0_and_quiet_hides_them(
        files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(files["warning"])]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith(f"{files['warning']}:1:1: warning: name: 'Not A Slug' is not a slug")
    assert "    hint: for example 'not-a-slug'" in out
    assert main(["validate", "--quiet", str(files["warning"])]) == 0
    out, _ = capsys.readouterr()
    assert out == ""


def test_a_missing_file_exits_2_and_says_it_cannot_be_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    code = main(["validate", str(missing)])
    out, _ = capsys.readouterr()
    assert code == 2
    assert out == f"{missing}: error: cannot read {missing}: No such file or directory\n"


def test_several_files_are_reported_in_order_and_the_worst_exit_code_wins(
        files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(files["valid"]), str(files["invalid"])]) == 1
    out, err = capsys.readouterr()
    assert out.index(f"{files['valid']}: ok") < out.index(str(files["invalid"]) + ":3:5")
    assert "2 file(s): 1 valid, 1 invalid; 3 error(s), 0 warning(s)" in err
    missing = tmp_path / "nope.yaml"
    assert main(["validate", str(files["invalid"]), str(missing), str(files["valid"])]) == 2


def test_json_output_lists_every_file_with_its_issues(
        files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    code = main(["validate", "--json", str(files["valid"]), str(files["invalid"]),
                 str(missing)])
    out, _ = capsys.readouterr()
    report = json.loads(out)
    assert code == 2
    valid, invalid, unreadable = report["files"]
    assert valid == {"file": str(files["valid"]), "valid": True, "name": "greeting",
                     "issues": []}
    assert (invalid["valid"], invalid["name"]) == (False, None)
    assert invalid["issues"][0] == {
        "level": "error", "code": "timer-without-time", "path": "steps[0]",
        "message": "timer 'wait' needs a delay (like 10m) or an until time",
        "hint": "delay: 10m", "line": 3, "column": 5,
    }
    assert [i["code"] for i in invalid["issues"]] == ["timer-without-time", "missing-field",
                                                      "unknown-key"]
    assert unreadable["valid"] is False
    assert [i["code"] for i in unreadable["issues"]] == ["unreadable"]


def test_json_output_of_a_valid_file_with_a_warning_is_still_valid(
        files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--json", str(files["warning"])]) == 0
    [entry] = json.loads(capsys.readouterr().out)["files"]
    assert entry["valid"] is True
    assert entry["name"] == "Not A Slug"
    assert [(i["level"], i["code"], i["line"]) for i in entry["issues"]] == \
        [("warning", "name-not-slug", 1)]


def test_a_yaml_syntax_error_is_reported_with_its_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "syntax.yaml"
    path.write_text("name: x\nsteps:\n  - id: a\n    type: [timer\n")
    assert main(["validate", str(path)]) == 1
    out, _ = capsys.readouterr()
    assert out.startswith(f"{path}:5:1: error: YAML syntax error")


def test_schema_prints_the_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "steps" in printed["properties"]


def test_the_installed_command_validates_files_in_a_real_process(
        files: dict[str, Path]) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "app.cli", "validate", str(files["valid"]),
         str(files["invalid"])],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 1, run.stderr
    assert f"{files['valid']}: ok" in run.stdout
    assert f"{files['invalid']}:7:5: error: steps[1].chanel:" in run.stdout
    assert "    hint: did you mean 'channel'?" in run.stdout
    assert "2 file(s): 1 valid, 1 invalid" in run.stderr
