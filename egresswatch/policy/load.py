"""Reading the policy file: YAML, validated, with every error pointing at its line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from egresswatch.errors import ConfigError
from egresswatch.policy.model import Policy

BUILT_IN = Path(__file__).with_name("default.yaml")
"""The default policy: used when the configured file does not exist, and installed as it."""


def policy_in_force(path: Path) -> tuple[Policy, Path]:
    """The policy at ``path``, or the built-in one when there is no such file; and which."""
    chosen = path if path.exists() else BUILT_IN
    return load_policy(chosen), chosen


def load_policy(path: Path) -> Policy:
    """The policy in ``path``; ConfigError naming the file, line, key and problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the policy: {exc.strerror}") from exc
    return parse_policy(text, str(path))


def parse_policy(text: str, name: str = "<policy>") -> Policy:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark, context = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        opened = f" (in what opens on line {context.line + 1})" if context is not None else ""
        problem = getattr(exc, "problem", None) or exc
        raise ConfigError(f"{name}{where}: not valid YAML: {problem}{opened}") from exc
    lines: dict[tuple[Any, ...], int] = {}
    data = _plain(node, (), lines) if node is not None else {}
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            line = next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), 1)
            key = ".".join(str(p) for p in loc) or "(top level)"
            message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"{name}:{line}: {key}: {message}")
        raise ConfigError("\n".join(problems)) from exc


def _plain(node: yaml.Node, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> Any:
    """The node as plain data, noting the line each path starts on."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            key = key_node.value
            out[key] = _plain(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item, (*path, i), lines) for i, item in enumerate(node.value)]
    return yaml.safe_load(yaml.serialize(node))
