"""Tokenizer and recursive-descent parser for process expressions.

The language itself is described in ``engine.expressions``; this module only turns text
into a small tree of frozen nodes. Both entry points are cached, because the same texts
are parsed every time a step runs:

* ``parse_condition``: the whole text is one expression, and ``{{ e }}`` acts as ``( e )``.
* ``parse_template``: literal text with ``{{ e }}`` placeholders; lone braces are text.

Nothing is rewritten before tokenizing, so every position (in errors and in references)
is already an offset into the caller's text.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeAlias

__all__ = [
    "FILTER_ARITY",
    "BoolOp",
    "Coalesce",
    "Compare",
    "ExpressionError",
    "FilterCall",
    "Literal",
    "Node",
    "Not",
    "Pipe",
    "Placeholder",
    "Reference",
    "Segment",
    "iter_references",
    "parse_condition",
    "parse_template",
]

# Deep enough for any hand-written expression, shallow enough that parsing and
# evaluating stay far from Python's recursion limit.
MAX_NESTING = 24

FILTER_ARITY: dict[str, int] = {"default": 1, "length": 0, "lower": 0, "upper": 0, "json": 0}
_FILTER_LIST = ", ".join(FILTER_ARITY)

_COMPARISON_OPERATORS = frozenset({"==", "!=", ">", ">=", "<", "<="})
_KEYWORDS = frozenset({"and", "or", "not", "in", "contains"})
_LITERAL_WORDS: dict[str, object] = {
    "true": True,
    "True": True,
    "false": False,
    "False": False,
    "null": None,
    "None": None,
    "none": None,
}
_DIGITS = "0123456789"
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_MAX_NUMBER_LENGTH = 100
_TWO_CHAR_OPERATORS = ("==", "!=", ">=", "<=", "||", "{{", "}}")
_ONE_CHAR_OPERATORS = "<>|()[].,"
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}
_NO_ARITHMETIC = "there is no arithmetic in expressions"
_MISTAKES = {
    "&&": "use 'and' instead of '&&'",
    "&": "use 'and' instead of '&'",
    "=": "use '==' to compare",
    "!": "use 'not' to negate, or '!=' to compare",
    "-": f"{_NO_ARITHMETIC}; '-' only joins name parts, as in steps.route-decision",
    "+": _NO_ARITHMETIC,
    "*": _NO_ARITHMETIC,
    "/": _NO_ARITHMETIC,
    "%": _NO_ARITHMETIC,
}


class ExpressionError(Exception):
    """Bad expression. ``.message``: what is wrong, where ("at column 5", or "at line 2,
    column 5" in a multi-line text) and how to fix it when known; ``.reason``: the same
    without the location; ``.position``: 0-based offset into the original ``.text``."""

    def __init__(self, problem: str, position: int, text: str, hint: str = "") -> None:
        self.problem = problem
        self.hint = hint
        self.position = position
        self.text = text
        self.reason = f"{problem}; {hint}" if hint else problem
        where = describe_position(text, position)
        self.message = f"{problem} at {where}; {hint}" if hint else f"{problem} at {where}"
        super().__init__(self.message)

    def __reduce__(self) -> tuple[type[ExpressionError], tuple[str, int, str, str]]:
        return (type(self), (self.problem, self.position, self.text, self.hint))


def describe_position(text: str, position: int) -> str:
    """'column 5' for one-line texts, 'line 2, column 5' otherwise (both 1-based)."""
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    if "\n" not in text:
        return f"column {column}"
    line = text.count("\n", 0, position) + 1
    return f"line {line}, column {column}"


# --- the tree -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reference:
    """A path into the context, e.g. steps.a-b.output.x[0] -> root 'steps',
    path ('a-b', 'output', 'x', 0); position is the offset of the root name."""

    root: str
    path: tuple[str | int, ...]
    position: int

    @property
    def step_id(self) -> str | None:
        """The step id when this is a ``steps.<id>...`` reference."""
        if self.root == "steps" and self.path and isinstance(self.path[0], str):
            return self.path[0]
        return None

    @property
    def field(self) -> str | None:
        """The step field (output, status, error, ...) of a ``steps.<id>.<field>`` reference."""
        if self.step_id is not None and len(self.path) > 1 and isinstance(self.path[1], str):
            return self.path[1]
        return None

    @property
    def dotted(self) -> str:
        """The reference written back as text, e.g. ``steps.a-b.output.x[0]``."""
        parts = [self.root]
        for segment in self.path:
            if isinstance(segment, int):
                parts.append(f"[{segment}]")
            elif _is_plain_name(segment):
                parts.append(f".{segment}")
            else:
                parts.append(f"[{json.dumps(segment, ensure_ascii=False)}]")
        return "".join(parts)


@dataclass(frozen=True, slots=True)
class Literal:
    value: object
    position: int


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # 'and' | 'or'
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Compare:
    op: str  # == != > >= < <= in 'not in' contains
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Coalesce:
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class FilterCall:
    name: str
    args: tuple[Node, ...]
    position: int


@dataclass(frozen=True, slots=True)
class Pipe:
    value: Node
    filters: tuple[FilterCall, ...]


Node: TypeAlias = Literal | Reference | Not | BoolOp | Compare | Coalesce | Pipe


@dataclass(frozen=True, slots=True)
class Placeholder:
    """One ``{{ expr }}`` of a template: source is the text between the braces, stripped;
    position and end delimit the whole placeholder, braces included."""

    node: Node
    source: str
    position: int
    end: int


Segment: TypeAlias = str | Placeholder


# --- entry points ---------------------------------------------------------------------


@functools.lru_cache(maxsize=2048)
def parse_condition(text: str) -> Node:
    """Parse a whole text as one expression; ``{{ e }}`` groups like ``( e )``."""
    tokens, _ = _Tokenizer(text, 0, opened_at=None).run()
    if tokens[0].kind == "end":
        raise ExpressionError("the expression is empty", 0, text)
    parser = _Parser(text, tokens, opened_at=None)
    node = parser.parse_expression()
    parser.expect_end()
    return node


@functools.lru_cache(maxsize=2048)
def parse_template(text: str) -> tuple[Segment, ...]:
    """Split a template into literal text and parsed placeholders."""
    segments: list[Segment] = []
    literal_start = 0
    while (start := text.find("{{", literal_start)) >= 0:
        while text.startswith("{", start + 2):
            start += 1  # '{{{x}}}' is a literal '{' then a placeholder
        if start > literal_start:
            segments.append(text[literal_start:start])
        placeholder = _parse_placeholder(text, start)
        segments.append(placeholder)
        literal_start = placeholder.end
    if literal_start < len(text):
        segments.append(text[literal_start:])
    return tuple(segments)


def iter_references(node: Node) -> Iterator[Reference]:
    """Every reference in the tree, in source order."""
    if isinstance(node, Reference):
        yield node
    elif isinstance(node, Not):
        yield from iter_references(node.operand)
    elif isinstance(node, BoolOp | Coalesce):
        for operand in node.operands:
            yield from iter_references(operand)
    elif isinstance(node, Compare):
        yield from iter_references(node.left)
        yield from iter_references(node.right)
    elif isinstance(node, Pipe):
        yield from iter_references(node.value)
        for call in node.filters:
            for arg in call.args:
                yield from iter_references(arg)


def _parse_placeholder(text: str, start: int) -> Placeholder:
    tokens, end = _Tokenizer(text, start + 2, opened_at=start).run()
    if tokens[0].kind == "end":
        reason = "empty placeholder; expected an expression inside '{{ }}'"
        raise ExpressionError(reason, start, text)
    parser = _Parser(text, tokens, opened_at=start)
    node = parser.parse_expression()
    parser.expect_end()
    return Placeholder(node, text[start + 2 : end - 2].strip(), start, end)


def _is_name_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def _is_plain_name(segment: str) -> bool:
    return (
        bool(segment)
        and not segment[0].isdigit()
        and all(_is_name_char(c) or c == "-" for c in segment)
    )


def _is_digit_at(text: str, index: int) -> bool:
    return index < len(text) and text[index] in _DIGITS


def _shorten(source: str) -> str:
    return source if len(source) <= 30 else source[:27] + "..."


# --- tokenizer ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # 'name' | 'number' | 'string' | 'op' | 'end'
    value: str | int | float
    position: int
    source: str

    def describe(self) -> str:
        if self.kind == "end":
            return "'}}'" if self.source else "the end of the expression"
        return f"'{_shorten(self.source)}'"


class _Tokenizer:
    """Tokens of a whole condition (opened_at None), or of one template placeholder
    starting after its '{{' (opened_at = its position), up to and including '}}'."""

    def __init__(self, text: str, start: int, opened_at: int | None) -> None:
        self.text = text
        self.pos = start
        self.opened_at = opened_at
        self.tokens: list[_Token] = []

    def run(self) -> tuple[list[_Token], int]:
        text = self.text
        while True:
            while self.pos < len(text) and text[self.pos].isspace():
                self.pos += 1
            if self.pos >= len(text):
                if self.opened_at is not None:
                    raise ExpressionError(
                        "unclosed '{{'", self.opened_at, text, "add '}}' after the expression"
                    )
                self.tokens.append(_Token("end", "", self.pos, ""))
                return self.tokens, self.pos
            if self.opened_at is not None and text.startswith("}}", self.pos):
                self.tokens.append(_Token("end", "}}", self.pos, "}}"))
                return self.tokens, self.pos + 2
            self.tokens.append(self._next())

    def _next(self) -> _Token:
        char = self.text[self.pos]
        if char in "'\"":
            return self._string()
        after_dot = bool(self.tokens) and self.tokens[-1].source == "."
        if after_dot and _is_name_char(char):
            return self._name()  # keys after a dot may start with a digit: items.0
        if char in _DIGITS or (char == "-" and _is_digit_at(self.text, self.pos + 1)):
            return self._number()
        if char.isalpha() or char == "_":
            return self._name()
        return self._operator()

    def _emit(self, kind: str, value: str | int | float, end: int) -> _Token:
        token = _Token(kind, value, self.pos, self.text[self.pos : end])
        self.pos = end
        return token

    def _string(self) -> _Token:
        text, quote = self.text, self.text[self.pos]
        chars: list[str] = []
        index = self.pos + 1
        while index < len(text):
            char = text[index]
            if char == quote:
                return self._emit("string", "".join(chars), index + 1)
            if char == "\\" and index + 1 < len(text):
                escaped = text[index + 1]
                chars.append(_ESCAPES.get(escaped, "\\" + escaped))
                index += 2
                continue
            chars.append(char)
            index += 1
        raise ExpressionError("unterminated string", self.pos, text, f"add the closing {quote}")

    def _number(self) -> _Token:
        match = _NUMBER.match(self.text, self.pos)
        assert match is not None  # the caller saw a digit
        source = match.group()
        if len(source) > _MAX_NUMBER_LENGTH:
            raise ExpressionError("number is too long", self.pos, self.text)
        value: int | float = float(source) if "." in source else int(source)
        return self._emit("number", value, match.end())

    def _name(self) -> _Token:
        text, index = self.text, self.pos + 1
        while index < len(text):
            if _is_name_char(text[index]):
                index += 1
            elif text[index] == "-" and index + 1 < len(text) and _is_name_char(text[index + 1]):
                index += 2  # step ids like route-decision: '-' joined on both sides
            else:
                break
        return self._emit("name", text[self.pos : index], index)

    def _operator(self) -> _Token:
        text, pos = self.text, self.pos
        for operator in _TWO_CHAR_OPERATORS:
            if text.startswith(operator, pos):
                return self._emit("op", operator, pos + 2)
        if text[pos] in _ONE_CHAR_OPERATORS:
            return self._emit("op", text[pos], pos + 1)
        found = text[pos : pos + 2] if text[pos : pos + 2] in _MISTAKES else text[pos]
        raise ExpressionError(f"unexpected {found!r}", pos, text, self._hint(found))

    def _hint(self, found: str) -> str:
        if found == "}" and self.opened_at is not None:
            where = describe_position(self.text, self.opened_at)
            return f"close the '{{{{' at {where} with '}}}}'"
        return _MISTAKES.get(found, "")


# --- parser ---------------------------------------------------------------------------


class _Parser:
    """Precedence, low to high: or, and, not, comparison (== != > >= < <= in 'not in'
    contains), ||, | filter, primary."""

    def __init__(self, text: str, tokens: list[_Token], opened_at: int | None) -> None:
        self.text = text
        self.tokens = tokens
        self.index = 0
        self.depth = 0
        self.opened_at = opened_at  # set when parsing one template placeholder
        self.open_group: int | None = None  # position of the '{{' a condition is inside

    def parse_expression(self) -> Node:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self._error("the expression is nested too deeply")
        node = self._or()
        self.depth -= 1
        return node

    def expect_end(self) -> None:
        token = self._peek()
        if token.kind == "end":
            return
        if token.source in ("}}", ")"):
            opener = "{{" if token.source == "}}" else "("
            raise self._error(f"'{token.source}' without a matching '{opener}'")
        closing = "'}}'" if self.opened_at is not None else "the end of the expression"
        hint = f"expected an operator (==, and, or, ...) or {closing}"
        raise self._error(f"unexpected {token.describe()}", hint=hint)

    # helpers

    def _peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def _advance(self) -> _Token:
        token = self._peek()
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def _at_op(self, *operators: str) -> bool:
        token = self._peek()
        return token.kind == "op" and token.value in operators

    def _at_word(self, *words: str, ahead: int = 0) -> bool:
        token = self._peek(ahead)
        return token.kind == "name" and token.value in words

    def _error(self, problem: str, token: _Token | None = None, hint: str = "") -> ExpressionError:
        position = (token or self._peek()).position
        return ExpressionError(problem, position, self.text, hint)

    def _expect_close(self, closer: str, opener: str, opened_at: int) -> None:
        if not self._at_op(closer):
            where = describe_position(self.text, opened_at)
            found = self._peek().describe()
            hint = f"the '{opener}' at {where} is not closed"
            raise self._error(f"expected '{closer}', found {found}", hint=hint)
        self._advance()

    # grammar

    def _or(self) -> Node:
        operands = [self._and()]
        while self._at_word("or"):
            self._advance()
            operands.append(self._and())
        return operands[0] if len(operands) == 1 else BoolOp("or", tuple(operands))

    def _and(self) -> Node:
        operands = [self._not()]
        while self._at_word("and"):
            self._advance()
            operands.append(self._not())
        return operands[0] if len(operands) == 1 else BoolOp("and", tuple(operands))

    def _not(self) -> Node:
        count = 0
        while self._at_word("not"):
            self._advance()
            count += 1
        node = self._comparison()
        if count == 0:
            return node
        # 'not not x' keeps only the conversion to a boolean
        return Not(node) if count % 2 else Not(Not(node))

    def _comparison(self) -> Node:
        left = self._coalesce()
        operator = self._comparison_operator()
        if operator is None:
            return left
        right = self._coalesce()
        if self._at_comparison():
            raise self._error("comparisons cannot be chained", hint="join them with 'and'")
        return Compare(operator, left, right)

    def _at_comparison(self) -> bool:
        token = self._peek()
        if token.kind == "op":
            return token.value in _COMPARISON_OPERATORS
        return self._at_word("in", "contains") or (
            self._at_word("not") and self._at_word("in", ahead=1)
        )

    def _comparison_operator(self) -> str | None:
        if not self._at_comparison():
            return None
        token = self._advance()
        if token.value == "not":
            self._advance()
            return "not in"
        return str(token.value)

    def _coalesce(self) -> Node:
        operands = [self._pipe()]
        while self._at_op("||"):
            self._advance()
            operands.append(self._pipe())
        return operands[0] if len(operands) == 1 else Coalesce(tuple(operands))

    def _pipe(self) -> Node:
        value = self._primary()
        filters: list[FilterCall] = []
        while self._at_op("|"):
            self._advance()
            filters.append(self._filter())
        return Pipe(value, tuple(filters)) if filters else value

    def _filter(self) -> FilterCall:
        token = self._peek()
        if token.kind != "name":
            hint = f"filters are {_FILTER_LIST}"
            raise self._error("expected a filter name after '|'", hint=hint)
        self._advance()
        name = str(token.value)
        if name not in FILTER_ARITY:
            raise self._error(f"unknown filter '{name}'", token, f"filters are {_FILTER_LIST}")
        args = self._filter_args() if self._at_op("(") else ()
        if len(args) != FILTER_ARITY[name]:
            if FILTER_ARITY[name]:
                hint = f"write it as {name}('n/a')"
                raise self._error(f"filter '{name}' takes one argument", token, hint)
            raise self._error(f"filter '{name}' takes no arguments", token)
        return FilterCall(name, args, token.position)

    def _filter_args(self) -> tuple[Node, ...]:
        opened_at = self._advance().position
        args: list[Node] = []
        if not self._at_op(")"):
            args.append(self.parse_expression())
            while self._at_op(","):
                self._advance()
                args.append(self.parse_expression())
        self._expect_close(")", "(", opened_at)
        return tuple(args)

    def _primary(self) -> Node:
        token = self._peek()
        if token.kind in ("string", "number"):
            return self._literal(token)
        if token.kind == "name" and token.value in _LITERAL_WORDS:
            self._advance()
            return Literal(_LITERAL_WORDS[str(token.value)], token.position)
        if token.kind == "name" and token.value not in _KEYWORDS:
            return self._path()
        if self._at_op("("):
            return self._group()
        if self._at_op("{{"):
            return self._placeholder_group()
        raise self._expected_value()

    def _expected_value(self) -> ExpressionError:
        token = self._peek()
        reason = "expected a value"
        if self.index > 0:
            reason += f" after '{_shorten(self.tokens[self.index - 1].source)}'"
        if token.source:
            reason += f", found {token.describe()}"
        return self._error(reason)

    def _literal(self, token: _Token) -> Literal:
        self._advance()
        if token.kind == "string" and self.opened_at is None and "{{" in str(token.value):
            hint = "remove the quotes, as in {{steps.x.output.y}} == 'done'"
            problem = "a placeholder inside quotes is compared as literal text"
            raise self._error(problem, token, hint)
        return Literal(token.value, token.position)

    def _group(self) -> Node:
        opened_at = self._advance().position
        node = self.parse_expression()
        self._expect_close(")", "(", opened_at)
        return node

    def _placeholder_group(self) -> Node:
        token = self._peek()
        if self.opened_at is not None or self.open_group is not None:
            raise self._error("placeholders cannot be nested")
        self._advance()
        self.open_group = token.position
        node = self.parse_expression()
        self._expect_close("}}", "{{", token.position)
        self.open_group = None
        return node

    def _path(self) -> Reference:
        root = self._advance()
        segments: list[str | int] = []
        while True:
            if self._at_op("."):
                self._advance()
                segments.append(self._dotted_segment())
            elif self._at_op("["):
                segments.append(self._index())
            else:
                return Reference(str(root.value), tuple(segments), root.position)

    def _dotted_segment(self) -> str | int:
        token = self._peek()
        if token.kind != "name":
            raise self._error(f"expected a name after '.', found {token.describe()}")
        self._advance()
        name = str(token.value)
        if name.isascii() and name.isdigit() and len(name) <= 18:
            return int(name)  # items.0 is the same as items[0]
        return name

    def _index(self) -> str | int:
        opened_at = self._advance().position
        token = self._peek()
        if token.kind == "string" or (token.kind == "number" and isinstance(token.value, int)):
            self._advance()
            self._expect_close("]", "[", opened_at)
            return token.value if isinstance(token.value, int) else str(token.value)
        raise self._error(
            f"expected a whole number or a quoted key inside '[ ]', found {token.describe()}"
        )
