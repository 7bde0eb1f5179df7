"""An OpenTelemetry span per gateway request, with OpenInference's semantic conventions, exported over
OTLP/HTTP to any collector (MLflow's tracking server takes them at ``/v1/traces``, Arize Phoenix at
``/v1/traces`` too).

Spans are built from the traffic log's rows after they are redacted, in the log writer's thread: the
request path neither builds nor exports anything, and a span carries only what the log may keep
(never an API key: the key's id at most). Each span has the request's own start and end times.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from openinference.semconv.trace import OpenInferenceSpanKindValues, SpanAttributes
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

SERVICE = "aire-gateway"


class RequestTracer:
    def __init__(self, endpoint: str, headers: dict[str, str] | None = None, service: str = SERVICE) -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, headers=headers)))
        self.tracer = self.provider.get_tracer("aire.gateway")
        self.exported = 0

    def spans(self, rows: list[dict[str, Any]]) -> None:
        """One span per (redacted) traffic log row."""
        for row in rows:
            start = _ns(row["at"])
            end = start + int((row.get("e2e_ms") or 0.0) * 1e6)
            name = "ChatCompletion" if row.get("api") == "chat" else "Completion"
            if row.get("kind") == "mirrored":
                name += " (mirror)"
            span = self.tracer.start_span(name, start_time=start, attributes=_attributes(row))
            failed = bool(row.get("error")) or int(row.get("status") or 0) >= 400
            span.set_status(Status(StatusCode.ERROR, str(row.get("error") or row.get("status"))[:200]) if failed
                            else Status(StatusCode.OK))  # fmt: skip
            span.end(end_time=end)
            self.exported += 1

    def close(self) -> None:
        """Export what is queued, then stop (the gateway's shutdown)."""
        self.provider.force_flush(10_000)
        self.provider.shutdown()


def _ns(at: datetime) -> int:
    return int(at.timestamp() * 1e9)


def _attributes(row: dict[str, Any]) -> dict[str, Any]:
    prompt_tokens, completion_tokens = row.get("prompt_tokens"), row.get("completion_tokens")
    attrs: dict[str, Any] = {
        SpanAttributes.OPENINFERENCE_SPAN_KIND: OpenInferenceSpanKindValues.LLM.value,
        SpanAttributes.LLM_MODEL_NAME: row.get("served_model") or "",
        SpanAttributes.LLM_INVOCATION_PARAMETERS: json.dumps(row.get("params") or {}),
        SpanAttributes.INPUT_VALUE: row.get("prompt") or "",
        SpanAttributes.INPUT_MIME_TYPE: "application/json" if row.get("api") == "chat" else "text/plain",
        SpanAttributes.OUTPUT_VALUE: row.get("response") or "",
        "aire.request_id": row["request_id"],
        "aire.kind": row.get("kind") or "served",
        "aire.route": row.get("route") or "",
        "aire.model": row.get("model") or "",
        "aire.version": row.get("version") or "",
        "aire.cache": row.get("cache") or "miss",
        "aire.stream": bool(row.get("stream")),
        "http.response.status_code": int(row.get("status") or 0),
    }
    if prompt_tokens is not None:
        attrs[SpanAttributes.LLM_TOKEN_COUNT_PROMPT] = prompt_tokens
    if completion_tokens is not None:
        attrs[SpanAttributes.LLM_TOKEN_COUNT_COMPLETION] = completion_tokens
        attrs[SpanAttributes.LLM_TOKEN_COUNT_TOTAL] = (prompt_tokens or 0) + completion_tokens
    if row.get("ttft_ms") is not None:
        attrs["aire.ttft_ms"] = row["ttft_ms"]
    if row.get("key_id"):
        attrs["aire.key_id"] = row["key_id"]
    return attrs
