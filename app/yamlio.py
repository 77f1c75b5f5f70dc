"""YAML in: parse definition text keeping the line and column of every key and item."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from engine.issues import Issue, Level, Location

__all__ = ["ParsedYaml", "parse_yaml"]


@dataclass
class ParsedYaml:
    data: Any
    positions: dict[str, Location] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(i.is_error for i in self.issues)


def parse_yaml(text: str) -> ParsedYaml:
    """Parse YAML text; syntax errors and duplicate keys become issues, never exceptions."""
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)  # the reader refuses control characters right here
        node = loader.get_single_node()
        if node is None:
            return ParsedYaml(None)
        result = ParsedYaml(None)
        _walk(node, "", result)
        result.data = loader.construct_document(node)
        return result
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        problem = " ".join(p for p in (e.context, e.problem) if p) or "invalid YAML"
        return ParsedYaml(None, issues=[Issue(Level.ERROR, "yaml-syntax", "",
                                              f"YAML syntax error: {problem}",
                                              "check the indentation and quoting here",
                                              line, column)])
    except yaml.reader.ReaderError as e:
        code = e.character if isinstance(e.character, int) else ord(e.character[:1] or "?")
        before = text[:e.position]
        line, column = before.count("\n") + 1, e.position - (before.rfind("\n") + 1) + 1
        return ParsedYaml(None, issues=[Issue(
            Level.ERROR, "yaml-syntax", "",
            f"YAML syntax error: control character #x{code:04x} is not allowed",
            "remove the control character or quote it as an escape", line, column)])
    except yaml.YAMLError as e:
        return ParsedYaml(None, issues=[Issue(Level.ERROR, "yaml-syntax", "",
                                              f"YAML error: {e}")])
    finally:
        if loader is not None:
            loader.dispose()


def _walk(node: yaml.Node, path: str, out: ParsedYaml) -> None:
    out.positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            key_path = f"{path}.{key}" if path else key
            line = key_node.start_mark.line + 1
            if key in seen:
                out.issues.append(Issue(
                    Level.ERROR, "duplicate-key", key_path,
                    f"key '{key}' appears twice (first on line {seen[key]}); YAML keeps only "
                    "the last one", "remove or rename one of them", line,
                    key_node.start_mark.column + 1))
            seen[key] = line
            out.positions[key_path] = (line, key_node.start_mark.column + 1)
            _walk(value_node, key_path, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, f"{path}[{i}]", out)
