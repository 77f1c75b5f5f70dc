"""Load and validate a definition: structure, semantics, references, then the typed model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.definition import ProcessDefinition, build_definition
from engine.issues import Issue, Location, locate
from engine.structure import check_structure
from engine.validation import SubProcessLookup, check_semantics

__all__ = ["DefinitionError", "Validation", "load_definition", "validate_definition"]


@dataclass(frozen=True)
class Validation:
    """All findings of one document, and the definition when there is no error."""

    definition: ProcessDefinition | None
    issues: tuple[Issue, ...]

    @property
    def errors(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.is_error)

    @property
    def warnings(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if not i.is_error)

    @property
    def ok(self) -> bool:
        return not self.errors


class DefinitionError(ValueError):
    """A definition with errors; `issues` holds every one of them."""

    def __init__(self, issues: tuple[Issue, ...]) -> None:
        self.issues = issues
        errors = [i for i in issues if i.is_error]
        first = errors[0].format() if errors else "invalid definition"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(first + more)


def validate_definition(data: object, positions: Mapping[str, Location] | None = None,
                        lookup: SubProcessLookup | None = None) -> Validation:
    """Every error and warning at once; line and column attached when positions are known."""
    tree, issues = check_structure(data)
    if tree is not None:
        issues.extend(check_semantics(tree, lookup))
    located = sorted((locate(i, positions) for i in issues), key=_order)
    definition = None
    if tree is not None and not any(i.is_error for i in located):
        definition = build_definition(tree)
    return Validation(definition, tuple(located))


def load_definition(data: object, lookup: SubProcessLookup | None = None) -> ProcessDefinition:
    """The typed definition, or DefinitionError listing every error."""
    result = validate_definition(data, lookup=lookup)
    if result.definition is None:
        raise DefinitionError(result.issues)
    return result.definition


def _order(issue: Issue) -> tuple[int, int, int, str]:
    return (issue.line or 0, issue.column or 0, 0 if issue.is_error else 1, issue.path)
