"""What a user sees when a definition is well-formed but does not make sense: ids, the
dependency graph, gateways, per-type rules, loops, sub-processes and expression references.

Everything goes through `app.definitions.validate_text` / `validate_files`, the same path as
`trinity validate`. Structural problems (keys, aliases, values) are in test_structure.py.
"""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from app.definitions import validate_files, validate_text
from engine.definition import ProcessDefinition
from engine.issues import Issue, Level


def validate(text: str) -> tuple[ProcessDefinition | None, list[Issue]]:
    return validate_text(dedent(text))


def the_issue(issues: list[Issue], code: str) -> Issue:
    found = [i for i in issues if i.code == code]
    assert len(found) == 1, f"expected one '{code}' issue, got {[i.format() for i in issues]}"
    return found[0]


def errors(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if i.is_error]


def warnings(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if not i.is_error]


def agent(step_id: str, depends_on: str = "", message: str = "Do it", extra: str = "") -> str:
    """One agent_task step as YAML lines (indented for a `steps:` list)."""
    lines = [f"  - id: {step_id}", "    type: agent_task", "    agent: demo-writer",
             f"    message: {message}"]
    if depends_on:
        lines.append(f"    depends_on: {depends_on}")
    return "\n".join(lines) + "\n" + extra


# --- ids -----------------------------------------------------------------------------------


def test_a_step_id_used_twice_is_an_error_at_the_second_step() -> None:
    definition, issues = validate_text("name: demo\nsteps:\n" + agent("draft") + agent("draft"))
    issue = the_issue(issues, "duplicate-step-id")
    assert definition is None
    assert issue.path == "steps[1].id"
    assert (issue.line, issue.column) == (7, 5)
    assert "step id 'draft' is used twice (first at steps[0])" in issue.message
    assert issue.hint == "give every step its own id"


def test_the_mistakes_of_a_step_with_a_duplicate_id_are_reported_at_that_step() -> None:
    _, issues = validate("""\
        name: demo
        steps:
          - id: wait
            type: timer
            delay: 1s
          - id: wait
            type: timer
            depends_on: ghost
        """)
    timer = the_issue(issues, "timer-without-time")
    assert (timer.path, timer.line) == ("steps[1]", 6)
    unknown = the_issue(issues, "unknown-step")
    assert (unknown.path, unknown.line) == ("steps[1].depends_on[0]", 8)


# --- the dependency graph ------------------------------------------------------------------


def test_depending_on_a_step_that_does_not_exist_is_an_error_with_a_suggestion() -> None:
    _, issues = validate_text("name: demo\nsteps:\n" + agent("research")
                              + agent("write", depends_on="[reserch]"))
    issue = the_issue(issues, "unknown-step")
    assert issue.path == "steps[1].depends_on[0]"
    assert (issue.line, issue.column) == (11, 18)
    assert "step 'write' depends on 'reserch', which is not a step of this process" \
        in issue.message
    assert issue.hint == "did you mean 'research'?"


def test_depending_on_an_unrelated_name_lists_the_steps_of_the_process() -> None:
    _, issues = validate_text("name: demo\nsteps:\n" + agent("research")
                              + agent("write", depends_on="zzz"))
    issue = the_issue(issues, "unknown-step")
    assert issue.hint == "steps of this process: research, write"


def test_a_step_that_depends_on_itself_is_an_error() -> None:
    _, issues = validate_text("name: demo\nsteps:\n" + agent("write", depends_on="[write]"))
    issue = the_issue(issues, "self-dependency")
    assert issue.path == "steps[0].depends_on[0]"
    assert issue.line == 7
    assert issue.message == "step 'write' depends on itself"
    assert issue.hint == "remove it from depends_on"


def test_a_dependency_cycle_is_an_error_showing_the_whole_loop() -> None:
    _, issues = validate_text("name: demo\nsteps:\n" + agent("start")
                              + agent("a", depends_on="[start, c]")
                              + agent("b", depends_on="a")
                              + agent("c", depends_on="b"))
    issue = the_issue(issues, "cycle")
    assert issue.path == "steps[1].depends_on"
    assert (issue.line, issue.column) == (11, 5)
    assert "the dependencies form a cycle: a → b → c → a" in issue.message
    assert issue.hint is not None and "goto_step" in issue.hint


def test_a_process_whose_every_step_waits_for_another_cannot_start() -> None:
    _, issues = validate_text("name: demo\nsteps:\n" + agent("a", depends_on="b")
                              + agent("b", depends_on="a"))
    assert {i.code for i in errors(issues)} == {"cycle", "no-entry-step"}
    assert "nothing can start" in the_issue(issues, "no-entry-step").message


def test_a_step_that_only_follows_a_cycle_is_reported_as_unreachable() -> None:
    _, issues = validate_text("name: demo\nsteps:\n" + agent("start")
                              + agent("a", depends_on="b")
                              + agent("b", depends_on="a")
                              + agent("after", depends_on="b"))
    issue = the_issue(issues, "unreachable")
    assert issue.path == "steps[3]"
    assert "step 'after' can never run" in issue.message


# --- gateways ------------------------------------------------------------------------------


GATEWAY_PROCESS = """\
name: demo
steps:
  - id: score
    type: agent_task
    agent: demo-analyst
    message: Score it
  - id: gate
    type: gateway
    depends_on: score
    routes:
      - condition: steps.score.output.value >= 80
        target: {target}
    default_route: {default}
  - id: publish
    type: agent_task
    agent: demo-writer
    message: Publish
    depends_on: gate
  - id: rework
    type: agent_task
    agent: demo-writer
    message: Rework
    depends_on: {rework_after}
"""


def gateway_process(target: str = "publish", default: str = "rework",
                    rework_after: str = "gate") -> str:
    return GATEWAY_PROCESS.format(target=target, default=default, rework_after=rework_after)


def test_a_well_formed_gateway_is_valid() -> None:
    definition, issues = validate_text(gateway_process())
    assert definition is not None
    assert issues == []


def test_a_route_to_a_step_that_does_not_exist_is_an_error_with_a_suggestion() -> None:
    _, issues = validate_text(gateway_process(target="publsh"))
    issue = the_issue(issues, "unknown-step")
    assert issue.path == "steps[1].routes[0].target"
    assert (issue.line, issue.column) == (12, 9)
    assert "gateway 'gate' routes to 'publsh', which is not a step of this process" \
        in issue.message
    assert issue.hint == "did you mean 'publish'?"


def test_a_default_route_to_a_step_that_does_not_exist_is_an_error() -> None:
    _, issues = validate_text(gateway_process(default="nowhere"))
    issue = the_issue(issues, "unknown-step")
    assert issue.path == "steps[1].default_route"
    assert (issue.line, issue.column) == (13, 5)
    assert issue.hint == "steps of this process: gate, publish, rework, score"


def test_a_route_to_a_step_that_does_not_follow_the_gateway_is_an_error() -> None:
    _, issues = validate_text(gateway_process(rework_after="score"))
    issue = the_issue(issues, "target-not-downstream")
    assert issue.path == "steps[1].default_route"
    assert issue.line == 13
    assert "gateway 'gate' routes to 'rework', which does not come after it" in issue.message
    assert issue.hint == "add 'gate' to the depends_on of 'rework'"


def test_a_route_back_to_an_earlier_step_is_an_error_that_points_to_explicit_loops() -> None:
    _, issues = validate_text(gateway_process(target="score"))
    issue = the_issue(issues, "target-not-downstream")
    assert issue.path == "steps[1].routes[0].target"
    assert issue.hint is not None
    assert "on_error goto_step" in issue.hint
    assert "depends_on" not in issue.hint  # following that advice would make a cycle


def test_a_route_to_a_step_that_only_indirectly_follows_the_gateway_is_a_warning() -> None:
    _, issues = validate_text(gateway_process(default="rework", rework_after="publish"))
    issue = the_issue(issues, "indirect-target")
    assert issue.level is Level.WARNING
    assert issue.path == "steps[1].default_route"
    assert "'rework' does not depend on gateway 'gate' directly" in issue.message
    assert issue.hint == "add 'gate' to its depends_on"
    assert errors(issues) == []


def test_conditions_and_a_default_route_on_a_parallel_gateway_are_warnings() -> None:
    text = gateway_process().replace("    depends_on: score\n",
                                     "    depends_on: score\n    gateway_type: parallel\n")
    definition, issues = validate_text(text)
    assert definition is not None
    found = sorted((i.path, i.line) for i in issues if i.code == "ignored-field")
    assert found == [("steps[1].default_route", 14), ("steps[1].routes[0].condition", 12)]
    assert all(i.level is Level.WARNING for i in issues)
    condition = next(i for i in issues if i.path.endswith("condition"))
    assert condition.hint is not None and "inclusive" in condition.hint


def test_a_gateway_with_no_routes_and_no_default_is_an_error() -> None:
    _, issues = validate_text("name: demo\nsteps:\n" + agent("a")
                              + "  - id: gate\n    type: gateway\n    depends_on: a\n")
    issue = the_issue(issues, "gateway-without-routes")
    assert issue.path == "steps[1]"
    assert (issue.line, issue.column) == (7, 5)
    assert issue.message == "gateway 'gate' has no routes and no default_route"
    assert issue.hint == "add routes: [{condition, target}]"


# --- timers, notifications, approvals ------------------------------------------------------


def test_a_timer_without_delay_or_until_is_an_error() -> None:
    _, issues = validate_text("name: demo\nsteps:\n  - id: pause\n    type: timer\n")
    issue = the_issue(issues, "timer-without-time")
    assert (issue.path, issue.line) == ("steps[0]", 3)
    assert "timer 'pause' needs a delay" in issue.message
    assert issue.hint == "delay: 10m"


def test_a_timer_with_both_delay_and_until_is_an_error() -> None:
    _, issues = validate("""\
        name: demo
        steps:
          - id: pause
            type: timer
            delay: 1h
            until: "2030-01-01T09:00:00"
        """)
    issue = the_issue(issues, "timer-conflict")
    assert issue.path == "steps[0]"
    assert issue.message == "timer 'pause' has both delay and until"
    assert issue.hint == "keep one of them"


def test_a_timer_until_that_is_neither_a_date_nor_a_template_is_an_error() -> None:
    _, issues = validate("""\
        name: demo
        steps:
          - id: pause
            type: timer
            until: next tuesday
        """)
    issue = the_issue(issues, "bad-datetime")
    assert (issue.path, issue.line) == ("steps[0].until", 5)
    assert issue.hint is not None and "{{ input.deadline }}" in issue.hint


def test_a_timer_until_may_be_a_template() -> None:
    definition, issues = validate("""\
        name: demo
        input:
          deadline: {type: string}
        steps:
          - id: pause
            type: timer
            until: "{{ input.deadline }}"
            timezone: Europe/Berlin
        """)
    assert definition is not None, issues
    assert issues == []


def test_a_timeout_on_a_timer_is_a_warning_because_timers_wait_durably() -> None:
    _, issues = validate_text("name: demo\nsteps:\n  - id: pause\n    type: timer\n"
                              "    delay: 1d\n    timeout: 5m\n")
    issue = the_issue(issues, "ignored-field")
    assert issue.level is Level.WARNING
    assert (issue.path, issue.line) == ("steps[0].timeout", 6)


def test_a_notification_without_a_channel_is_an_error() -> None:
    _, issues = validate_text("name: demo\nsteps:\n  - id: tell\n    type: notification\n"
                              "    message: Done\n")
    issue = the_issue(issues, "missing-field")
    assert (issue.path, issue.line) == ("steps[0]", 3)
    assert issue.message == "a notification needs a channel"
    assert issue.hint == "channel: slack, email or webhook"


def test_an_email_notification_without_recipients_is_an_error() -> None:
    _, issues = validate_text("name: demo\nsteps:\n  - id: tell\n    type: notification\n"
                              "    channels: [slack, email]\n    message: Done\n")
    issue = the_issue(issues, "missing-field")
    assert issue.path == "steps[0]"
    assert issue.message == "the email channel needs recipients"
    assert issue.hint == "recipients: [ops@example.org]"


def test_an_unknown_channel_in_a_channel_list_is_an_error_with_a_suggestion() -> None:
    _, issues = validate_text("name: demo\nsteps:\n  - id: tell\n    type: notification\n"
                              "    channels: [slack, emial]\n    message: Done\n")
    issue = the_issue(issues, "bad-choice")
    assert issue.path == "steps[0].channels[1]"
    assert issue.hint == "did you mean 'email'?"


def test_a_webhook_notification_without_url_warns_that_the_default_webhook_is_used() -> None:
    definition, issues = validate_text("name: demo\nsteps:\n  - id: tell\n"
                                       "    type: notification\n    channel: webhook\n"
                                       "    message: Done\n")
    issue = the_issue(issues, "default-webhook")
    assert definition is not None
    assert issue.level is Level.WARNING
    assert "TRINITY_WEBHOOK_URL" in issue.message


def test_escalating_an_approval_without_escalate_to_is_an_error() -> None:
    _, issues = validate("""\
        name: demo
        steps:
          - id: review
            type: human_approval
            on_timeout: escalate
        """)
    issue = the_issue(issues, "missing-field")
    assert (issue.path, issue.line) == ("steps[0].on_timeout", 5)
    assert issue.message == "on_timeout: escalate needs escalate_to"
    assert issue.hint == "escalate_to: [team:managers]"


def test_requiring_more_approvals_than_people_assigned_is_an_error() -> None:
    _, issues = validate("""\
        name: demo
        steps:
          - id: review
            type: human_approval
            assignees: [alice, bob@example.org]
            required_approvals: 3
        """)
    issue = the_issue(issues, "impossible-approval")
    assert (issue.path, issue.line) == ("steps[0].required_approvals", 6)
    assert issue.message == "3 approvals are required but only 2 people are assigned"


def test_a_team_among_the_assignees_can_supply_any_number_of_approvals() -> None:
    definition, issues = validate("""\
        name: demo
        steps:
          - id: review
            type: human_approval
            assignees: [alice, team:finance]
            required_approvals: 3
        """)
    assert definition is not None
    assert issues == []


# --- explicit loops ------------------------------------------------------------------------


def test_on_error_goto_step_without_a_target_is_an_error() -> None:
    _, issues = validate_text("name: demo\nsteps:\n"
                              + agent("write", extra="    on_error: goto_step\n"))
    issue = the_issue(issues, "missing-field")
    assert (issue.path, issue.line) == ("steps[0].on_error", 7)
    assert issue.message == "on_error goto_step needs a target_step"


def test_on_error_goto_step_to_a_later_step_is_an_error() -> None:
    text = ("name: demo\nsteps:\n"
            + agent("write", extra="    on_error: {action: goto_step, target_step: publish}\n")
            + agent("publish", depends_on="write"))
    _, issues = validate_text(text)
    issue = the_issue(issues, "bad-back-jump")
    assert issue.path == "steps[0].on_error.target_step"
    assert issue.line == 7
    assert "'write' jumps back to 'publish', which does not come before it" in issue.message
    assert issue.hint == "a loop goes back to a step that this one depends on"


def test_on_error_goto_step_to_an_earlier_step_is_valid() -> None:
    text = ("name: demo\nsteps:\n" + agent("write")
            + agent("check", depends_on="write",
                    extra="    on_error:\n      action: goto_step\n      target_step: write\n"
                          "      max_visits: 2\n"))
    definition, issues = validate_text(text)
    assert definition is not None, issues
    assert definition.step("check").on_error.max_visits == 2


def test_a_target_step_without_goto_step_is_a_warning() -> None:
    text = ("name: demo\nsteps:\n" + agent("write")
            + agent("check", depends_on="write",
                    extra="    on_error: {action: skip_step, target_step: write}\n"))
    _, issues = validate_text(text)
    issue = the_issue(issues, "ignored-field")
    assert issue.level is Level.WARNING
    assert issue.path == "steps[1].on_error.target_step"


def test_on_changes_requested_going_to_a_later_step_is_an_error() -> None:
    _, issues = validate("""\
        name: demo
        steps:
          - id: review
            type: human_approval
            on_changes_requested: {goto: publish}
          - id: publish
            type: agent_task
            agent: demo-writer
            message: Publish
            depends_on: review
        """)
    issue = the_issue(issues, "bad-back-jump")
    assert issue.path == "steps[0].on_changes_requested.goto"
    assert issue.line == 5
    assert "'review' jumps back to 'publish'" in issue.message


def test_on_changes_requested_going_to_an_unknown_step_is_an_error_with_a_suggestion() -> None:
    _, issues = validate_text("name: demo\nsteps:\n" + agent("draft")
                              + "  - id: review\n    type: human_approval\n"
                                "    depends_on: draft\n"
                                "    on_changes_requested: {goto: draf}\n")
    issue = the_issue(issues, "unknown-step")
    assert issue.path == "steps[1].on_changes_requested.goto"
    assert issue.hint == "did you mean 'draft'?"


def test_a_step_re_run_by_a_change_request_may_read_the_reviewer_s_comment() -> None:
    definition, issues = validate("""\
        name: demo
        steps:
          - id: draft
            type: agent_task
            agent: demo-writer
            message: "Write it. Reviewer's notes, if any: {{ steps.review.output.comment }}"
          - id: review
            type: human_approval
            depends_on: draft
            on_changes_requested: {goto: draft, max_visits: 4}
          - id: publish
            type: agent_task
            agent: demo-writer
            message: "{{ steps.draft.output }}"
            depends_on: review
        """)
    assert definition is not None, [i.format() for i in issues]
    assert issues == []


def test_without_the_loop_the_same_comment_reference_is_an_error() -> None:
    _, issues = validate("""\
        name: demo
        steps:
          - id: draft
            type: agent_task
            agent: demo-writer
            message: "Write it. Reviewer's notes, if any: {{ steps.review.output.comment }}"
          - id: review
            type: human_approval
            depends_on: draft
        """)
    issue = the_issue(issues, "not-before")
    assert issue.path == "steps[0].message"
    assert issue.line == 6
    assert issue.hint == "'review' runs after 'draft'; read it in a later step"


# --- sub-processes -------------------------------------------------------------------------


def test_a_process_that_starts_itself_is_an_error() -> None:
    _, issues = validate("""\
        name: escalation
        steps:
          - id: again
            type: sub_process
            process: escalation
        """)
    issue = the_issue(issues, "recursive-sub-process")
    assert issue.path == "steps[0].process_name"
    assert (issue.line, issue.column) == (5, 5)
    assert "escalation → escalation" in issue.message
    assert issue.hint == "a process may not start itself, directly or through others"


def test_processes_that_start_each_other_across_files_are_errors_in_every_file(
        tmp_path: Path) -> None:
    files = {
        "parent.yaml": "name: parent\nsteps:\n  - id: call\n    type: sub_process\n"
                       "    process_name: child\n",
        "child.yaml": "name: child\nsteps:\n  - id: call\n    type: sub_process\n"
                      "    process: grandchild\n",
        "grandchild.yaml": "name: grandchild\nsteps:\n  - id: back\n    type: sub_process\n"
                           "    process_name: parent\n",
        "other.yaml": "name: other\nsteps:\n  - id: call\n    type: sub_process\n"
                      "    process_name: parent\n",
    }
    paths = []
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        paths.append(tmp_path / name)
    results = {r.path.name: r for r in validate_files(paths)}
    parent = the_issue(results["parent.yaml"].issues, "recursive-sub-process")
    assert "parent → child → grandchild → parent" in parent.message
    assert (parent.path, parent.line) == ("steps[0].process_name", 5)
    child = the_issue(results["child.yaml"].issues, "recursive-sub-process")
    assert "child → grandchild → parent → child" in child.message
    assert the_issue(results["grandchild.yaml"].issues, "recursive-sub-process")
    assert results["other.yaml"].issues == []  # starts the loop but is not part of it


def test_files_validated_alone_cannot_see_a_loop_through_other_files(tmp_path: Path) -> None:
    path = tmp_path / "parent.yaml"
    path.write_text("name: parent\nsteps:\n  - id: call\n    type: sub_process\n"
                    "    process_name: child\n")
    [result] = validate_files([path])
    assert result.issues == []


# --- expressions ---------------------------------------------------------------------------


def test_a_broken_placeholder_in_a_template_is_an_error_with_its_column() -> None:
    _, issues = validate_text("name: demo\nsteps:\n"
                              + agent("write", message="'Hello {{ input.name. }}'"))
    issue = the_issue(issues, "bad-expression")
    assert issue.path == "steps[0].message"
    assert issue.line == 6
    assert "at column 22" in issue.message
    assert issue.hint == "placeholders look like {{ steps.<id>.output.<field> }}"


def test_a_broken_condition_is_an_error_with_its_column() -> None:
    _, issues = validate_text("name: demo\nsteps:\n"
                              + agent("write", extra="    condition: input.score >> 5\n"))
    issue = the_issue(issues, "bad-expression")
    assert (issue.path, issue.line) == ("steps[0].condition", 7)
    assert "at column 14" in issue.message
    assert issue.hint == "a condition looks like steps.check.output.score >= 80"


def test_a_broken_placeholder_in_a_multi_line_message_says_which_line_of_the_text() -> None:
    _, issues = validate_text("name: demo\nsteps:\n"
                              + agent("write", message="|\n      Hello\n      {{ input.x ) }}"))
    issue = the_issue(issues, "bad-expression")
    assert "line 2, column" in issue.message


# --- references ----------------------------------------------------------------------------


def test_a_reference_to_a_step_that_does_not_exist_is_an_error() -> None:
    _, issues = validate_text("name: demo\nsteps:\n" + agent("research")
                              + agent("write", depends_on="research",
                                      message="'{{ steps.reserch.output }}'"))
    issue = the_issue(issues, "unknown-step")
    assert (issue.path, issue.line) == ("steps[1].message", 10)
    assert "steps.reserch.output refers to step 'reserch', which does not exist" \
        in issue.message
    assert issue.hint == "did you mean 'research'?"


def test_a_reference_to_a_step_that_comes_later_is_an_error() -> None:
    _, issues = validate_text("name: demo\nsteps:\n"
                              + agent("write", message="'{{ steps.publish.output }}'")
                              + agent("publish", depends_on="write"))
    issue = the_issue(issues, "not-before")
    assert issue.level is Level.ERROR
    assert (issue.path, issue.line) == ("steps[0].message", 6)
    assert "refers to step 'publish', which cannot have run before 'write'" in issue.message


def test_a_template_reading_a_parallel_step_is_a_warning_because_it_may_be_empty() -> None:
    definition, issues = validate_text("name: demo\nsteps:\n" + agent("research")
                                       + agent("write", message="'{{ steps.research.output }}'"))
    issue = the_issue(issues, "maybe-not-run")
    assert definition is not None
    assert issue.level is Level.WARNING
    assert issue.path == "steps[1].message"
    assert "runs in parallel with 'write'" in issue.message
    assert issue.hint == "add 'research' to the depends_on of 'write' to wait for it"


def test_a_condition_reading_a_parallel_step_is_an_error() -> None:
    _, issues = validate_text("name: demo\nsteps:\n" + agent("research")
                              + agent("write", extra="    condition: "
                                      "steps.research.output.ok == true\n"))
    issue = the_issue(issues, "not-before")
    assert issue.level is Level.ERROR
    assert (issue.path, issue.line) == ("steps[1].condition", 11)
    assert issue.hint == "add 'research' to the depends_on of 'write'"


def test_a_step_reading_its_own_output_is_an_error() -> None:
    _, issues = validate_text("name: demo\nsteps:\n"
                              + agent("write", message="'{{ steps.write.output }}'"))
    issue = the_issue(issues, "self-reference")
    assert issue.path == "steps[0].message"


def test_an_output_reading_an_unknown_step_is_an_error() -> None:
    _, issues = validate_text("name: demo\nsteps:\n" + agent("write")
                              + "outputs:\n  - name: text\n"
                                "    source: \"{{ steps.wrte.output || 'none' }}\"\n")
    issue = the_issue(issues, "unknown-step")
    assert (issue.path, issue.line) == ("outputs[0].source", 9)
    assert issue.hint == "did you mean 'write'?"


def test_an_undeclared_input_is_an_error_when_inputs_are_declared() -> None:
    _, issues = validate_text("name: demo\ninput:\n  topic: {type: string}\nsteps:\n"
                              + agent("write", message="'About {{ input.topik }}'"))
    issue = the_issue(issues, "unknown-input")
    assert (issue.path, issue.line) == ("steps[0].message", 8)
    assert "input.topik refers to input 'topik', which is not declared under input" \
        in issue.message
    assert issue.hint == "did you mean 'topic'?"


def test_any_input_may_be_read_when_no_inputs_are_declared() -> None:
    definition, issues = validate_text(
        "name: demo\nsteps:\n"
        + agent("write", message="'About {{ input.anything }}'",
                extra="    condition: input.flag == true\n"))
    assert definition is not None
    assert issues == []


def test_a_step_reference_without_output_is_an_error_that_shows_the_right_form() -> None:
    _, issues = validate_text("name: demo\nsteps:\n" + agent("research")
                              + agent("write", depends_on="research",
                                      message="'{{ steps.research }}'"))
    issue = the_issue(issues, "bad-reference")
    assert issue.level is Level.ERROR
    assert issue.path == "steps[1].message"
    assert issue.hint == "write steps.research.output"


def test_a_step_field_without_output_is_read_as_the_legacy_shorthand_with_a_warning() -> None:
    # Older Trinity files write steps.x.decision for steps.x.output.decision; the engine reads
    # them that way (engine.expressions), so the validator warns instead of rejecting them.
    definition, issues = validate_text("name: demo\nsteps:\n" + agent("research")
                                       + agent("write", depends_on="research",
                                               message="'{{ steps.research.summary }}'"))
    issue = the_issue(issues, "output-shorthand")
    assert definition is not None
    assert issue.level is Level.WARNING
    assert issue.path == "steps[1].message"
    assert "read as steps.research.output.summary" in issue.message
    assert issue.hint == "write steps.research.output.summary"


@pytest.mark.parametrize(
    ("reference", "code"),
    [("execution.id", None), ("execution.started_at", None), ("process.name", None),
     ("process.version", None), ("execution.whatever", "bad-reference"),
     ("process.owner", "bad-reference"), ("secrets.token", "unknown-name")],
)
def test_execution_and_process_references_are_checked(reference: str, code: str | None) -> None:
    _, issues = validate_text("name: demo\nsteps:\n"
                              + agent("write", message=f"'{{{{ {reference} }}}}'"))
    assert [i.code for i in issues] == ([code] if code else [])


@pytest.mark.parametrize(
    ("step", "code"),
    [
        ("type: timer\n    delay: forever", "bad-duration"),
        ("type: timer\n    until: someday", "bad-datetime"),
        ("type: notification\n    channel: sms\n    message: hi", "bad-choice"),
        ("type: notification\n    channels: {a: 1}\n    message: hi", "bad-type"),
        ("type: notification\n    channel: slack\n    message: [a]", "bad-type"),
        ("type: notification\n    channel: email\n    message: hi\n    recipients: {a: 1}",
         "bad-type"),
        ("type: human_approval\n    on_timeout: escalate\n    escalate_to: 42", "bad-type"),
        ("type: gateway\n    routes: go left", "bad-type"),
        ("type: timer\n    delay: 1s\n    on_error: {action: goto_step, target_step: [a]}",
         "bad-type"),
        ("type: timer\n    delay: 1s\n    compensation: {type: notification, channel: sms,"
         " message: x}", "bad-choice"),
        ("type: timer\n    delay: 1s\n    compensation: {type: agent_task, agent: [a],"
         " message: [x]}", "bad-type"),
    ],
)
def test_one_bad_value_gives_one_error_not_a_second_one_saying_it_is_missing(
        step: str, code: str) -> None:
    _, issues = validate_text(f"name: demo\nsteps:\n  - id: s\n    {step}\n")
    assert {i.code for i in errors(issues)} == {code}, [i.format() for i in issues]


# --- all at once ---------------------------------------------------------------------------


def test_every_mistake_of_a_document_is_reported_at_once() -> None:
    definition, issues = validate("""\
        name: demo
        steps:
          - id: write
            type: agent_task
            agent: demo-writer
            mesage: Write it
            timeout: forever
          - id: review
            type: human_approval
            depends_on: wirte
            on_timeout: escalate
          - id: pause
            type: timer
            depends_on: review
        """)
    assert definition is None
    found = sorted((i.line, i.code) for i in errors(issues))
    assert found == [
        (3, "missing-field"),       # message is required (the typo does not count)
        (6, "unknown-key"),         # mesage
        (7, "bad-duration"),        # forever
        (10, "unknown-step"),       # wirte
        (11, "missing-field"),      # escalate without escalate_to
        (12, "timer-without-time"),
    ]
    assert warnings(issues) == []


def test_five_different_mistakes_give_five_errors_in_line_order() -> None:
    _, issues = validate("""\
        name: demo
        version: one
        steps:
          - id: Write
            type: agent_task
            agent: demo-writer
            message: "{{ steps.nobody.output }}"
          - id: tell
            type: notification
            channel: sms
            message: done
            depends_on: Write
          - id: gate
            type: gateway
            depends_on: tell
        """)
    assert [(i.line, i.code) for i in issues] == [
        (2, "bad-version"),
        (4, "bad-step-id"),
        (7, "unknown-step"),
        (10, "bad-choice"),
        (13, "gateway-without-routes"),
    ]
