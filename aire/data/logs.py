"""Production request/response logs: the schema monitoring reads, and a lenient reader.

One JSON object per line (JSONL files, e.g. one per hour), as a gateway in front of vLLM or
``aire traffic`` writes them::

    {"id": "req-0001", "ts": "2026-11-24T10:00:00+00:00", "endpoint": "champion", "model": "champion",
     "prompt": "Q: 3+4=\\nA:", "response": " 7", "status": "ok", "error_type": null,
     "finish_reason": "stop", "ttft_ms": 41.2, "tpot_ms": 7.9, "e2e_ms": 65.0,
     "prompt_tokens": 9, "output_tokens": 3}

``status`` is ``ok`` or ``error``; on errors ``response`` is null and ``error_type`` says why
(``http``, ``timeout``, ``connection``, ``protocol``). Chat requests log the last user message as
``prompt``. The reader never fails on a bad row: it keeps every parseable object with its file and
line (columns ``_file``, ``_line``) and lists unparseable lines apart, so validation can report them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from aire.core.jsonl import read_jsonl

COLUMNS = (
    "id",
    "ts",
    "endpoint",
    "model",
    "prompt",
    "response",
    "status",
    "error_type",
    "finish_reason",
    "ttft_ms",
    "tpot_ms",
    "e2e_ms",
    "prompt_tokens",
    "output_tokens",
)
STATUSES = ("ok", "error")


class LogRecord(BaseModel):
    """One logged production request (what ``aire traffic`` writes)."""

    id: str
    ts: datetime
    endpoint: str
    model: str
    prompt: str
    response: str | None
    status: Literal["ok", "error"]
    error_type: str | None = None
    finish_reason: str | None = None
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None


@dataclass
class LogBatch:
    """Rows of a window of logs, as a DataFrame (one column per schema field plus ``_file``, ``_line``)."""

    frame: Any  # pandas.DataFrame
    unparseable: list[str] = field(default_factory=list)  # "file:line: why"


def read_logs(paths: Iterable[Path], since: datetime | None = None, until: datetime | None = None) -> LogBatch:
    """Every JSON object of the files, optionally only rows whose ``ts`` is in [since, until).

    Rows with a missing or unparseable ``ts`` are kept (validation reports them) unless a window is
    asked for, in which case they cannot be placed in it and are listed as unparseable.
    """
    import pandas as pd

    records: list[dict[str, Any]] = []
    bad: list[str] = []
    for path in sorted(paths):

        def bad_line(lineno: int, why: str, path: Path = path) -> None:
            bad.append(f"{path}:{lineno}: {why}")

        for lineno, row in read_jsonl(path, on_bad_line=bad_line):
            if since is not None or until is not None:
                ts = _parse_ts(row.get("ts"))
                if ts is None:
                    bad.append(f"{path}:{lineno}: no valid 'ts' to place it in the window")
                    continue
                if (since is not None and ts < since) or (until is not None and ts >= until):
                    continue
            records.append({**{c: row.get(c) for c in COLUMNS}, "_file": str(path), "_line": lineno})
    frame = pd.DataFrame.from_records(records, columns=[*COLUMNS, "_file", "_line"])
    return LogBatch(frame=frame, unparseable=bad)


def _parse_ts(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo is not None else None


def write_records(path: Path, records: Iterable[LogRecord]) -> int:
    """Append records to a JSONL log file; returns how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("a", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r.model_dump(mode="json")) + "\n")
            n += 1
    return n
