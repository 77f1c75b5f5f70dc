"""Reading definition files: text → YAML with positions → validated definition."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.yamlio import parse_yaml
from engine.definition import ProcessDefinition
from engine.issues import Issue, Level
from engine.loader import validate_definition

__all__ = ["ValidatedFile", "validate_files", "validate_text"]


@dataclass
class ValidatedFile:
    path: Path
    issues: list[Issue] = field(default_factory=list)
    definition: ProcessDefinition | None = None
    unreadable: bool = False

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.is_error]

    def to_dict(self) -> dict[str, Any]:
        return {"file": str(self.path), "valid": not self.errors and not self.unreadable,
                "name": self.definition.name if self.definition else None,
                "issues": [i.to_dict() for i in self.issues]}


def validate_text(text: str, lookup: Any = None) -> tuple[ProcessDefinition | None, list[Issue]]:
    """Validate YAML (or JSON) text; every issue carries its line and column."""
    parsed = parse_yaml(text)
    if not parsed.ok:
        return None, parsed.issues
    result = validate_definition(parsed.data, parsed.positions, lookup)
    return result.definition, parsed.issues + list(result.issues)


def validate_files(paths: Sequence[Path]) -> list[ValidatedFile]:
    """Validate several files; sub-process recursion is checked across all of them."""
    texts: dict[Path, str] = {}
    results: dict[Path, ValidatedFile] = {}
    for path in paths:
        try:
            texts[path] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            results[path] = ValidatedFile(path, [Issue(Level.ERROR, "unreadable", "",
                                                       f"cannot read {path}: {reason}")],
                                          unreadable=True)
    children = _children_by_name(texts.values())
    for path, text in texts.items():
        definition, issues = validate_text(text, lambda name: children.get(name))
        results[path] = ValidatedFile(path, issues, definition)
    return [results[p] for p in paths]


def _children_by_name(texts: Iterable[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for text in texts:
        data = parse_yaml(text).data
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            continue
        steps = data.get("steps") if isinstance(data.get("steps"), list) else []
        out[data["name"]] = [str(s.get("process_name") or s.get("process")) for s in steps
                             if isinstance(s, dict) and s.get("type") == "sub_process"]
    return out
