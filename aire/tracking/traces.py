"""Per-sample MLflow traces and the run's dataset: what MLflow's GenAI views (Traces, Evaluation runs) read.

Each evaluated sample becomes one trace, made after the fact with the timestamps aire measured: a root
span (request = the prompt, response = the output text) and a child span for the model call carrying
TTFT, TPOT, end-to-end time and tokens. Its scores are Feedback assessments (a judge's explanation as
the rationale; an unscored sample as an error, never a 0), the reference an Expectation. Traces carry
the run id in ``mlflow.sourceRun`` metadata and are linked to the run, as ``mlflow.genai.evaluate``
does, so the run's evaluation view lists them; ``aire.sample_id`` (and MLflow's eval request id) is
the same for one input across runs, which is how two arms' rows line up.

Speed: a trace with its assessments is one ``start_trace`` transaction (MLflow's store writes the
assessments in the same insert), and every span of the run goes in one ``log_spans`` call per chunk;
see ``benchmarks/throughput.py`` for what that costs at N = 1,000.

Nothing secret is recorded: rows hold no keys, and the endpoint attributes are the fields
``EndpointConfig.identity()`` declares safe (name, served model), never the key or its variable.
"""

from __future__ import annotations

import json
import math
import secrets
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aire.core.types import Sample

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from aire.store.schema import ResultRow

SAMPLE_ID_TAG = "aire.sample_id"
_SPAN_CHUNK = 500  # spans per log_spans call: one transaction each, bounded statement size
_LINK_CHUNK = 100  # MLflow's own batch size for link_traces_to_run (mlflow.genai.utils.trace_utils)


def _endpoint_of(params: dict[str, Any]) -> dict[str, Any]:
    # An offline run's params hold the endpoint identity at top level; a comparison arm's under "endpoint".
    ident = params.get("endpoint")
    source = ident if isinstance(ident, dict) else params
    name = source.get("endpoint") if isinstance(ident, dict) else ident
    return {"endpoint": name, "served_model": source.get("served_model"), "model_version": source.get("model_version")}


def _ns(t: datetime | None) -> int:
    if t is None:  # a row built in memory, never stored: it ended about now
        t = datetime.now(UTC)
    if t.tzinfo is None:  # the store keeps UTC; SQLite may hand it back naive
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1e9)


def _inputs(sample: Sample | None) -> dict[str, Any]:
    if sample is None:
        return {}
    if isinstance(sample.prompt, str):
        return {"prompt": sample.prompt}
    return {"messages": [m.model_dump(exclude_none=True) for m in sample.prompt]}


def _span_dict(
    trace_hex: str,
    span_hex: str,
    parent_hex: str | None,
    name: str,
    start_ns: int,
    end_ns: int,
    attributes: dict[str, Any],
    error: str | None,
) -> dict[str, Any]:
    import base64

    def b64(hex_id: str) -> str:
        return base64.b64encode(bytes.fromhex(hex_id)).decode()

    return {
        "trace_id": b64(trace_hex),
        "span_id": b64(span_hex),
        "parent_span_id": b64(parent_hex) if parent_hex else None,
        "name": name,
        "start_time_unix_nano": start_ns,
        "end_time_unix_nano": end_ns,
        "events": [],
        "status": {"code": "STATUS_CODE_ERROR" if error else "STATUS_CODE_OK", "message": error or ""},
        # MLflow stores span attribute values JSON-encoded (Span.to_dict / from_dict).
        "attributes": {k: json.dumps(v) for k, v in attributes.items() if v is not None},
    }


def _assessments(row: ResultRow, sample: Sample | None, score_keys: Sequence[str], run_id: str) -> list[Any]:
    from mlflow.entities import AssessmentError, AssessmentSource, Expectation, Feedback

    meta = {"mlflow.assessment.sourceRunId": run_id}
    out: list[Any] = []
    scores, explanations = row.scores, row.explanations or {}
    for key in score_keys:
        value = scores.get(key, math.nan)
        rationale = explanations.get(key) or None
        # An explanation means a judge gave the score; without one it is a code metric.
        source = AssessmentSource(source_type="LLM_JUDGE" if rationale else "CODE", source_id=key)
        if math.isfinite(value):
            out.append(Feedback(name=key, value=value, rationale=rationale, source=source, metadata=meta))
        else:
            # Unscored is not a 0: MLflow's own form for "no value" is a Feedback with an error.
            reason = rationale or ("request failed" if row.error_type else "not scored")
            error = AssessmentError(error_code="NOT_SCORED", error_message=reason)
            out.append(Feedback(name=key, value=None, error=error, rationale=rationale, source=source, metadata=meta))
    if sample is not None and sample.reference is not None:
        out.append(
            Expectation(
                name="expected_response",
                value=sample.reference,
                source=AssessmentSource(source_type="HUMAN", source_id="suite"),
                metadata=meta,
            )
        )
    return out


@dataclass
class _Trace:
    """One sample's trace, in the forms both writers need."""

    info: Any  # mlflow.entities.TraceInfo, assessments included
    spans: list[dict[str, Any]]  # Span.to_dict() form (what the spans table's content column holds)
    rows: list[dict[str, Any]]  # the spans table's other columns, one per span


def build_traces(
    experiment_id: str,
    run_id: str,
    *,
    rows: Sequence[ResultRow],
    samples: dict[str, Sample],
    score_keys: Sequence[str],
    params: dict[str, Any],
    limit: int | None = None,
) -> list[_Trace]:
    """The traces of up to ``limit`` result rows (None: all; ``Settings.trace_samples``), nothing written yet."""
    from mlflow.entities import TraceInfo, TraceLocation, TraceState

    endpoint = _endpoint_of(params)
    location = TraceLocation.from_experiment_id(experiment_id)
    out: list[_Trace] = []
    for row in rows if limit is None else rows[:limit]:
        sample = samples.get(row.sample_id)
        chat = sample is not None and sample.is_chat
        trace_hex, root_hex, call_hex = secrets.token_hex(16), secrets.token_hex(8), secrets.token_hex(8)
        trace_id = f"tr-{trace_hex}"
        e2e_ns = int((row.e2e_s or 0.0) * 1e9)
        end_ns = _ns(row.created_at)
        start_ns = end_ns - e2e_ns
        error = None if row.error_type is None else f"{row.error_type} {row.error_status or ''}: {row.error_message}"
        inputs, outputs = _inputs(sample), row.text
        usage = None
        if row.prompt_tokens is not None or row.output_tokens is not None:
            pin, pout = row.prompt_tokens or 0, row.output_tokens or 0
            usage = {"input_tokens": pin, "output_tokens": pout, "total_tokens": pin + pout}
        common = {"mlflow.traceRequestId": trace_id, "mlflow.spanInputs": inputs, "mlflow.spanOutputs": outputs}
        root_attrs = {**common, "mlflow.spanType": "CHAIN", SAMPLE_ID_TAG: row.sample_id}
        call_type = "CHAT_MODEL" if chat else "LLM"
        call_attrs = {
            **common,
            "mlflow.spanType": call_type,
            "mlflow.llm.model": endpoint["served_model"],
            "mlflow.chat.tokenUsage": usage,
            **{
                k: None if v is None else v * 1000
                for k, v in (("ttft_ms", row.ttft_s), ("tpot_ms", row.tpot_s), ("e2e_ms", row.e2e_s))
            },
            "prompt_tokens": row.prompt_tokens,
            "output_tokens": row.output_tokens,
            "finish_reason": row.finish_reason,
            "attempts": row.attempts,
            "endpoint": endpoint["endpoint"],
            "served_model": endpoint["served_model"],
            "model_version": endpoint["model_version"],
        }
        call_name = "chat.completions" if chat else "completions"
        status = "ERROR" if error else "OK"
        spans = [
            _span_dict(trace_hex, root_hex, None, "aire.sample", start_ns, end_ns, root_attrs, error),
            _span_dict(trace_hex, call_hex, root_hex, call_name, start_ns, end_ns, call_attrs, error),
        ]
        span_rows = [
            {
                "trace_id": trace_id,
                "span_id": root_hex,
                "parent_span_id": None,
                "name": "aire.sample",
                "type": "CHAIN",
                "status": status,
                "start_time_unix_nano": start_ns,
                "end_time_unix_nano": end_ns,
                "model_name": None,
            },
            {
                "trace_id": trace_id,
                "span_id": call_hex,
                "parent_span_id": root_hex,
                "name": call_name,
                "type": call_type,
                "status": status,
                "start_time_unix_nano": start_ns,
                "end_time_unix_nano": end_ns,
                "model_name": endpoint["served_model"],
            },
        ]
        metadata = {"mlflow.sourceRun": run_id, "mlflow.trace_schema.version": "3"}
        if usage is not None:
            metadata["mlflow.trace.tokenUsage"] = json.dumps(usage)
        info = TraceInfo(
            trace_id=trace_id,
            trace_location=location,
            request_time=start_ns // 1_000_000,
            execution_duration=e2e_ns // 1_000_000,
            state=TraceState.ERROR if error else TraceState.OK,
            request_preview=_preview(inputs),
            response_preview=outputs[:1000],
            client_request_id=row.sample_id[:50],
            trace_metadata=metadata,
            tags={
                SAMPLE_ID_TAG: row.sample_id,
                "mlflow.eval.requestId": row.sample_id,
                "mlflow.traceName": "aire.sample",
            },
            assessments=_assessments(row, sample, score_keys, run_id),
        )
        out.append(_Trace(info=info, spans=spans, rows=span_rows))
    return out


def log_traces(
    mc: MlflowClient,
    experiment_id: str,
    run_id: str,
    *,
    rows: Sequence[ResultRow],
    samples: dict[str, Sample],
    score_keys: Sequence[str],
    params: dict[str, Any],
    limit: int | None = None,
) -> list[str]:
    """One trace per result row (up to ``limit``; None: all), linked to ``run_id``; returns the trace ids."""
    from mlflow.entities import Span
    from mlflow.tracing.client import TracingClient

    traces = build_traces(
        experiment_id, run_id, rows=rows, samples=samples, score_keys=score_keys, params=params, limit=limit
    )
    if not traces:
        return []
    tracing = TracingClient(mc.tracking_uri)
    if _bulk_writable(tracing.store):
        _write_bulk(tracing.store, experiment_id, traces)
    else:
        # Any other tracking store (a remote server): MLflow's public calls, one transaction a trace.
        for t in traces:
            tracing.start_trace(t.info)
        spans = [Span.from_dict(d) for t in traces for d in t.spans]
        for i in range(0, len(spans), _SPAN_CHUNK):
            tracing.log_spans(experiment_id, spans[i : i + _SPAN_CHUNK])
    trace_ids = [t.info.trace_id for t in traces]
    if not _bulk_writable(tracing.store):
        # The SQL store finds a run's traces by their mlflow.sourceRun metadata as well as by these
        # links (its search ORs the two), so only other stores get the links (0.25 s per 1,000).
        for i in range(0, len(trace_ids), _LINK_CHUNK):
            mc.link_traces_to_run(trace_ids[i : i + _LINK_CHUNK], run_id)
    return trace_ids


def _bulk_writable(store: Any) -> bool:
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.store.tracking.utils.sql_trace_rollups import rollups_enabled

    # Opt-in rollup tables would need the bookkeeping start_trace does: leave those to MLflow's calls.
    return isinstance(store, SqlAlchemyStore) and not rollups_enabled()


def _assessment_row(a: Any, trace_id: str, experiment_id: int, trace_ms: int, now: int) -> dict[str, Any]:
    """The assessments table's row for one assessment: SqlAssessments.from_mlflow_entity's fields,
    without building an ORM object per assessment (a quarter of a second per 1,000 samples)."""
    from mlflow.store.tracking.utils.trace_analytics import assessment_aggregate
    from mlflow.tracing.utils import generate_assessment_id

    if a.feedback is not None:
        kind, value = "feedback", a.feedback.value
        error = json.dumps(a.feedback.error.to_dictionary()) if a.feedback.error else None
    else:
        kind, value, error = "expectation", a.expectation.value, None
    aggregate, numeric = assessment_aggregate(value)
    return {
        "assessment_id": generate_assessment_id(),
        "trace_id": trace_id,
        "name": a.name,
        "assessment_type": kind,
        "value": json.dumps(value),
        "error": error,
        "created_timestamp": now,
        "last_updated_timestamp": now,
        "experiment_id": experiment_id,
        "trace_timestamp_ms": trace_ms,
        "aggregate_value": aggregate,
        "is_numeric_value": numeric,
        "source_type": a.source.source_type,
        "source_id": a.source.source_id,
        "run_id": a.run_id,
        "span_id": a.span_id,
        "rationale": a.rationale,
        "overrides": None,
        "valid": True,
        "assessment_metadata": json.dumps(a.metadata) if a.metadata else None,
    }


def _write_bulk(store: Any, experiment_id: str, traces: Sequence[_Trace]) -> None:
    """Every trace, tag, metadata entry, assessment and span of a run in one transaction.

    MLflow's ``start_trace`` writes one trace per transaction with ORM bookkeeping, ~20 ms a trace
    here (20 s for 1,000 samples), and ``create_assessment`` ~3.5 ms an assessment: far past the 10%
    of a run this may cost. On a SQL tracking store the rows ``start_trace`` and ``log_spans`` would
    write go in as bulk inserts into MLflow's own tables (its ORM models' tables, its
    ``analytics_columns_from_metadata`` and ``assessment_aggregate``). The spans are written as
    MLflow-native spans (mlflow.* attribute keys), which is all ``translate_span_when_storing`` would
    change. ``tests/unit/test_tracking_traces.py`` reads everything back through MLflow's public API:
    that is what catches a schema change in a newer MLflow (pinned to 3.17.2).
    """
    import time

    from mlflow.store.tracking.dbmodels.models import (
        SqlAssessments,
        SqlSpan,
        SqlTraceInfo,
        SqlTraceMetadata,
        SqlTraceTag,
    )
    from mlflow.store.tracking.utils.trace_analytics import analytics_columns_from_metadata
    from sqlalchemy import insert

    experiment = store.get_experiment(experiment_id)
    exp = int(experiment_id)
    now = int(time.time() * 1000)
    trace_rows, tag_rows, meta_rows, assessment_rows, span_rows = [], [], [], [], []
    for t in traces:
        info, tid = t.info, t.info.trace_id
        metadata = {**info.trace_metadata, "mlflow.trace.infoFinalized": "true"}  # as start_trace marks it
        trace_rows.append(
            {
                "request_id": tid,
                "experiment_id": exp,
                "timestamp_ms": info.request_time,
                "execution_time_ms": info.execution_duration,
                "status": info.state.value,
                "client_request_id": info.client_request_id,
                "request_preview": info.request_preview,
                "response_preview": info.response_preview,
                "trace_name": info.tags.get("mlflow.traceName"),
                **analytics_columns_from_metadata(metadata),
            }
        )
        tags = {k: v for k, v in info.tags.items() if k != "mlflow.traceName"}
        # Where MLflow would keep trace artifacts, and that the spans live in the tracking store.
        tags["mlflow.artifactLocation"] = store._get_trace_artifact_location_tag(experiment, tid).value
        tags["mlflow.trace.spansLocation"] = "TRACKING_STORE"
        tag_rows += [{"request_id": tid, "key": k, "value": v} for k, v in tags.items()]
        meta_rows += [{"request_id": tid, "key": k, "value": v} for k, v in metadata.items()]
        assessment_rows += [_assessment_row(a, tid, exp, info.request_time, now) for a in info.assessments]
        for span, cols in zip(t.spans, t.rows, strict=True):
            span_rows.append({**cols, "experiment_id": exp, "content": json.dumps(span, ensure_ascii=False)})
    with store.ManagedSessionMaker() as session:
        for model, values in (
            (SqlTraceInfo, trace_rows),
            (SqlTraceTag, tag_rows),
            (SqlTraceMetadata, meta_rows),
            (SqlAssessments, assessment_rows),
            (SqlSpan, span_rows),
        ):
            if values:
                # One executemany takes its columns from the first row: give every row every key
                # (a failed sample's trace has no token columns; the next one's would be dropped).
                keys = {k for v in values for k in v}
                session.execute(insert(model.__table__), [{k: v.get(k) for k in keys} for v in values])


def _preview(inputs: dict[str, Any]) -> str:
    # The Traces table's Request column: the prompt itself, or the last user message of a chat.
    if "prompt" in inputs:
        return str(inputs["prompt"])[:1000]
    users = [m.get("content", "") for m in inputs.get("messages", []) if m.get("role") == "user"]
    return str(users[-1] if users else json.dumps(inputs))[:1000]


def log_dataset(
    mc: MlflowClient, run_id: str, *, name: str, version: str, samples: dict[str, Sample], source: str | None
) -> None:
    """The suite as the run's evaluation dataset: its name and content hash (MLflow keeps 36 characters
    of a digest; the full sha256 is the run's ``suite_version`` param)."""
    import mlflow.data
    import pandas as pd
    from mlflow.entities import DatasetInput, InputTag

    frame = pd.DataFrame.from_records(
        [
            {
                "sample_id": s.id,
                "inputs": json.dumps(_inputs(s)),
                "expectations": json.dumps({"expected_response": s.reference}, default=str),
            }
            for s in samples.values()
        ]
    )
    with warnings.catch_warnings():
        # A local path "can be interpreted in multiple ways" (two local source classes): both are right.
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(frame, source=source, name=name, digest=version[:36])
    mc.log_inputs(
        run_id,
        datasets=[DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", "eval")])],
    )
