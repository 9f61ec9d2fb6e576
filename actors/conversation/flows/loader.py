"""Load and validate a flows file, with errors that name the file, the line and the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from actors.conversation.flows.schema import FlowsFile

Path_ = tuple[str | int, ...]


class FlowFileError(ValueError):
    """The flows file is not valid; the message says where and what."""


def _to_python(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.safe_load(yaml.serialize(key_node))
            result[key] = _to_python(value_node, (*path, key), lines)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, (*path, i), lines) for i, item in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))


def parse_flows(text: str, source: str = "<flows>") -> FlowsFile:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise FlowFileError(f"{source}{line}: not valid YAML: {exc}") from exc
    lines: dict[Path_, int] = {}
    data = _to_python(root, (), lines) if root is not None else {}
    try:
        return FlowsFile.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            at = next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), 1)
            where = ".".join(str(p) for p in loc) or "file"
            problems.append(f"{source}:{at}: {where}: {error['msg']}")
        raise FlowFileError("\n".join(problems)) from exc


def load_flows(path: Path) -> FlowsFile:
    return parse_flows(path.read_text(), str(path))
