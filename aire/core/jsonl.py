"""The one JSONL reader: every suite, traffic file and production log is read line by line here, so a
bad line is reported the same way everywhere, with its file and line number."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from aire.core.errors import InputError


def read_jsonl(
    path: Path,
    *,
    error: type[InputError] = InputError,
    on_bad_line: Callable[[int, str], None] | None = None,
    text: str | None = None,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line of ``path`` (or of ``text``, already read from it).

    A line that is not JSON, or not a JSON object, raises ``error`` naming the file and line; with
    ``on_bad_line`` it is reported there as (line number, why) and skipped instead (a monitor reading
    production logs must not stop at one bad row).
    """
    lines = text.splitlines() if text is not None else _lines(path)
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as exc:
            why = f"malformed JSON: {exc.msg} (column {exc.colno})"
        else:
            if isinstance(row, dict):
                yield lineno, row
                continue
            why = "expected a JSON object"
        if on_bad_line is None:
            raise error(why, path=path, line=lineno)
        on_bad_line(lineno, why)


def _lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8", errors="replace") as fh:
        yield from fh
