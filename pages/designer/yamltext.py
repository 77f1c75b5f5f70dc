"""YAML text that keeps what the user wrote: re-emit only the parts of a document that changed.

`rewrite(text, new)` returns YAML for the data `new`. Top-level keys whose value is unchanged
keep their exact text (comments included); inside `steps`, unchanged steps keep theirs, and a
changed step keeps the text of its unchanged keys. Anything changed is emitted by `dump`.
The result is always parsed back and compared with `new`; when the splice cannot reproduce it
(flow style, anchors, odd layouts) the whole document is dumped instead, so the text is never
wrong, only sometimes less faithful.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["dump", "rewrite"]

# libyaml when present: the same documents and marks, several times faster on big processes.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # a safe loader (CSafeLoader or SafeLoader)


class _Dumper(yaml.SafeDumper):
    """Block style, indented lists, short scalar lists in flow style, multi-line text as `|`."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and value.strip() else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.SequenceNode:
    scalars = all(isinstance(v, str | int | float | bool) and "\n" not in str(v) for v in value)
    flow = bool(value) and scalars and sum(len(str(v)) + 2 for v in value) < 60
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow)


_Dumper.add_representer(str, _str)
_Dumper.add_representer(list, _list)


def dump(data: Any) -> str:
    """Our YAML style for data (key order kept)."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100,
                     default_flow_style=False)


def rewrite(text: str, new: Any) -> str:
    """YAML text for `new` that keeps the text of every unchanged part of `text`."""
    try:
        old = _load(text)
        if old == new:
            return text
        out = _splice_document(text, old, new)
        if out is not None and _load(out) == new:
            return out
    except (yaml.YAMLError, _Unsplicable):
        pass
    return dump(new)


class _Unsplicable(Exception):
    """The text has a shape the splicer does not handle; dump instead."""


def _splice_document(text: str, old: Any, new: Any) -> str | None:
    if not isinstance(old, dict) or not isinstance(new, dict):
        return None
    root = yaml.compose(text, Loader=_Loader)
    if not isinstance(root, yaml.MappingNode) or root.flow_style or not root.value:
        return None
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return "".join(_splice_mapping(lines, root, old, new, (0, len(lines)), prefix=""))


def _splice_mapping(lines: list[str], node: yaml.MappingNode, old: dict[str, Any],
                    new: dict[str, Any], bounds: tuple[int, int], prefix: str) -> list[str]:
    """Lines for mapping `new` laid out where `node` was; `prefix` is a sequence item's "- "."""
    starts = [k.start_mark.line for k, _ in node.value]
    column = node.value[0][0].start_mark.column
    first = starts[0]
    out = list(lines[bounds[0]:first])
    keys = [str(k.value) for k, _ in node.value]
    if len(set(keys)) != len(keys) or (prefix and (keys[0] not in new
                                                   or next(iter(new)) != keys[0])):
        raise _Unsplicable
    trailing_meta = keys[-1].startswith("x-")
    added = [k for k in new if k not in old]
    for i, (key, (_, value_node)) in enumerate(zip(keys, node.value, strict=True)):
        end = starts[i + 1] if i + 1 < len(starts) else bounds[1]
        body_end = _content_end(lines, starts[i], min(end, _node_end(value_node)), column)
        body, gap = lines[starts[i]:body_end], lines[body_end:end]
        if trailing_meta and i == len(keys) - 1:
            out.extend(_dump_key(k, new[k], column, "") for k in added)
            added = []
        if key not in new:
            out.extend(gap)
            continue
        item_prefix = prefix if i == 0 else ""
        if new[key] == old.get(key):
            out.extend(body)
        elif key == "steps" and not prefix:
            out.extend(_splice_steps(lines, value_node, old[key], new[key],
                                     (starts[i], body_end), column))
        else:
            out.append(_dump_key(key, new[key], column, item_prefix))
        out.extend(gap)
    out.extend(_dump_key(k, new[k], column, "") for k in added)
    return out


def _splice_steps(lines: list[str], node: yaml.Node, old: Any, new: Any,
                  bounds: tuple[int, int], key_column: int) -> list[str]:
    if (not isinstance(node, yaml.SequenceNode) or node.flow_style or not node.value
            or not isinstance(old, list) or not isinstance(new, list)):
        raise _Unsplicable
    starts = [item.start_mark.line for item in node.value]
    if len(set(starts)) != len(starts):
        raise _Unsplicable
    dash = lines[starts[0]].index("-")
    out = list(lines[bounds[0]:starts[0]])
    kept: dict[str, tuple[int, int, int, yaml.Node, Any]] = {}
    spaced = False  # steps separated by blank lines: new steps get one too
    for i, item in enumerate(node.value):
        end = starts[i + 1] if i + 1 < len(starts) else bounds[1]
        body_end = _content_end(lines, starts[i], min(end, _node_end(item)), dash)
        spaced = spaced or any(not line.strip() for line in lines[body_end:end])
        step = old[i]
        if isinstance(step, dict) and isinstance(step.get("id"), str):
            kept.setdefault(step["id"], (starts[i], body_end, end, item, step))
    for step in new:
        found = kept.get(step.get("id")) if isinstance(step, dict) else None
        if found is None:
            out.append(("\n" if spaced else "") + _dump_item(step, dash))
            continue
        start, body_end, end, item, before = found
        if step == before:
            out.extend(lines[start:body_end])
        else:
            out.append(_splice_item(lines, item, before, step, (start, body_end), dash))
        out.extend(lines[body_end:end])
    return out


def _splice_item(lines: list[str], item: yaml.Node, before: Any, step: Any,
                 bounds: tuple[int, int], dash: int) -> str:
    if isinstance(item, yaml.MappingNode) and not item.flow_style and item.value:
        item_prefix = lines[bounds[0]][:item.value[0][0].start_mark.column]
        try:
            return "".join(_splice_mapping(lines, item, before, step, bounds, item_prefix))
        except _Unsplicable:
            pass
    return _dump_item(step, dash)


def _node_end(node: yaml.Node) -> int:
    """The line after the node's last character."""
    mark = node.end_mark
    return mark.line + (1 if mark.column > 0 else 0)


def _content_end(lines: list[str], start: int, end: int, column: int) -> int:
    """Leave trailing blank lines and comments at or left of `column` to the next part."""
    while end > start + 1:
        stripped = lines[end - 1].strip()
        indent = len(lines[end - 1]) - len(lines[end - 1].lstrip())
        if stripped and not (stripped.startswith("#") and indent <= column):
            break
        end -= 1
    return end


def _indent(text: str, column: int, prefix: str = "") -> str:
    pad = " " * column
    lines = [pad + line if line.strip() else line for line in text.splitlines(keepends=True)]
    if prefix and lines:
        lines[0] = prefix + lines[0][column:]
    return "".join(lines)


def _dump_key(key: str, value: Any, column: int, prefix: str) -> str:
    return _indent(dump({key: value}), column, prefix)


def _dump_item(item: Any, dash: int) -> str:
    return _indent(dump([item]), dash)
