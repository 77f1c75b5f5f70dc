"""Existing Trinity process files load and validate unchanged (PROCESS_FORMAT.md), and the two
that hold real mistakes report exactly those mistakes, where they are.

The corpus lives beside the repository in shared/compat/trinity/ (or TRINITY_COMPAT_DIR).
`*__template.yaml` files are template metadata (display name, category...), not definitions.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.definitions import ValidatedFile, validate_files
from engine.issues import Level

COMPAT_DIR = Path(os.environ.get("TRINITY_COMPAT_DIR") or
                  Path(__file__).resolve().parents[2].parent / "shared" / "compat" / "trinity")
MISSING = f"compat corpus not found at {COMPAT_DIR} (set TRINITY_COMPAT_DIR to its folder)"


def _definition_files() -> list[Path]:
    if not COMPAT_DIR.is_dir():
        return []
    return sorted(p for p in COMPAT_DIR.glob("*.yaml") if not p.name.endswith("__template.yaml"))


FILES = _definition_files()
NAMES = [p.name for p in FILES] or [pytest.param("", marks=pytest.mark.skip(reason=MISSING))]

# Every finding the corpus produces: (level, code, path, line), with a piece of the hint.
# Files not listed here must produce no finding at all, so any change of behaviour shows.
EXPECTED: dict[str, list[tuple[Level, str, str, int, str]]] = {
    # Writes steps.review.decision / steps.review.feedback for steps.review.output.<field>.
    # The engine reads that legacy shorthand (engine.expressions), so the validator warns
    # instead of rejecting an existing Trinity file.
    "approval-workflow.yaml": [
        (Level.WARNING, "output-shorthand", "steps[2].condition", 58,
         "steps.review.output.decision"),
        (Level.WARNING, "output-shorthand", "steps[3].message", 66,
         "steps.review.output.feedback"),
        (Level.WARNING, "output-shorthand", "steps[3].condition", 75,
         "steps.review.output.decision"),
    ],
    # A real mistake: the rejection step is called save-rejection-report.
    "vc-due-diligence__definition.yaml": [
        (Level.ERROR, "unknown-step", "steps[12].default_route", 362, "save-rejection-report"),
    ],
    # Webhook notifications that rely on the installation's default webhook URL.
    "client-onboarding__definition.yaml": [
        (Level.WARNING, "default-webhook", "steps[4]", 76, "webhook_url"),
    ],
    "weekly-brief__definition.yaml": [
        (Level.WARNING, "default-webhook", "steps[4]", 71, "webhook_url"),
    ],
    # sla-warning reads analyze-ticket's category and priority without waiting for it.
    "customer-support__definition.yaml": [
        (Level.WARNING, "maybe-not-run", "steps[6].message", 113, "analyze-ticket"),
        (Level.WARNING, "maybe-not-run", "steps[6].message", 113, "analyze-ticket"),
    ],
}


@pytest.fixture(scope="module")
def results() -> dict[str, ValidatedFile]:
    # All files together, as `trinity validate` would, so sub-process loops across files count.
    return {r.path.name: r for r in validate_files(FILES)}


@pytest.mark.parametrize("name", NAMES)
def test_each_existing_trinity_file_reports_exactly_its_known_findings(
        name: str, results: dict[str, ValidatedFile]) -> None:
    result = results[name]
    found = [(i.level, i.code, i.path, i.line) for i in result.issues]
    expected = EXPECTED.get(name, [])
    assert found == [e[:4] for e in expected], [i.format(name) for i in result.issues]
    for issue, (*_, hint_part) in zip(result.issues, expected, strict=True):
        assert issue.hint is not None and hint_part in issue.hint
        assert issue.column == 5
    assert not result.unreadable


@pytest.mark.parametrize("name", NAMES)
def test_each_existing_trinity_file_without_errors_becomes_a_definition(
        name: str, results: dict[str, ValidatedFile]) -> None:
    result = results[name]
    has_errors = any(e[0] is Level.ERROR for e in EXPECTED.get(name, []))
    assert (result.definition is None) == has_errors
    if result.definition is not None:
        assert result.definition.steps


@pytest.mark.skipif(not FILES, reason=MISSING)
def test_the_wrong_default_route_of_vc_due_diligence_is_explained(
        results: dict[str, ValidatedFile]) -> None:
    [issue] = results["vc-due-diligence__definition.yaml"].errors
    assert issue.message == ("gateway 'decision-gate' routes to 'send-rejection', which is not "
                             "a step of this process")
    assert issue.hint == "did you mean 'save-rejection-report'?"


@pytest.mark.skipif(not FILES, reason=MISSING)
def test_every_file_of_the_expected_table_is_in_the_corpus() -> None:
    assert set(EXPECTED) <= {p.name for p in FILES}


@pytest.mark.skipif(not FILES, reason=MISSING)
def test_template_files_named_with_a_placeholder_get_no_slug_warning(
        results: dict[str, ValidatedFile]) -> None:
    templated = [p for p in FILES if 'name: "{{name}}"' in p.read_text(encoding="utf-8")]
    assert templated, "the corpus should hold files named {{name}}"
    for path in templated:
        result = results[path.name]
        assert result.definition is not None
        assert result.definition.name == "{{name}}"
        assert not [i for i in result.issues if i.code == "name-not-slug"]
