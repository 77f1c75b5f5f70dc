"""The release-train example end to end on a fresh install: `trinity up`, then the CLI
starts it and decides its approval; its notification starts release-log by webhook."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.up import trinity_up

pytestmark = pytest.mark.integration


def test_release_train_runs_to_completion_with_its_approval_decided_from_the_cli(
        tmp_path: Path) -> None:
    with trinity_up(tmp_path) as up:
        started = up.json("start", "release-train", "--input", "version=1.2.0")

        def request() -> object:
            mine = up.json("approvals", "list", "--mine", "--as", "release-manager")
            return mine[0] if mine else None
        approval = up.until(request, 60, "the sign-off request")
        assert approval["title"] == "Release 1.2.0"
        assert "score" in approval["description"]  # read from the sub-process's outputs
        up.trinity("approvals", "decide", approval["id"], "--decision", "approved",
                   "--as", "release-manager")
        up.until(lambda: up.json("executions", "show", started["id"])["status"] == "completed",
                 60, "release-train to complete")
        train = up.json("executions", "show", started["id"])
        steps = {s["id"]: s for s in train["steps"]}
        assert steps["checks"]["child_id"] and steps["cool-down"]["status"] == "completed"
        assert train["outputs"]["approved_by"] == "release-manager"

        def logged() -> object:
            runs = up.json("executions", "list", "--process", "release-log")
            return runs if runs and runs[0]["status"] == "completed" else None
        [log_run] = up.until(logged, 60, "release-log, started by the announcement")
        shown = up.json("executions", "show", log_run["id"])
        assert shown["input"]["message"] == "Release 1.2.0 was approved by release-manager."
        assert shown["triggered_by"] == "webhook"
