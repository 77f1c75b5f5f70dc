"""What callers of engine.expressions observe: conditions, templates, references, replies."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import expr_parser
from engine.expressions import (
    ExpressionError,
    Reference,
    RenderResult,
    check_condition,
    check_template,
    condition_references,
    evaluate,
    evaluate_condition,
    parse_agent_reply,
    render_template,
    render_value,
    template_references,
    to_text,
    truthy,
)

COMPAT_DIR = Path("/work/shared/compat/trinity")

CONTEXT: dict[str, Any] = {
    "input": {
        "score": "85",
        "amount": 12.5,
        "category": "urgent",
        "flag": True,
        "empty": "",
        "zero": 0,
        "items": [1, 2, 3],
        "tags": ["red", "green"],
        "data": {"key": "value", "two words": 2, "0": "zero-key"},
        "price": Decimal("19.99"),
        "name": "Ada",
        "in": "keyword-named",
    },
    "steps": {
        "route-decision": {
            "output": {"route": "high-path", "score": 85},
            "status": "completed",
            "error": None,
        },
        "analyze-data": {
            "output": {"quality_score": 72, "insights": ["a", "b"], "nested": {"deep": {"v": 1}}},
            "status": "completed",
            "error": None,
        },
        "review": {"output": {"decision": "approved", "status": "from-output"}, "status": "done"},
        "writer": {"output": "plain text reply", "status": "completed", "error": None},
        "agent": {
            "output": {"response": "the raw reply", "score": 90},
            "status": "completed",
            "error": None,
        },
        "ticket": {
            "output": {"needs_escalation": "True", "priority": "urgent"},
            "status": "completed",
        },
        "broken": {"output": None, "status": "failed", "error": {"code": "AGENT_TIMEOUT"}},
    },
    "execution": {"id": "exec-123", "started_at": "2024-05-01T10:00:00Z"},
    "process": {"name": "demo", "version": "1.2"},
}


def error_of(check: Any, text: str) -> ExpressionError:
    with pytest.raises(ExpressionError) as caught:
        check(text)
    return caught.value


# --- comparisons ----------------------------------------------------------------------


def test_numeric_string_compares_as_number() -> None:
    assert evaluate_condition("input.score >= 80", CONTEXT)
    assert not evaluate_condition("input.score < 80", CONTEXT)


def test_numeric_string_equals_the_same_number() -> None:
    assert evaluate_condition("input.score == 85", CONTEXT)
    assert evaluate_condition("85.0 == input.score", CONTEXT)


def test_two_numeric_strings_are_ordered_as_numbers() -> None:
    assert evaluate_condition("'9' < '10'", CONTEXT)


def test_two_strings_are_equal_only_when_identical() -> None:
    assert not evaluate_condition("'1.0' == '1'", CONTEXT)
    assert not evaluate_condition("'Approved' == 'approved'", CONTEXT)
    assert evaluate_condition("'approved' == 'approved'", CONTEXT)


def test_non_numeric_strings_are_ordered_alphabetically() -> None:
    assert evaluate_condition("'apple' < 'banana'", CONTEXT)
    assert evaluate_condition("'b' >= 'a'", CONTEXT)


@pytest.mark.parametrize("text", ["'true' == true", "'TRUE' == true", "' False ' == false"])
def test_string_compares_to_boolean_case_insensitively(text: str) -> None:
    assert evaluate_condition(text, CONTEXT)


def test_string_that_is_not_a_boolean_word_differs_from_booleans() -> None:
    assert not evaluate_condition("'yes' == true", CONTEXT)
    assert not evaluate_condition("'1' == true", CONTEXT)


def test_booleans_are_not_numbers() -> None:
    assert not evaluate_condition("true == 1", CONTEXT)
    assert not evaluate_condition("input.flag > 0", CONTEXT)


def test_decimal_values_compare_with_numbers_and_numeric_strings() -> None:
    assert evaluate_condition("input.price > 19", CONTEXT)
    assert evaluate_condition("input.price == 19.99", CONTEXT)
    assert evaluate_condition("input.price == '19.99'", CONTEXT)
    assert evaluate_condition("input.price < 20", CONTEXT)


def test_float_literal_equals_the_decimal_it_is_written_as() -> None:
    assert evaluate_condition("x == 0.1", {"x": Decimal("0.1")})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("85 == 85", True),
        ("85 != 85", False),
        ("85 != 86", True),
        ("85 > 80", True),
        ("80 > 80", False),
        ("80 >= 80", True),
        ("79 >= 80", False),
        ("79 < 80", True),
        ("80 < 80", False),
        ("80 <= 80", True),
        ("81 <= 80", False),
    ],
)
def test_each_comparison_operator(text: str, expected: bool) -> None:
    assert evaluate_condition(text, CONTEXT) is expected


@pytest.mark.parametrize("operator", [">", ">=", "<", "<="])
def test_ordering_with_a_missing_value_is_false_never_an_error(operator: str) -> None:
    assert not evaluate_condition(f"input.missing {operator} 1", CONTEXT)
    assert not evaluate_condition(f"1 {operator} input.missing", CONTEXT)
    assert not evaluate_condition(f"null {operator} null", CONTEXT)


@pytest.mark.parametrize(
    "text", ["input.data > 1", "input.items < 'a'", "input.name > 3", "input.data <= input.items"]
)
def test_ordering_incomparable_values_is_false(text: str) -> None:
    assert not evaluate_condition(text, CONTEXT)


def test_missing_value_equals_null() -> None:
    assert evaluate_condition("input.missing == null", CONTEXT)
    assert evaluate_condition("null == None", CONTEXT)
    assert not evaluate_condition("input.name == null", CONTEXT)
    assert evaluate_condition("input.missing != 'x'", CONTEXT)
    assert not evaluate_condition("input.empty == null", CONTEXT)


def test_dicts_and_lists_compare_by_value() -> None:
    assert evaluate_condition(
        "input.items == steps.x.output", {**CONTEXT, "steps": {"x": {"output": [1, 2, 3]}}}
    )


# --- boolean operators ----------------------------------------------------------------


def test_and_or_not_combine_conditions() -> None:
    assert evaluate_condition("input.score > 80 and input.category == 'urgent'", CONTEXT)
    assert not evaluate_condition("input.score > 90 and input.category == 'urgent'", CONTEXT)
    assert evaluate_condition("input.score > 90 or input.category == 'urgent'", CONTEXT)
    assert evaluate_condition("not input.score > 90", CONTEXT)


def test_and_binds_tighter_than_or() -> None:
    assert evaluate_condition("true or false and false", CONTEXT)
    assert not evaluate_condition("(true or false) and false", CONTEXT)


def test_not_applies_to_the_whole_comparison() -> None:
    assert evaluate("not input.category == 'normal'", CONTEXT) is True


def test_double_not_gives_the_truthiness_as_a_boolean() -> None:
    assert evaluate("not not input.name", CONTEXT) is True
    assert evaluate("not not not input.name", CONTEXT) is False


def test_boolean_operators_return_booleans() -> None:
    assert evaluate("input.name and input.category", CONTEXT) is True
    assert evaluate("input.missing or input.empty", CONTEXT) is False


def test_parentheses_group() -> None:
    assert evaluate_condition("not (input.flag and input.missing)", CONTEXT)


# --- in, contains, || -----------------------------------------------------------------


def test_in_finds_an_element_of_a_list_by_value() -> None:
    assert evaluate_condition("2 in input.items", CONTEXT)
    assert evaluate_condition("'2' in input.items", CONTEXT)
    assert not evaluate_condition("5 in input.items", CONTEXT)


def test_in_finds_a_substring() -> None:
    assert evaluate_condition("'urg' in input.category", CONTEXT)
    assert not evaluate_condition("'xyz' in input.category", CONTEXT)


def test_in_finds_a_key_of_a_mapping() -> None:
    assert evaluate_condition("'key' in input.data", CONTEXT)
    assert evaluate_condition("0 in input.data", CONTEXT)
    assert not evaluate_condition("'value' in input.data", CONTEXT)


def test_in_with_a_missing_container_or_item_is_false() -> None:
    assert not evaluate_condition("'a' in input.missing", CONTEXT)
    assert not evaluate_condition("input.missing in input.items", CONTEXT)
    assert not evaluate_condition("1 in input.zero", CONTEXT)


def test_not_in_negates_membership() -> None:
    assert evaluate_condition("'blue' not in input.tags", CONTEXT)
    assert not evaluate_condition("'red' not in input.tags", CONTEXT)


def test_contains_is_in_with_the_operands_reversed() -> None:
    assert evaluate_condition("input.tags contains 'green'", CONTEXT)
    assert evaluate_condition("input.category contains 'gen'", CONTEXT)
    assert not evaluate_condition("input.tags contains 'blue'", CONTEXT)


def test_double_bar_returns_the_first_non_empty_value() -> None:
    assert evaluate("input.missing || input.empty || 'fallback'", CONTEXT) == "fallback"
    assert evaluate("input.name || 'fallback'", CONTEXT) == "Ada"


@pytest.mark.parametrize("empty", ["null", "''", "steps.x.output.list", "steps.x.output.dict"])
def test_double_bar_skips_null_empty_text_and_empty_containers(empty: str) -> None:
    context: dict[str, Any] = {"steps": {"x": {"output": {"list": [], "dict": {}}}}}
    assert evaluate(f"{empty} || 'next'", context) == "next"


def test_double_bar_keeps_zero_and_false() -> None:
    assert evaluate("input.zero || 5", CONTEXT) == 0
    assert evaluate("false || 5", CONTEXT) is False


def test_double_bar_returns_the_last_operand_when_all_are_empty() -> None:
    assert evaluate("input.missing || input.empty", CONTEXT) == ""
    assert evaluate("input.empty || input.missing", CONTEXT) is None


def test_double_bar_binds_tighter_than_comparison() -> None:
    assert evaluate_condition("input.missing || 'auto' == 'auto'", CONTEXT)


# --- filters --------------------------------------------------------------------------


def test_default_replaces_null_and_empty_text() -> None:
    assert evaluate("input.missing | default('x')", CONTEXT) == "x"
    assert evaluate("input.empty | default('x')", CONTEXT) == "x"
    assert evaluate("input.name | default('x')", CONTEXT) == "Ada"


def test_default_keeps_zero_false_and_empty_lists() -> None:
    assert evaluate("input.zero | default(5)", CONTEXT) == 0
    assert evaluate("false | default(true)", CONTEXT) is False
    assert evaluate("steps.x.output | default(1)", {"steps": {"x": {"output": []}}}) == []


def test_default_argument_can_be_any_expression() -> None:
    assert evaluate("input.missing | default(input.name || 'n/a')", CONTEXT) == "Ada"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("input.items | length", 3),
        ("input.name | length", 3),
        ("input.data | length", 3),
        ("input.missing | length", 0),
        ("input.zero | length", 1),
        ("input.flag | length", 4),
    ],
)
def test_length_counts_items_characters_or_keys(text: str, expected: int) -> None:
    assert evaluate(text, CONTEXT) == expected


def test_lower_and_upper_change_case() -> None:
    assert evaluate("input.name | lower", CONTEXT) == "ada"
    assert evaluate("input.name | upper", CONTEXT) == "ADA"
    assert evaluate("input.flag | upper", CONTEXT) == "TRUE"


def test_lower_and_upper_keep_a_missing_value_missing() -> None:
    assert evaluate("input.missing | lower", CONTEXT) is None
    assert evaluate("input.missing | upper", CONTEXT) is None


def test_json_filter_writes_json() -> None:
    assert evaluate("input.items | json", CONTEXT) == "[1, 2, 3]"
    assert evaluate("input.name | json", CONTEXT) == '"Ada"'
    assert evaluate("input.missing | json", CONTEXT) == "null"
    assert evaluate("input.price | json", CONTEXT) == "19.99"
    assert evaluate("x | json", {"x": {"ü": "é"}}) == '{"ü": "é"}'


def test_filters_chain_left_to_right() -> None:
    assert evaluate("input.missing | default('ABC') | lower | length", CONTEXT) == 3


def test_filters_bind_tighter_than_comparison() -> None:
    assert evaluate_condition("input.missing | default('x') == 'x'", CONTEXT)
    assert evaluate_condition("input.category | upper == 'URGENT'", CONTEXT)
    assert evaluate_condition("input.items | length >= 3", CONTEXT)


@pytest.mark.parametrize("name", sorted(expr_parser.FILTER_ARITY))
def test_every_filter_the_parser_accepts_can_be_evaluated(name: str) -> None:
    args = "('x')" if expr_parser.FILTER_ARITY[name] else ""
    assert evaluate(f"input.name | {name}{args}", CONTEXT) is not None


def test_filter_may_be_written_with_empty_parentheses() -> None:
    assert evaluate("input.items | length()", CONTEXT) == 3


def test_unknown_filter_is_reported_with_the_known_ones() -> None:
    error = error_of(check_condition, "input.items | lenght > 2")
    assert error.message == (
        "unknown filter 'lenght' at column 15; filters are default, length, lower, upper, json"
    )
    assert error.position == 14


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("x | default", "filter 'default' takes one argument"),
        ("x | default('a', 'b')", "filter 'default' takes one argument"),
        ("x | lower('a')", "filter 'lower' takes no arguments"),
        ("x | 'lower'", "expected a filter name after '|'"),
    ],
)
def test_filter_misuse_is_an_error(text: str, reason: str) -> None:
    assert reason in error_of(check_condition, text).message


# --- literals -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("'single'", "single"),
        ('"double"', "double"),
        (r"'it\'s'", "it's"),
        (r'"say \"hi\""', 'say "hi"'),
        (r"'a\nb'", "a\nb"),
        (r"'back\\slash'", "back\\slash"),
        (r"'keep\d'", "keep\\d"),
        ("42", 42),
        ("-1", -1),
        ("3.25", 3.25),
        ("-0.5", -0.5),
        ("true", True),
        ("True", True),
        ("false", False),
        ("False", False),
        ("null", None),
        ("None", None),
        ("none", None),
    ],
)
def test_literals(text: str, expected: Any) -> None:
    assert evaluate(text, CONTEXT) == expected
    assert type(evaluate(text, CONTEXT)) is type(expected)


def test_negative_number_compares_without_spaces() -> None:
    assert evaluate_condition("input.zero>-1", CONTEXT)


# --- paths ----------------------------------------------------------------------------


def test_hyphenated_step_ids_are_names() -> None:
    assert evaluate("steps.route-decision.output.route", CONTEXT) == "high-path"
    assert evaluate_condition("steps.analyze-data.output.quality_score >= 70", CONTEXT)


def test_hyphen_with_spaces_is_not_arithmetic() -> None:
    error = error_of(check_condition, "input.a - input.b > 0")
    assert error.position == 8
    assert "there is no arithmetic" in error.message


def test_deep_paths_are_followed() -> None:
    assert evaluate("steps.analyze-data.output.nested.deep.v", CONTEXT) == 1


def test_list_index_and_negative_index() -> None:
    assert evaluate("input.items[0]", CONTEXT) == 1
    assert evaluate("input.items[-1]", CONTEXT) == 3
    assert evaluate("steps.analyze-data.output.insights[1]", CONTEXT) == "b"


def test_dotted_number_indexes_a_list() -> None:
    assert evaluate("input.items.2", CONTEXT) == 3


def test_quoted_keys_index_a_mapping() -> None:
    assert evaluate('input.data["key"]', CONTEXT) == "value"
    assert evaluate("input.data['two words']", CONTEXT) == 2
    assert evaluate("input['name']", CONTEXT) == "Ada"


def test_number_index_finds_a_text_key() -> None:
    assert evaluate("input.data[0]", CONTEXT) == "zero-key"


def test_keyword_after_a_dot_is_a_key() -> None:
    assert evaluate("input.in", CONTEXT) == "keyword-named"


@pytest.mark.parametrize(
    "text",
    [
        "input.nope",
        "input.items[7]",
        "input.items[-4]",
        "input.items['a']",
        "input.name.first",
        "input.name[0]",
        "input.zero.x",
        "steps.writer.output.field",
        "steps.nope.output",
        "nowhere.at.all",
        "input.data.key.deeper",
    ],
)
def test_missing_segments_evaluate_to_null(text: str) -> None:
    assert evaluate(text, CONTEXT) is None


def test_missing_roots_in_the_context_evaluate_to_null() -> None:
    assert evaluate("steps.a.output.x", {}) is None
    assert not evaluate_condition("steps.a.output.x >= 1", {})


def test_python_attributes_are_never_read() -> None:
    assert evaluate("input.__class__", CONTEXT) is None
    assert evaluate("input.items.__len__", CONTEXT) is None


def test_step_record_fields_are_read() -> None:
    assert evaluate("steps.route-decision.status", CONTEXT) == "completed"
    assert evaluate("steps.broken.error.code", CONTEXT) == "AGENT_TIMEOUT"
    assert evaluate("steps.route-decision.error", CONTEXT) is None


def test_step_shorthand_without_output_reads_the_output() -> None:
    assert evaluate("steps.review.decision", CONTEXT) == "approved"
    assert evaluate_condition("{{steps.review.decision}} == 'approved'", CONTEXT)


def test_step_shorthand_never_shadows_the_record_fields() -> None:
    assert evaluate("steps.review.status", CONTEXT) == "done"
    assert evaluate("steps.review.error", CONTEXT) is None


def test_execution_and_process_values_are_read() -> None:
    assert evaluate("execution.id", CONTEXT) == "exec-123"
    assert evaluate("process.version", CONTEXT) == "1.2"


# --- condition form with placeholders -------------------------------------------------


def test_placeholder_condition_compares_values_not_text() -> None:
    assert evaluate_condition("{{steps.route-decision.output.score}} >= 80", CONTEXT)
    assert not evaluate_condition("{{steps.route-decision.output.score}} >= 100", CONTEXT)
    assert evaluate_condition("{{ steps.ticket.output.priority }} == 'urgent'", CONTEXT)
    assert evaluate_condition("{{steps.ticket.output.needs_escalation}} == true", CONTEXT)


def test_placeholders_group_like_parentheses() -> None:
    assert not evaluate_condition("not {{input.flag or input.missing}}", CONTEXT)


def test_placeholder_alone_is_a_truthiness_test() -> None:
    assert evaluate_condition("{{input.flag}}", CONTEXT)
    assert not evaluate_condition("{{input.missing}}", CONTEXT)


def test_evaluate_returns_the_raw_value() -> None:
    assert evaluate("{{steps.analyze-data.output.insights}}", CONTEXT) == ["a", "b"]
    assert evaluate("steps.route-decision.output", CONTEXT) == {"route": "high-path", "score": 85}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False),
        ("", False),
        ("false", False),
        ("FALSE", False),
        (" no ", False),
        ("null", False),
        ("None", False),
        ("0", False),
        ("0.0", False),
        ("true", True),
        ("anything", True),
        (0, False),
        (0.0, False),
        (Decimal("0"), False),
        (2, True),
        (Decimal("0.1"), True),
        ([], False),
        ([0], True),
        ({}, False),
        ({"a": 1}, True),
        (True, True),
        (False, False),
    ],
)
def test_truthy(value: Any, expected: bool) -> None:
    assert truthy(value) is expected
    assert evaluate_condition("x", {"x": value}) is expected


# --- errors ---------------------------------------------------------------------------


def test_missing_value_after_operator_names_operator_and_column() -> None:
    error = error_of(check_condition, "steps.a.output.score >=")
    assert error.message == "expected a value after '>=' at column 24"
    assert error.position == 23
    assert error.text == "steps.a.output.score >="
    assert error.reason == "expected a value after '>='"


def test_error_positions_in_placeholder_conditions_point_into_the_original_text() -> None:
    text = "{{steps.a.output.score}} >= and"
    error = error_of(check_condition, text)
    assert error.position == text.index("and")
    assert "expected a value after '>=', found 'and'" in error.message


def test_error_inside_a_placeholder_condition_points_into_the_placeholder() -> None:
    text = "{{ steps.a.output.score > }} == true"
    error = error_of(check_condition, text)
    assert error.position == text.index("}}")
    assert error.message.startswith("expected a value after '>', found '}}'")


def test_unclosed_placeholder_in_a_condition_is_an_error() -> None:
    error = error_of(check_condition, "{{steps.a.output.score >= 80")
    assert "expected '}}'" in error.message
    assert "the '{{' at column 1 is not closed" in error.message


def test_stray_closing_braces_in_a_condition_are_an_error() -> None:
    error = error_of(check_condition, "steps.a.output.x }} == 1")
    assert error.position == 17
    assert "'}}' without a matching '{{'" in error.message


def test_placeholders_cannot_be_nested() -> None:
    assert "cannot be nested" in error_of(check_condition, "{{ {{x}} }}").message
    assert "cannot be nested" in error_of(check_template, "{{ {{x}} }}").message


def test_placeholder_inside_quotes_in_a_condition_is_reported() -> None:
    error = error_of(check_condition, "'{{steps.a.output.x}}' == 'done'")
    assert "remove the quotes" in error.message
    assert error.position == 0


def test_comparisons_cannot_be_chained() -> None:
    error = error_of(check_condition, "1 < x < 3")
    assert error.message == "comparisons cannot be chained at column 7; join them with 'and'"


@pytest.mark.parametrize(
    ("text", "position", "hint"),
    [
        ("a = b", 2, "use '=='"),
        ("a && b", 2, "use 'and'"),
        ("!a", 0, "use 'not'"),
        ("a + 1", 2, "no arithmetic"),
        ("a @ b", 2, "unexpected '@'"),
        ("a b", 2, "expected an operator"),
        ("(a == b", 7, "the '(' at column 1 is not closed"),
        ("a == b)", 6, "')' without a matching '('"),
        ("'open", 0, "unterminated string"),
        ("x[name]", 2, "expected a whole number or a quoted key"),
        ("x[1", 3, "expected ']'"),
        ("x.", 2, "expected a name after '.'"),
        ("x == and", 5, "expected a value after '==', found 'and'"),
        ("", 0, "the expression is empty"),
        ("   ", 0, "the expression is empty"),
        ("__import__('os')", 10, "expected an operator"),
    ],
)
def test_syntax_errors_say_what_was_expected_and_where(text: str, position: int, hint: str) -> None:
    error = error_of(check_condition, text)
    assert error.position == position
    assert hint in error.message
    assert f"column {position + 1}" in error.message


def test_errors_in_multi_line_texts_give_line_and_column() -> None:
    error = error_of(check_condition, "input.a == 1 and\n  input.b >")
    assert error.message == "expected a value after '>' at line 2, column 12"
    assert error.position == len("input.a == 1 and\n  input.b >")


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    error = error_of(check_condition, "(" * 5000 + "x" + ")" * 5000)
    assert "nested too deeply" in error.message
    assert evaluate("(" * 10 + "1" + ")" * 10, {}) == 1


def test_long_chains_of_operators_evaluate() -> None:
    text = " or ".join(["input.missing"] * 3000 + ["true"])
    assert evaluate_condition(text, CONTEXT)
    assert evaluate("x" + " | lower" * 3000, {"x": "A"}) == "a"
    assert evaluate_condition("not " * 3001 + "false", {})


def test_expression_error_survives_pickling() -> None:
    error = error_of(check_condition, "a >")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.message, copy.position, copy.text) == (error.message, 3, "a >")


def test_evaluate_raises_expression_error_for_bad_syntax() -> None:
    with pytest.raises(ExpressionError):
        evaluate_condition("a ==", CONTEXT)


def test_repeated_parsing_is_served_from_the_cache() -> None:
    text = "input.score >= 80 and input.flag == true"
    evaluate_condition(text, CONTEXT)
    hits = expr_parser.parse_condition.cache_info().hits
    evaluate_condition(text, CONTEXT)
    assert expr_parser.parse_condition.cache_info().hits == hits + 1


# --- templates ------------------------------------------------------------------------


def test_template_without_placeholders_is_unchanged() -> None:
    text = "Plain {text} with } and { braces and }} too"
    assert render_template(text, CONTEXT) == RenderResult(text, ())


def test_placeholders_are_replaced_by_their_text() -> None:
    text = "Hi {{input.name}}, route {{ steps.route-decision.output.route }}."
    result = render_template(text, CONTEXT)
    assert result.text == "Hi Ada, route high-path."
    assert result.warnings == ()


def test_dollar_before_a_placeholder_stays_literal() -> None:
    assert render_template("Charge ${{input.amount}} now", CONTEXT).text == "Charge $12.5 now"


def test_json_braces_around_placeholders_are_text() -> None:
    rendered = render_template('{"score": {{input.score}}, "n": {"a": {{input.zero}}}}', CONTEXT)
    assert rendered.text == '{"score": 85, "n": {"a": 0}}'


def test_triple_braces_keep_the_outer_brace_as_text() -> None:
    assert render_template("{{{input.name}}}", CONTEXT).text == "{Ada}"


def test_literal_double_braces_can_be_written_as_a_string() -> None:
    assert render_template("{{ '{{' }}x{{ '}}' }}", CONTEXT).text == "{{x}}"


def test_dict_renders_as_its_response_field() -> None:
    assert render_template("{{steps.agent.output}}", CONTEXT).text == "the raw reply"


def test_dict_renders_as_its_value_field_when_it_has_no_response() -> None:
    assert render_template("{{x}}", {"x": {"value": 7, "other": 1}}).text == "7"


def test_dict_without_response_or_value_renders_as_json() -> None:
    rendered = render_template("{{steps.route-decision.output}}", CONTEXT)
    assert rendered.text == '{"route": "high-path", "score": 85}'
    assert render_template("{{x}}", {"x": {"name": "Zoë"}}).text == '{"name": "Zoë"}'


def test_list_renders_as_json() -> None:
    assert render_template("{{steps.analyze-data.output.insights}}", CONTEXT).text == '["a", "b"]'


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "true"),
        (False, "false"),
        (85, "85"),
        (90.0, "90.0"),
        (12.5, "12.5"),
        (Decimal("19.99"), "19.99"),
        (Decimal("1E+2"), "100"),
        ("text", "text"),
        ("", ""),
        (None, ""),
        ([1, "a", None], '[1, "a", null]'),
        ({"response": {"value": 3}}, "3"),
        ({"n": Decimal("2.50"), "i": Decimal("3")}, '{"n": 2.5, "i": 3}'),
    ],
)
def test_to_text(value: Any, text: str) -> None:
    assert to_text(value) == text


def test_missing_value_renders_empty_and_warns_with_the_expression() -> None:
    result = render_template("Score: {{ steps.x.output.y }}!", CONTEXT)
    assert result.text == "Score: !"
    assert result.warnings == ("{{steps.x.output.y}} has no value; rendered as empty text",)


def test_each_missing_expression_warns_once() -> None:
    result = render_template("{{input.a}} {{input.a}} {{input.b}}", CONTEXT)
    assert len(result.warnings) == 2


def test_empty_text_renders_without_warning() -> None:
    assert render_template("[{{input.empty}}]", CONTEXT) == RenderResult("[]", ())


def test_default_and_double_bar_work_in_templates() -> None:
    text = 'Range: {{input.time_range | default("last 7 days")}}; {{input.x || "auto-approved"}}'
    result = render_template(text, CONTEXT)
    assert result.text == "Range: last 7 days; auto-approved"
    assert result.warnings == ()


def test_comparisons_work_inside_placeholders() -> None:
    assert render_template("{{input.score >= 80}}", CONTEXT).text == "true"


def test_unclosed_placeholder_in_a_template_points_at_its_opening() -> None:
    text = "Hello {{ input.name and more"
    error = error_of(check_template, text)
    assert error.position == 6
    assert error.message == "unclosed '{{' at column 7; add '}}' after the expression"


def test_single_closing_brace_in_a_placeholder_is_reported() -> None:
    error = error_of(check_template, "a {{ input.name } b")
    assert error.position == 16
    assert "close the '{{' at column 3 with '}}'" in error.message


def test_empty_placeholder_is_an_error() -> None:
    assert error_of(check_template, "x {{   }} y").position == 2


def test_bad_expression_in_a_template_reports_its_position_in_the_template() -> None:
    text = "line one\nScore: {{ input.a >= }}"
    error = error_of(check_template, text)
    assert error.position == text.index("}}")
    assert "line 2, column 22" in error.message


def test_quotes_in_template_text_are_plain_text() -> None:
    assert render_template("it's {{input.name}}'s \"turn\"", CONTEXT).text == "it's Ada's \"turn\""


def test_quoted_placeholder_text_is_allowed_inside_template_placeholders() -> None:
    assert render_template("{{ input.missing | default('{{none}}') }}", CONTEXT).text == "{{none}}"


def test_render_value_returns_the_raw_value_of_a_single_placeholder() -> None:
    assert render_value("{{steps.analyze-data.output}}", CONTEXT)["quality_score"] == 72
    assert render_value("  {{ input.items }}\n", CONTEXT) == [1, 2, 3]
    assert render_value("{{input.zero}}", CONTEXT) == 0
    assert render_value("{{input.missing}}", CONTEXT) is None
    assert render_value("{{input.missing || 'auto'}}", CONTEXT) == "auto"


def test_render_value_renders_text_when_there_is_more_than_one_placeholder() -> None:
    assert render_value("A={{input.zero}}", CONTEXT) == "A=0"
    assert render_value("{{input.zero}}{{input.zero}}", CONTEXT) == "00"
    assert render_value("no placeholders", CONTEXT) == "no placeholders"


# --- references -----------------------------------------------------------------------


def test_condition_references_give_step_id_field_and_position() -> None:
    text = "steps.route-decision.output.score >= 80 and input.flag"
    refs = condition_references(text)
    assert refs == [
        Reference("steps", ("route-decision", "output", "score"), 0),
        Reference("input", ("flag",), text.index("input")),
    ]
    assert refs[0].step_id == "route-decision"
    assert refs[0].field == "output"
    assert refs[1].step_id is None
    assert refs[1].field is None


def test_references_in_placeholder_conditions_point_into_the_original_text() -> None:
    text = "{{ steps.a.status }} == 'completed' or {{steps.b.error}}"
    refs = condition_references(text)
    assert [(r.step_id, r.field, r.position) for r in refs] == [
        ("a", "status", 3),
        ("b", "error", text.index("steps.b")),
    ]


def test_references_include_indexes_and_filter_arguments() -> None:
    refs = condition_references("steps.x.output.items[0]['k'] | default(input.fallback) == 1")
    assert [r.path for r in refs] == [("x", "output", "items", 0, "k"), ("fallback",)]


def test_template_references_are_listed_in_order_with_positions() -> None:
    text = "A {{steps.a-b.output.x[0]}} {{input.y || execution.id}} {{ 'lit' }} {{name}}"
    refs = template_references(text)
    assert [(r.root, r.path, r.position) for r in refs] == [
        ("steps", ("a-b", "output", "x", 0), 4),
        ("input", ("y",), text.index("input")),
        ("execution", ("id",), text.index("execution")),
        ("name", (), text.index("name")),
    ]


def test_reference_is_written_back_as_dotted_text() -> None:
    (ref,) = condition_references("steps.a-b.output['two words'][2].x")
    assert ref.dotted == 'steps.a-b.output["two words"][2].x'


def test_references_of_bad_text_raise_expression_error() -> None:
    with pytest.raises(ExpressionError):
        template_references("{{ a >")
    with pytest.raises(ExpressionError):
        condition_references("a >")


# --- agent replies --------------------------------------------------------------------


def test_json_reply_becomes_a_dict_with_the_raw_text_as_response() -> None:
    reply = '  {"score": 85, "ok": true}\n'
    assert parse_agent_reply(reply) == {"score": 85, "ok": True, "response": reply}


def test_reply_with_its_own_response_key_keeps_it() -> None:
    assert parse_agent_reply('{"response": "mine"}') == {"response": "mine"}


@pytest.mark.parametrize("label", ["json", "JSON", ""])
def test_fenced_json_block_is_parsed(label: str) -> None:
    reply = f'Here you go:\n```{label}\n{{"route": "a"}}\n```\nThanks.'
    assert parse_agent_reply(reply) == {"route": "a", "response": reply}


def test_two_fenced_json_objects_leave_the_reply_as_text() -> None:
    reply = '```json\n{"a": 1}\n```\nor\n```json\n{"b": 2}\n```'
    assert parse_agent_reply(reply) == reply


def test_fenced_json_array_leaves_the_reply_as_text() -> None:
    reply = '```json\n[{"a": 1}]\n```'
    assert parse_agent_reply(reply) == reply


def test_fences_in_other_languages_are_not_json_blocks() -> None:
    reply = 'Code:\n```python\nprint(1)\n```\nResult: {"done": true}'
    assert parse_agent_reply(reply) == {"done": True, "response": reply}


def test_json_object_embedded_in_text_is_found() -> None:
    reply = 'I think {"a": {"b": [1, 2]}} is right, and {"c": 3} too.'
    assert parse_agent_reply(reply) == {"a": {"b": [1, 2]}, "response": reply}


def test_absurdly_nested_json_reply_stays_text() -> None:
    reply = "[" * 100_000 + "{" * 100_000
    assert parse_agent_reply(reply) == reply


@pytest.mark.parametrize(
    "reply",
    ["Just words.", "[1, 2, 3]", "42", '"a string"', "use {curly} braces", "{broken: json", ""],
)
def test_reply_that_holds_no_json_object_is_returned_unchanged(reply: str) -> None:
    assert parse_agent_reply(reply) == reply


# --- the Trinity files ----------------------------------------------------------------


_TEMPLATE_KEYS = frozenset(
    {"message", "source", "title", "description", "value", "subject", "agent", "artifacts"}
)


def _walk(node: Any, inside: bool = False) -> Iterator[tuple[str, str]]:
    """(kind, text) for the conditions and templates under steps, outputs and routes."""
    if isinstance(node, list):
        for item in node:
            yield from _walk(item, inside)
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if inside and key == "condition" and isinstance(value, str):
            yield "condition", value
        elif inside and key in _TEMPLATE_KEYS and isinstance(value, str):
            yield "template", value
        elif inside and key in _TEMPLATE_KEYS and isinstance(value, list):
            yield from (("template", item) for item in value if isinstance(item, str))
        else:
            yield from _walk(value, inside or key in ("steps", "outputs", "routes"))


def _compat_texts() -> list[tuple[str, str, str]]:
    texts = []
    for path in sorted(COMPAT_DIR.glob("*.yaml")):
        tree = yaml.safe_load(path.read_text())
        texts += [(path.name, kind, text) for kind, text in _walk(tree)]
        if isinstance(tree.get("name"), str):
            texts.append((path.name, "template", tree["name"]))
    return texts


COMPAT_TEXTS = _compat_texts()


def test_the_trinity_files_hold_conditions_and_templates() -> None:
    kinds = [kind for _, kind, _ in COMPAT_TEXTS]
    assert kinds.count("condition") >= 30
    assert sum("{{" in text for _, _, text in COMPAT_TEXTS) >= 100


@pytest.mark.parametrize(("file", "kind", "text"), COMPAT_TEXTS)
def test_every_trinity_expression_parses_and_evaluates(file: str, kind: str, text: str) -> None:
    if kind == "condition":
        check_condition(text)
        assert isinstance(evaluate_condition(text, CONTEXT), bool)
        assert isinstance(evaluate_condition(text, {}), bool)
    else:
        check_template(text)
        template_references(text)
        assert isinstance(render_template(text, CONTEXT).text, str)


def _step_output(step_id: str, output: Any) -> dict[str, Any]:
    return {"steps": {step_id: {"output": output, "status": "completed"}}}


@pytest.mark.parametrize(
    ("condition", "context", "expected"),
    [
        ("{{steps.evaluate.output.score}} >= 80", _step_output("evaluate", {"score": "85"}), True),
        ("{{steps.evaluate.output.score}} >= 80", _step_output("evaluate", {"score": 50}), False),
        ("{{steps.evaluate.output.score}} >= 80", _step_output("evaluate", "85"), False),
        ("input.run_optional == true", {"input": {"run_optional": "true"}}, True),
        ("input.run_optional == true", {"input": {"run_optional": False}}, False),
        (
            "steps.quality-review.status == 'skipped'",
            {"steps": {"quality-review": {"status": "skipped"}}},
            True,
        ),
        (
            "{{steps.analyze-ticket.output.needs_escalation}} == true",
            _step_output("analyze-ticket", {"needs_escalation": True}),
            True,
        ),
        ("input.score > 80", {"input": {"score": 80.5}}, True),
    ],
)
def test_trinity_conditions_decide_as_their_authors_meant(
    condition: str, context: dict[str, Any], expected: bool
) -> None:
    assert evaluate_condition(condition, context) is expected


# --- properties -----------------------------------------------------------------------

_EXPRESSION_PIECES = [
    *"{}()[]'\"|=!<>.,-_ab01 \n\\&$",
    *("{{", "}}", " and ", " or ", "not ", " in ", " contains ", "||", "| default(", "| length"),
    *("steps.a-b.output", "input.x", "true", "null", "-1", "2.5", "'s'"),
]
_EXPRESSION_ALPHABET = st.sampled_from(_EXPRESSION_PIECES)
_EXPRESSION_TEXT = st.lists(_EXPRESSION_ALPHABET, max_size=30).map("".join)
_ANY_TEXT = st.one_of(st.text(max_size=80), _EXPRESSION_TEXT)
_SAMPLE_CONTEXT = {"input": {"x": [1, "2", None]}, "steps": {"a-b": {"output": {"c": {}}}}}


@settings(max_examples=400, deadline=1000)
@given(_ANY_TEXT)
def test_checking_random_text_raises_nothing_but_expression_error(text: str) -> None:
    for check in (check_condition, check_template):
        try:
            check(text)
        except ExpressionError as error:
            assert 0 <= error.position <= len(text)
            assert error.text == text


@settings(max_examples=400, deadline=1000)
@given(_ANY_TEXT)
def test_whatever_parses_also_evaluates_without_error(text: str) -> None:
    try:
        value = evaluate(text, _SAMPLE_CONTEXT)
    except ExpressionError:
        pass
    else:
        assert isinstance(truthy(value), bool)
        assert isinstance(to_text(value), str)
    try:
        rendered = render_template(text, _SAMPLE_CONTEXT)
    except ExpressionError:
        return
    assert isinstance(rendered.text, str)
    render_value(text, _SAMPLE_CONTEXT)  # must not raise


@settings(max_examples=200, deadline=1000)
@given(st.text(max_size=200))
def test_agent_replies_always_come_back_as_text_or_a_dict_with_response(reply: str) -> None:
    parsed = parse_agent_reply(reply)
    assert parsed == reply or (isinstance(parsed, dict) and "response" in parsed)
