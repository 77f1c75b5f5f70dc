"""Validation findings: every error and warning names where it is and how to fix it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum

__all__ = ["Issue", "Level", "Location", "did_you_mean", "locate"]

Location = tuple[int, int]  # 1-based line and column in the source text


class Level(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Issue:
    """One finding. `path` is like `steps[3].routes[0].target`; line/column when from YAML."""

    level: Level
    code: str
    path: str
    message: str
    hint: str | None = None
    line: int | None = None
    column: int | None = None

    @property
    def is_error(self) -> bool:
        return self.level is Level.ERROR

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form (used by `trinity validate --json` and the API)."""
        return {
            "level": self.level.value,
            "code": self.code,
            "path": self.path,
            "message": self.message,
            "hint": self.hint,
            "line": self.line,
            "column": self.column,
        }

    def format(self, source: str = "") -> str:
        """`file:line:col: error: path: message (hint)` for people."""
        where = source
        if self.line is not None:
            where = f"{where}:{self.line}:{self.column or 1}" if where else \
                f"line {self.line}, column {self.column or 1}"
        head = f"{where}: " if where else ""
        path = f"{self.path}: " if self.path else ""
        hint = f"\n    hint: {self.hint}" if self.hint else ""
        return f"{head}{self.level.value}: {path}{self.message}{hint}"


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A "did you mean 'x'?" hint for a near miss, or None."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def locate(issue: Issue, positions: Mapping[str, Location] | None) -> Issue:
    """Attach the line and column of the nearest located path (the path or a parent)."""
    if not positions or issue.line is not None:
        return issue
    path = issue.path
    while path:
        if path in positions:
            line, column = positions[path]
            return replace(issue, line=line, column=column)
        path = _parent(path)
    return issue


def _parent(path: str) -> str:
    cut = max(path.rfind("."), path.rfind("["))
    return path[:cut] if cut > 0 else ""
