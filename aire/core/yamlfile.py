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
