"""Reading the YAML files users write (suites, aire.yaml) with errors that name file, line and key."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from aire.core.errors import InputError, did_you_mean


def read_mapping(path: Path, known_keys: Iterable[str], error: type[InputError]) -> dict[str, Any]:
    """The top-level mapping of a YAML file; malformed YAML or an unknown key raises ``error``."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise error(f"malformed YAML: {getattr(exc, 'problem', exc)}", path=path, line=line) from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise error("expected a mapping at the top level", path=path)
    known = list(known_keys)
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise error(f"unknown key{did_you_mean(unknown[0], known)}", path=path, field=unknown[0])
    return raw


def line_of(path: Path, loc: Iterable[str | int]) -> int | None:
    """The 1-based line of the node at ``loc`` (keys and list indices) in a YAML file, or of its
    deepest existing parent; None when the file does not parse. Lets a validation error name the line."""
    try:
        node = yaml.compose(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line
