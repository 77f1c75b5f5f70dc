"""Reading definition files: text → YAML with positions → validated definition."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.yamlio import parse_yaml
from engine import schema
from engine.definition import ProcessDefinition
from engine.issues import Issue, Level, Location
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
    result = validate_definition(parsed.data, _with_canonical_keys(parsed.positions), lookup)
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


def _with_canonical_keys(positions: dict[str, Location]) -> dict[str, Location]:
    """Issues name fields by their canonical name (`process_name`) even where the file uses an
    alias (`process`); give the canonical path the alias's position so the line is right."""
    out = dict(positions)
    for path, location in positions.items():
        head, dot, key = path.rpartition(".")
        canonical = _ALIASES.get(key)
        if dot and canonical:
            out.setdefault(f"{head}.{canonical}", location)
    return out


def _aliases() -> dict[str, str]:
    specs = [schema.TOP_LEVEL, *schema.STEP_TYPES.values(), *schema.TRIGGER_TYPES.values()]
    found: dict[str, str] = {}
    while specs:
        spec = specs.pop()
        for f in spec.fields:
            found.update((alias, f.name) for alias in f.aliases)
            if f.spec is not None:
                specs.append(f.spec)
    return found


_ALIASES = _aliases()
