"""The store's tables (SQLAlchemy 2 declarative): runs, per-sample results, alias history, incidents, judge
calls and judge calibrations.

The tables are created and changed by the migrations in aire/store/migrations (Alembic), never by
``create_all``: a change here needs a new revision there (tests/unit/test_migrations.py compares the
two on SQLite and PostgreSQL).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, TypeDecorator, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

RUNNING, FINISHED, FAILED = "running", "finished", "failed"  # runs.status
OPEN, CLEARED = "open", "cleared"  # incidents.status


def now_utc() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware time that reads back aware on every backend: SQLite drops the offset and
    returns naive UTC, PostgreSQL keeps it. The same DDL as ``DateTime(timezone=True)``."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        return value if value is None or value.tzinfo is not None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    resume_key: Mapped[str] = mapped_column(String(64), index=True)
    suite: Mapped[str] = mapped_column(String(200))
    suite_version: Mapped[str] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(String(200))
    served_model: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    n_samples: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default=RUNNING)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ResultRow(Base):
    __tablename__ = "results"
    __table_args__ = (UniqueConstraint("run_id", "sample_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    sample_id: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))
    slices: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    text: Mapped[str] = mapped_column(Text, default="")
    finish_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    output_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ttft_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    tpot_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    e2e_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    error_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    # NaN is not valid JSON: unscored values are stored as null and read back as NaN.
    scores_json: Mapped[dict[str, float | None]] = mapped_column(JSON, default=dict)
    explanations: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # [[token, logprob], ...] when the suite asked for them (a confidence evaluator), else null.
    logprobs: Mapped[list[list[Any]] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc)

    @property
    def scores(self) -> dict[str, float]:
        return {k: (math.nan if v is None else float(v)) for k, v in self.scores_json.items()}


class AliasMove(Base):
    """Append-only history of registry alias moves (MLflow keeps only the current mapping).

    ``seq`` numbers the moves of one (model, alias); the unique constraint makes two concurrent
    promotions that read the same state unable to both commit.
    """

    __tablename__ = "alias_history"
    __table_args__ = (UniqueConstraint("model", "alias", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(200), index=True)
    alias: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(32))
    previous_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    verdict: Mapped[str | None] = mapped_column(String(16), nullable=True)
    forced: Mapped[bool] = mapped_column(default=False)
    reason: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(200), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc)


class IncidentRow(Base):
    """A breach found by the monitor. ``open_key`` is ``model:version`` while open and NULL once
    cleared: the unique constraint lets only one open incident exist per version, which is what makes
    two monitor runs on one breach open it (and roll back) once."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    open_key: Mapped[str | None] = mapped_column(String(300), unique=True, nullable=True)
    model: Mapped[str] = mapped_column(String(200), index=True)
    version: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=OPEN)
    summary: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    rolled_back_to: Mapped[str | None] = mapped_column(String(32), nullable=True)
    actuator: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    cleared_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    clear_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class JudgeCall(Base):
    """One judge reply, kept by (judge identity, prompt hash): a resumed or repeated run, or a second
    metric asking the same judge the same thing, pays for the call once. ``judge_id`` hashes the
    endpoint, served model, weights digest and prompt template (aire.judges.identity)."""

    __tablename__ = "judge_calls"
    __table_args__ = (UniqueConstraint("judge_id", "prompt_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    judge_id: Mapped[str] = mapped_column(String(64))
    prompt_hash: Mapped[str] = mapped_column(String(64))
    reply: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc)


class JudgeCalibration(Base):
    """One ``aire judge calibrate``: a judge identity's agreement with human labels. The gate's
    ``min_kappa`` reads the newest one for the identity behind each judged metric."""

    __tablename__ = "judge_calibrations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    judge_id: Mapped[str] = mapped_column(String(64), index=True)
    judge: Mapped[str] = mapped_column(String(200))
    evaluator: Mapped[str] = mapped_column(String(200))
    suite: Mapped[str] = mapped_column(String(200))
    n: Mapped[int] = mapped_column(Integer)
    kappa: Mapped[float | None] = mapped_column(Float, nullable=True)
    accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc)


class GatewayRequest(Base):
    """One request through ``aire gateway``: what was asked and answered (redacted), by which version,
    with its timings and tokens. ``kind`` is ``served`` (the answer the client got) or ``mirrored`` (the
    challenger's answer to a shadow copy of it); the two rows of a mirrored pair share ``request_id``.
    Written off the request path in batches; deleted by age (the gateway's retention)."""

    __tablename__ = "gateway_requests"
    __table_args__ = (UniqueConstraint("request_id", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    route: Mapped[str] = mapped_column(String(200))
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    served_model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    endpoint: Mapped[str | None] = mapped_column(String(200), nullable=True)  # its aire.yaml name, if any
    api: Mapped[str] = mapped_column(String(16))  # "completions" or "chat"
    stream: Mapped[bool] = mapped_column(default=False)
    status: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    prompt: Mapped[str] = mapped_column(Text, default="")  # the prompt, or the chat messages as JSON
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # generation settings
    response: Mapped[str] = mapped_column(Text, default="")
    finish_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    e2e_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cache: Mapped[str | None] = mapped_column(String(16), nullable=True)  # "exact" / "semantic" on a hit
    key_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the API key's id, never the key


class ApiKey(Base):
    """A gateway API key, kept only as a salted SHA-256 of its secret: the key itself is shown once, by
    ``aire keys create``, and never stored. ``id`` is the key's public part (``aire-<id>-<secret>``)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    salt: Mapped[str] = mapped_column(String(32))
    digest: Mapped[str] = mapped_column(String(64))
    requests_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tokens_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
