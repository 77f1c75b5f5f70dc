"""What a user sees when a definition file has the wrong shape: unknown keys, aliases, YAML
mistakes, bad values, and the defaults and typed model a valid file turns into.

Everything goes through `app.definitions.validate_text`, the same path as `trinity validate`.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from textwrap import dedent

import pytest

from app.definitions import validate_text
from engine.definition import (
    AgentTask,
    Approval,
    Assignee,
    ErrorAction,
    Gateway,
    GatewayType,
    Notification,
    ProcessDefinition,
    StepType,
    SubProcess,
    Timer,
)
from engine.issues import Issue, Level
from engine.retry import Backoff


def validate(text: str) -> tuple[ProcessDefinition | None, list[Issue]]:
    return validate_text(dedent(text))


def the_issue(issues: list[Issue], code: str) -> Issue:
    found = [i for i in issues if i.code == code]
    assert len(found) == 1, f"expected one '{code}' issue, got {[i.format() for i in issues]}"
    return found[0]


def errors(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if i.is_error]


def valid(text: str) -> ProcessDefinition:
    definition, issues = validate(text)
    assert definition is not None, [i.format() for i in issues]
    assert not issues, [i.format() for i in issues]
    return definition


AGENT = """\
  - id: work
    type: agent_task
    agent: demo-writer
    message: Write it
"""


# --- unknown keys --------------------------------------------------------------------------


def test_a_misspelt_top_level_key_is_an_error_that_suggests_the_right_one() -> None:
    definition, issues = validate("""\
        name: demo
        descripton: What it does
        steps:
          - id: work
            type: agent_task
            agent: demo-writer
            message: Write it
        """)
    issue = the_issue(issues, "unknown-key")
    assert definition is None
    assert issue.level is Level.ERROR
    assert issue.path == "descripton"
    assert (issue.line, issue.column) == (2, 1)
    assert "unknown key 'descripton' in a process" in issue.message
    assert issue.hint == "did you mean 'description'?"


def test_a_misspelt_step_key_is_reported_at_its_own_line_with_a_suggestion() -> None:
    _, issues = validate("""\
        name: demo
        steps:
          - id: work
            type: agent_task
            agent: demo-writer
            message: Write it
            dependson: other
        """)
    issue = the_issue(issues, "unknown-key")
    assert issue.path == "steps[0].dependson"
    assert (issue.line, issue.column) == (7, 5)
    assert "in an agent_task step" in issue.message
    assert issue.hint == "did you mean 'depends_on'?"


@pytest.mark.parametrize(
    ("block", "path", "line", "suggestion"),
    [
        ("    retry:\n      max_atempts: 3\n", "steps[0].retry.max_atempts", 8,
         "max_attempts"),
        ("    on_error:\n      actoin: skip_step\n", "steps[0].on_error.actoin", 8, "action"),
        ("    roles:\n      executer: demo-writer\n", "steps[0].roles.executer", 8, "executor"),
    ],
)
def test_misspelt_keys_in_nested_blocks_are_errors_with_a_suggestion(
        block: str, path: str, line: int, suggestion: str) -> None:
    text = "name: demo\nsteps:\n" + AGENT + block
    _, issues = validate_text(text)
    issue = the_issue(issues, "unknown-key")
    assert issue.path == path
    assert (issue.line, issue.column) == (line, 7)
    assert issue.hint == f"did you mean '{suggestion}'?"


def test_a_misspelt_route_key_is_an_error_and_the_route_still_lacks_its_target() -> None:
    _, issues = validate("""\
        name: demo
        steps:
          - id: check
            type: agent_task
            agent: demo-analyst
            message: Score it
          - id: gate
            type: gateway
            depends_on: check
            routes:
              - condition: "true"
                taget: check
        """)
    typo = the_issue(issues, "unknown-key")
    assert typo.path == "steps[1].routes[0].taget"
    assert (typo.line, typo.column) == (12, 9)
    assert typo.hint == "did you mean 'target'?"
    missing = the_issue(issues, "missing-field")
    assert missing.path == "steps[1].routes[0].target"
    assert "'target' is required" in missing.message


def test_a_misspelt_trigger_key_is_an_error_with_a_suggestion() -> None:
    _, issues = validate("""\
        name: demo
        triggers:
          - type: schedule
            cron: daily
            timezon: Europe/Berlin
        steps:
          - id: work
            type: agent_task
            agent: demo-writer
            message: Write it
        """)
    issue = the_issue(issues, "unknown-key")
    assert issue.path == "triggers[0].timezon"
    assert (issue.line, issue.column) == (5, 5)
    assert "in a schedule trigger" in issue.message
    assert issue.hint == "did you mean 'timezone'?"


def test_an_unknown_key_with_no_near_miss_lists_the_known_keys() -> None:
    _, issues = validate("""\
        name: demo
        steps:
          - id: work
            type: agent_task
            agent: demo-writer
            message: Write it
            retry:
              zzz: 1
        """)
    issue = the_issue(issues, "unknown-key")
    assert issue.hint is not None
    assert issue.hint.startswith("known keys: max_attempts, initial_delay, backoff")


def test_a_key_of_another_step_type_says_which_type_it_belongs_to() -> None:
    _, issues = validate("""\
        name: demo
        steps:
          - id: work
            type: agent_task
            agent: demo-writer
            message: Write it
            routes:
              - target: work
        """)
    issue = the_issue(issues, "unknown-key")
    assert issue.path == "steps[0].routes"
    assert issue.line == 7
    assert issue.hint is not None
    assert "'routes' belongs to gateway steps" in issue.hint


def test_a_key_that_several_step_types_know_names_all_of_them() -> None:
    _, issues = validate("""\
        name: demo
        steps:
          - id: wait
            type: timer
            delay: 5m
            message: hello
        """)
    issue = the_issue(issues, "unknown-key")
    assert issue.hint == "'message' belongs to agent_task and notification steps"


def test_x_keys_and_output_key_are_kept_as_step_metadata_without_any_issue() -> None:
    definition = valid("""\
        name: demo
        x-owner-note: reviewed by legal
        steps:
          - id: wait
            type: timer
            delay: 5m
            output_key: waited
            x-designer: {x: 10, y: 20}
        """)
    assert definition.metadata == {"x-owner-note": "reviewed by legal"}
    assert definition.step("wait").metadata == {"output_key": "waited",
                                                "x-designer": {"x": 10, "y": 20}}


def test_output_key_of_an_agent_task_is_known_under_that_name() -> None:
    definition = valid("name: demo\nsteps:\n" + AGENT + "    output_key: draft\n")
    spec = definition.step("work").spec
    assert isinstance(spec, AgentTask)
    assert spec.output_key == "draft"


def test_an_unknown_step_type_is_an_error_suggesting_the_right_type() -> None:
    _, issues = validate("""\
        name: demo
        steps:
          - id: work
            type: agent_tsk
            agent: demo-writer
            message: Write it
        """)
    issue = the_issue(issues, "bad-choice")
    assert issue.path == "steps[0].type"
    assert issue.line == 4
    assert "not 'agent_tsk'" in issue.message
    assert issue.hint == "did you mean 'agent_task'?"
    assert len(errors(issues)) == 1  # its agent and message are not reported as unknown


# --- aliases -------------------------------------------------------------------------------


def test_the_old_names_of_fields_are_read_as_the_new_ones() -> None:
    definition = valid("""\
        name: demo
        steps:
          - id: wait
            type: timer
            duration: 5m
          - id: wait-more
            type: timer
            wait_duration: 90s
          - id: review
            type: human_approval
            timeout_action: skip
            depends_on: [wait, wait-more]
          - id: tell
            type: notification
            channel: webhook
            template: "Decision: {{ steps.review.output.decision }}"
            url: https://hooks.example.org/ops
            depends_on: review
            retry:
              delay: 10s
          - id: child
            type: sub_process
            process: vendor-check
            depends_on: tell
        outputs:
          - name: decision
            value: "{{ steps.review.output.decision }}"
        """)
    wait, wait_more = definition.step("wait").spec, definition.step("wait-more").spec
    assert isinstance(wait, Timer) and wait.delay == timedelta(minutes=5)
    assert isinstance(wait_more, Timer) and wait_more.delay == timedelta(seconds=90)
    review = definition.step("review").spec
    assert isinstance(review, Approval) and review.on_timeout == "skip"
    tell = definition.step("tell")
    assert isinstance(tell.spec, Notification)
    assert tell.spec.message == "Decision: {{ steps.review.output.decision }}"
    assert tell.spec.webhook_url == "https://hooks.example.org/ops"
    assert tell.retry.initial_delay == timedelta(seconds=10)
    child = definition.step("child").spec
    assert isinstance(child, SubProcess) and child.process_name == "vendor-check"
    assert definition.outputs[0].source == "{{ steps.review.output.decision }}"


@pytest.mark.parametrize(
    ("step", "alias", "canonical"),
    [
        ("type: timer\n    delay: 5m\n    duration: 6m", "duration", "delay"),
        ("type: timer\n    delay: 5m\n    wait_duration: 6m", "wait_duration", "delay"),
        ("type: human_approval\n    on_timeout: skip\n    timeout_action: reject",
         "timeout_action", "on_timeout"),
        ("type: sub_process\n    process_name: a\n    process: b", "process", "process_name"),
        ("type: notification\n    channel: slack\n    message: a\n    template: b", "template",
         "message"),
        ("type: notification\n    channel: slack\n    message: a\n    webhook_url: a\n"
         "    url: b", "url", "webhook_url"),
        ("type: timer\n    delay: 5m\n    retry:\n      initial_delay: 1s\n      delay: 2s",
         "delay", "initial_delay"),
    ],
)
def test_giving_a_field_and_its_alias_together_is_an_error(step: str, alias: str,
                                                           canonical: str) -> None:
    text = f"name: demo\nsteps:\n  - id: s\n    {step}\n"
    _, issues = validate_text(text)
    issue = the_issue(issues, "duplicate-alias")
    assert issue.level is Level.ERROR
    assert issue.path.endswith(f".{alias}")
    written_last = max(n for n, line in enumerate(text.splitlines(), 1)
                       if line.strip().startswith(f"{alias}:"))
    assert issue.line == written_last
    assert f"'{alias}' and '{canonical}' mean the same thing" in issue.message
    assert issue.hint == f"keep only '{canonical}'"


def test_an_output_with_both_value_and_source_is_an_error() -> None:
    _, issues = validate("""\
        name: demo
        steps:
          - id: wait
            type: timer
            delay: 1s
        outputs:
          - name: a
            source: x
            value: y
        """)
    issue = the_issue(issues, "duplicate-alias")
    assert issue.path == "outputs[0].value"
    assert issue.line == 9


def test_an_error_on_an_aliased_field_points_at_the_line_where_the_alias_is_written() -> None:
    _, issues = validate("""\
        name: demo
        steps:
          - id: review
            type: human_approval
            assignees: [alice]
            timeout_action: escalate
        """)
    issue = the_issue(issues, "missing-field")
    assert issue.path == "steps[0].on_timeout"
    assert (issue.line, issue.column) == (6, 5)
    assert "escalate needs escalate_to" in issue.message


# --- YAML ----------------------------------------------------------------------------------


def test_a_key_written_twice_is_an_error_at_the_second_occurrence() -> None:
    definition, issues = validate("""\
        name: demo
        steps:
          - id: work
            type: agent_task
            agent: demo-writer
            message: Write it
            agent: demo-analyst
        """)
    issue = the_issue(issues, "duplicate-key")
    assert definition is None
    assert issue.path == "steps[0].agent"
    assert (issue.line, issue.column) == (7, 5)
    assert "first on line 5" in issue.message
    assert issue.hint == "remove or rename one of them"


def test_a_yaml_syntax_error_says_where_it_is() -> None:
    definition, issues = validate("""\
        name: demo
        steps:
          - id: work
            type: agent_task
            agent: "demo-writer
            message: Write it
        """)
    assert definition is None
    issue = the_issue(issues, "yaml-syntax")
    assert issue.level is Level.ERROR
    assert issue.message.startswith("YAML syntax error")
    assert issue.line is not None and issue.line >= 5
    assert issue.hint == "check the indentation and quoting here"


@pytest.mark.parametrize("text", ["", "\n\n", "# just a comment\n"])
def test_an_empty_document_is_an_error_telling_how_to_start(text: str) -> None:
    definition, issues = validate_text(text)
    issue = the_issue(issues, "not-a-mapping")
    assert definition is None
    assert issue.path == ""
    assert "not empty" in issue.message
    assert issue.hint == "start with 'name:' and 'steps:'"


def test_a_list_instead_of_a_mapping_is_an_error() -> None:
    _, issues = validate_text("- id: a\n- id: b\n")
    assert "not list" in the_issue(issues, "not-a-mapping").message


@pytest.mark.parametrize("steps", ["steps: []", "steps:"])
def test_a_process_without_steps_is_an_error(steps: str) -> None:
    _, issues = validate_text(f"name: demo\n{steps}\n")
    issue = the_issue(issues, "empty-process")
    assert issue.path == "steps"
    assert issue.line == 2
    assert issue.hint == "add a step under 'steps:'"


def test_a_missing_name_and_missing_steps_are_both_reported() -> None:
    _, issues = validate_text("description: nothing yet\n")
    assert sorted(i.path for i in errors(issues)) == ["name", "steps"]
    assert all(i.code == "missing-field" for i in errors(issues))


def test_a_step_that_is_not_a_mapping_does_not_shift_the_paths_of_the_next_steps() -> None:
    _, issues = validate("""\
        name: demo
        steps:
          - just text
          - id: wait
            type: timer
        """)
    bad = the_issue(issues, "bad-type")
    assert bad.path == "steps[0]"
    timer = the_issue(issues, "timer-without-time")
    assert timer.path == "steps[1]"
    assert timer.line == 4


# --- values --------------------------------------------------------------------------------


@pytest.mark.parametrize("step_id", ["Review", "1st", "a b", "review!"])
def test_a_step_id_outside_the_pattern_is_an_error_with_a_suggestion(step_id: str) -> None:
    _, issues = validate_text(f"name: demo\nsteps:\n  - id: '{step_id}'\n    type: timer\n"
                              "    delay: 1s\n")
    issue = the_issue(issues, "bad-step-id")
    assert issue.path == "steps[0].id"
    assert (issue.line, issue.column) == (3, 5)
    assert f"step id '{step_id}'" in issue.message
    assert issue.hint is not None and issue.hint.startswith("for example '")


def test_a_step_id_of_65_characters_is_too_long_but_64_is_fine() -> None:
    longest = "a" * 64
    valid(f"name: demo\nsteps:\n  - id: {longest}\n    type: timer\n    delay: 1s\n")
    _, issues = validate_text(f"name: demo\nsteps:\n  - id: {longest}b\n    type: timer\n"
                              "    delay: 1s\n")
    issue = the_issue(issues, "bad-step-id")
    assert "at most 64" in issue.message
    assert issue.hint == f"for example '{longest}'"


@pytest.mark.parametrize(
    ("field", "value", "code", "fragment"),
    [
        ("timeout", "5 minuets", "bad-duration", "is not a duration"),
        ("timeout", "-5m", "bad-duration", "negative"),
        ("timeout", "soon", "bad-duration", "is not a duration"),
        ("max_cost", "lots", "bad-money", "is not an amount of money"),
        ("temperature", "3", "out-of-range", "at most 2"),
        ("temperature", "hot", "bad-type", "must be a number"),
        ("model", "[a, b]", "bad-type", "must be text"),
    ],
)
def test_a_bad_value_in_an_agent_task_is_an_error_at_its_line(field: str, value: str, code: str,
                                                             fragment: str) -> None:
    _, issues = validate_text("name: demo\nsteps:\n" + AGENT + f"    {field}: {value}\n")
    issue = the_issue(issues, code)
    assert issue.path == f"steps[0].{field}"
    assert (issue.line, issue.column) == (7, 5)
    assert fragment in issue.message


@pytest.mark.parametrize("cron", ["61 * * * *", "* * *", "every day", "0 9 * * MON-XYZ"])
def test_a_bad_cron_is_an_error_that_lists_the_presets(cron: str) -> None:
    _, issues = validate_text(f"name: demo\ntriggers:\n  - type: schedule\n    cron: '{cron}'\n"
                              "steps:\n" + AGENT)
    issue = the_issue(issues, "bad-cron")
    assert issue.path == "triggers[0].cron"
    assert (issue.line, issue.column) == (4, 5)
    assert issue.hint is not None
    assert "hourly, daily, weekly, monthly, weekdays" in issue.hint


@pytest.mark.parametrize("cron", ["hourly", "daily", "weekly", "monthly", "weekdays",
                                  "*/15 8-18 * * 1-5"])
def test_cron_presets_and_five_field_expressions_are_accepted(cron: str) -> None:
    definition = valid(f"name: demo\ntriggers:\n  - type: schedule\n    cron: '{cron}'\n"
                       "steps:\n" + AGENT)
    assert definition.triggers[0].cron == cron


def test_an_unknown_timezone_is_an_error() -> None:
    _, issues = validate("""\
        name: demo
        triggers:
          - type: schedule
            cron: daily
            timezone: Mars/Olympus
        steps:
          - id: wait
            type: timer
            until: "2030-01-01T09:00:00"
            timezone: Europe/Atlantis
        """)
    found = [i for i in issues if i.code == "bad-timezone"]
    assert [(i.path, i.line) for i in found] == [("triggers[0].timezone", 5),
                                                 ("steps[0].timezone", 10)]
    assert "unknown timezone 'Mars/Olympus'" in found[0].message


@pytest.mark.parametrize("amount", ["'$5.00'", "5", "0.25", "'5 USD'"])
def test_a_budget_in_dollars_is_read_as_a_decimal(amount: str) -> None:
    definition = valid(f"name: demo\nconfig:\n  budget:\n    max_cost: {amount}\nsteps:\n" + AGENT)
    assert isinstance(definition.config.max_cost, Decimal)
    assert definition.config.max_cost > 0


def test_a_budget_that_is_not_money_is_an_error() -> None:
    _, issues = validate_text("name: demo\nconfig:\n  budget:\n    max_cost: five dollars\n"
                              "steps:\n" + AGENT)
    issue = the_issue(issues, "bad-money")
    assert issue.path == "config.budget.max_cost"
    assert (issue.line, issue.column) == (4, 5)
    assert "'five dollars' is not an amount of money" in issue.message


@pytest.mark.parametrize(("written", "read"), [("1", "1"), ("'1'", "1"), ("'1.2'", "1.2"),
                                               ("2.0", "2.0")])
def test_versions_are_read_as_major_minor_text(written: str, read: str) -> None:
    assert valid(f"name: demo\nversion: {written}\nsteps:\n" + AGENT).version == read


@pytest.mark.parametrize("version", ["'1.2.3'", "v1", "true", "'latest'"])
def test_a_version_that_is_not_major_minor_is_an_error(version: str) -> None:
    _, issues = validate_text(f"name: demo\nversion: {version}\nsteps:\n" + AGENT)
    issue = the_issue(issues, "bad-version")
    assert issue.path == "version"
    assert (issue.line, issue.column) == (2, 1)
    assert 'like 1, "1" or "1.2"' in issue.message


@pytest.mark.parametrize(
    ("line", "path", "suggestion"),
    [
        ("data_classification: confidental", "data_classification", "confidential"),
        ("config:\n  priority: hihg", "config.priority", "high"),
    ],
)
def test_a_misspelt_choice_is_an_error_with_a_suggestion(line: str, path: str,
                                                         suggestion: str) -> None:
    _, issues = validate_text(f"name: demo\n{line}\nsteps:\n" + AGENT)
    issue = the_issue(issues, "bad-choice")
    assert issue.path == path
    assert issue.hint == f"did you mean '{suggestion}'?"


@pytest.mark.parametrize(
    ("field", "value", "suggestion"),
    [("on_timeout", "auto-approve", "auto_approve"), ("on_error", "skip-step", "skip_step")],
)
def test_a_misspelt_action_is_an_error_with_a_suggestion(field: str, value: str,
                                                         suggestion: str) -> None:
    _, issues = validate_text(f"name: demo\nsteps:\n  - id: review\n    type: human_approval\n"
                              f"    {field}: {value}\n")
    issue = the_issue(issues, "bad-choice")
    assert issue.line == 5
    assert f"not '{value}'" in issue.message
    assert issue.hint == f"did you mean '{suggestion}'?"


def test_a_process_name_that_is_not_a_slug_is_only_a_warning() -> None:
    definition, issues = validate_text("name: Invoice Approval\nsteps:\n" + AGENT)
    issue = the_issue(issues, "name-not-slug")
    assert definition is not None
    assert definition.name == "Invoice Approval"
    assert issue.level is Level.WARNING
    assert (issue.path, issue.line) == ("name", 1)
    assert issue.hint == "for example 'invoice-approval'"


def test_a_name_placeholder_of_a_template_is_not_a_slug_warning() -> None:
    valid('name: "{{name}}"\nsteps:\n' + AGENT)


def test_an_input_default_of_the_wrong_type_or_outside_its_enum_is_an_error() -> None:
    _, issues = validate("""\
        name: demo
        input:
          count: {type: integer, default: many}
          tone: {type: string, enum: [formal, casual], default: rude}
        steps:
          - id: wait
            type: timer
            delay: 1s
        """)
    found = sorted((i.path, i.line) for i in issues if i.code == "bad-default")
    assert found == [("input.count.default", 3), ("input.tone.default", 4)]


# --- defaults and the typed model ----------------------------------------------------------


def test_steps_get_the_documented_timeouts_and_attempts_when_none_are_given() -> None:
    definition = valid("""\
        name: demo
        steps:
          - id: write
            type: agent_task
            agent: demo-writer
            message: Write it
          - id: review
            type: human_approval
            depends_on: write
          - id: child
            type: sub_process
            process_name: other
            depends_on: review
          - id: tell
            type: notification
            channel: slack
            message: done
            depends_on: child
          - id: wait
            type: timer
            delay: 1h
            depends_on: tell
          - id: gate
            type: gateway
            depends_on: wait
            default_route: end
          - id: end
            type: timer
            delay: 1s
            depends_on: gate
        """)
    timeouts = {s.id: s.timeout for s in definition.steps}
    assert timeouts == {"write": timedelta(minutes=5), "review": timedelta(hours=24),
                        "child": timedelta(hours=1), "tell": None, "wait": None, "gate": None,
                        "end": None}
    attempts = {s.id: s.retry.max_attempts for s in definition.steps}
    assert attempts == {"write": 3, "review": 1, "child": 1, "tell": 3, "wait": 1, "gate": 1,
                        "end": 1}
    write = definition.step("write")
    assert write.retry.initial_delay == timedelta(seconds=5)
    assert write.retry.backoff is Backoff.EXPONENTIAL
    assert write.retry.max_delay == timedelta(minutes=5)
    assert write.on_error.action is ErrorAction.FAIL_PROCESS
    assert write.name == "write"
    review = definition.step("review").spec
    assert isinstance(review, Approval)
    assert (review.on_timeout, review.required_approvals, review.allow_comments) == \
        ("reject", 1, True)
    assert definition.version == "1"
    assert definition.data_classification == "internal"
    assert definition.config.priority == "normal"


def test_the_default_retry_of_the_config_applies_to_steps_without_their_own() -> None:
    definition = valid("""\
        name: demo
        config:
          default_retry:
            max_attempts: 5
            initial_delay: 2s
            backoff: linear
        steps:
          - id: write
            type: agent_task
            agent: demo-writer
            message: Write it
          - id: tell
            type: notification
            channel: slack
            message: done
            depends_on: write
            retry:
              max_attempts: 2
        """)
    write, tell = definition.step("write").retry, definition.step("tell").retry
    assert (write.max_attempts, write.initial_delay, write.backoff) == \
        (5, timedelta(seconds=2), Backoff.LINEAR)
    assert (tell.max_attempts, tell.initial_delay, tell.backoff) == \
        (2, timedelta(seconds=5), Backoff.EXPONENTIAL)


def test_a_default_retry_without_max_attempts_keeps_each_type_s_default() -> None:
    definition = valid("""\
        name: demo
        config:
          default_retry: {initial_delay: 1s}
        steps:
          - id: write
            type: agent_task
            agent: demo-writer
            message: Write it
          - id: wait
            type: timer
            delay: 1s
            depends_on: write
        """)
    assert definition.step("write").retry.max_attempts == 3
    assert definition.step("wait").retry.max_attempts == 1
    assert definition.step("wait").retry.initial_delay == timedelta(seconds=1)


def test_a_valid_file_becomes_a_typed_definition_with_its_graph() -> None:
    definition = valid("""\
        name: vendor-onboarding
        steps:
          - id: collect
            type: agent_task
            agent: demo-analyst
            message: Collect documents
          - id: screen
            type: agent_task
            agent: demo-analyst
            message: Screen the vendor
          - id: route
            type: gateway
            depends_on: [collect, screen]
            routes:
              - condition: steps.screen.output.risk == 'high'
                target: approve
            default_route: welcome
          - id: approve
            type: human_approval
            depends_on: route
            assignees:
              - alice@example.org
              - team:procurement
              - {team: legal, role: counsel}
            escalate_to: [team:cfo-office]
            on_timeout: escalate
          - id: welcome
            type: notification
            channel: email
            recipients: [vendor@example.org]
            message: Welcome
            depends_on: [route, approve]
        """)
    assert definition.entry_steps == ("collect", "screen")
    assert definition.dependents == {"collect": ("route",), "screen": ("route",),
                                     "route": ("approve", "welcome"), "approve": ("welcome",),
                                     "welcome": ()}
    route = definition.step("route")
    assert route.type is StepType.GATEWAY
    assert isinstance(route.spec, Gateway)
    assert route.spec.gateway_type is GatewayType.EXCLUSIVE
    assert route.spec.targets == ("approve", "welcome")
    approve = definition.step("approve").spec
    assert isinstance(approve, Approval)
    assert approve.assignees == (Assignee(user="alice@example.org"),
                                 Assignee(team="procurement"),
                                 Assignee(team="legal", role="counsel"))
    assert approve.escalate_to == (Assignee(team="cfo-office"),)
    assert [str(a) for a in approve.assignees] == ["alice@example.org", "team:procurement",
                                                   "team:legal (counsel)"]
    assert definition.ancestors("welcome") == {"collect", "screen", "route", "approve"}


def test_an_assignee_that_is_neither_text_nor_team_and_role_is_an_error() -> None:
    _, issues = validate("""\
        name: demo
        steps:
          - id: review
            type: human_approval
            assignees:
              - 42
              - {role: counsel}
              - {team: legal, rank: 3}
        """)
    found = sorted((i.code, i.path) for i in errors(issues))
    assert found == [("bad-assignee", "steps[0].assignees[0]"),
                     ("bad-assignee", "steps[0].assignees[1]"),
                     ("unknown-key", "steps[0].assignees[2].rank")]


def test_a_control_character_is_a_syntax_issue_with_its_line() -> None:
    from app.yamlio import parse_yaml
    parsed = parse_yaml("name: x\ndescription: bad \x07 bell\n")
    assert parsed.data is None
    [issue] = parsed.issues
    assert (issue.code, issue.line, issue.column) == ("yaml-syntax", 2, 18)
    assert "#x0007" in issue.message
