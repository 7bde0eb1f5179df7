"""The gateway's traffic log (the store's ``gateway_requests``) read as production logs: the same
columns as the JSONL logs (``aire.data.logs``), so validation, drift and SLOs read either source.

What the client got is what is checked: ``served`` rows only (mirrored copies are the challenger's).
A chat request's prompt is its last user message, as in the JSONL schema.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aire.data.logs import COLUMNS, LogBatch
from aire.store.gateway_log import SERVED, GatewayLog
from aire.store.schema import GatewayRequest
from aire.store.store import Store

SOURCE = "store"  # what `aire monitor --logs store` names


def read_gateway_logs(store_url: str, since: datetime | None, until: datetime | None) -> LogBatch:
    import pandas as pd

    sink = GatewayLog(Store(store_url))
    start = since or datetime(1970, 1, 1, tzinfo=UTC)
    records = [_record(row) for row in sink.window(start, until, kind=SERVED)]
    return LogBatch(frame=pd.DataFrame.from_records(records, columns=[*COLUMNS, "_file", "_line"]))


def _record(row: GatewayRequest) -> dict[str, Any]:
    failed = bool(row.error) or row.status >= 400
    n = row.completion_tokens
    tpot = None
    if row.ttft_ms is not None and row.e2e_ms is not None and n and n >= 2:
        tpot = (row.e2e_ms - row.ttft_ms) / (n - 1)
    return {
        "id": row.request_id,
        "ts": row.at.isoformat(),
        "endpoint": row.endpoint or row.served_model,
        "model": row.served_model,
        "prompt": _prompt(row),
        "response": None if failed else row.response,
        "status": "error" if failed else "ok",
        "error_type": ("http" if row.status >= 400 else "protocol") if failed else None,
        "finish_reason": row.finish_reason,
        "ttft_ms": row.ttft_ms,
        "tpot_ms": tpot,
        "e2e_ms": row.e2e_ms,
        "prompt_tokens": row.prompt_tokens,
        "output_tokens": n,
        "_file": "store:gateway_requests",
        "_line": row.id,
    }


def _prompt(row: GatewayRequest) -> str:
    if row.api != "chat":
        return row.prompt
    try:
        users = [m.get("content") for m in json.loads(row.prompt) if m.get("role") == "user"]
    except (ValueError, AttributeError):
        return row.prompt
    return str(users[-1]) if users else row.prompt
