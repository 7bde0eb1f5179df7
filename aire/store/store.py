"""Per-sample results in SQL (SQLAlchemy 2): SQLite in WAL mode by default, any URL by setting.

Rows are committed as samples finish, by one writer thread that commits what arrived within 50 ms in
a single transaction (group commit): the event loop that drives requests never waits on the disk, and
a crash loses at most the rows of that window (they are requested again on resume). A rerun of an
interrupted run finds it by its resume key and requests only the samples with no successful row.
"""

from __future__ import annotations

import math
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from aire.core.types import Completion, Sample, Score

RUNNING, FINISHED, FAILED = "running", "finished", "failed"


def _now() -> datetime:
    return datetime.now(UTC)


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
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


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
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)

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
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


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
    status: Mapped[str] = mapped_column(String(16), default="open")
    summary: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    rolled_back_to: Mapped[str | None] = mapped_column(String(32), nullable=True)
    actuator: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    cleared_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    clear_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


@dataclass
class SampleResult:
    """One finished sample, as handed to the writer."""

    sample: Sample
    completion: Completion
    scores: Mapping[str, Score] = field(default_factory=dict)

    def to_row(self, run_id: str, fingerprint: str) -> dict[str, Any]:
        c, err = self.completion, self.completion.error
        return {
            "run_id": run_id,
            "sample_id": self.sample.id,
            "fingerprint": fingerprint,
            "slices": dict(self.sample.slices),
            "text": c.text,
            "finish_reason": c.finish_reason,
            "prompt_tokens": c.prompt_tokens,
            "output_tokens": c.output_tokens,
            "ttft_s": c.ttft_s,
            "tpot_s": c.tpot_s,
            "e2e_s": c.e2e_s,
            "attempts": c.attempts,
            "error_type": err.type if err else None,
            "error_status": err.status if err else None,
            "error_message": err.message if err else None,
            "scores_json": {k: (None if math.isnan(s.value) else s.value) for k, s in self.scores.items()},
            "explanations": {k: s.explanation for k, s in self.scores.items() if s.explanation},
            "created_at": _now(),
        }


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    # WAL lets readers (the MLflow logger, `aire` status commands) run while the writer commits;
    # NORMAL is durable across process crashes, which is the failure resume is built for.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # -- runs ---------------------------------------------------------------------------------
    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def find_resumable(self, resume_key: str) -> RunRow | None:
        """The newest unfinished run with this key, if any."""
        with self._session() as session:
            return session.scalars(
                select(RunRow)
                .where(RunRow.resume_key == resume_key, RunRow.status != FINISHED)
                .order_by(RunRow.created_at.desc())
                .limit(1)
            ).first()

    def create_run(self, **values: Any) -> RunRow:
        run = RunRow(id=str(uuid.uuid4()), status=RUNNING, created_at=_now(), **values)
        with self._session() as session, session.begin():
            session.add(run)
        return run

    def get_run(self, run_id: str) -> RunRow | None:
        with self._session() as session:
            return session.get(RunRow, run_id)

    def set_status(self, run_id: str, status: str, mlflow_run_id: str | None = None) -> None:
        values: dict[str, Any] = {"status": status}
        if status == FINISHED:
            values["finished_at"] = _now()
        if mlflow_run_id:
            values["mlflow_run_id"] = mlflow_run_id
        with self.engine.begin() as conn:
            conn.execute(update(RunRow).where(RunRow.id == run_id).values(**values))

    # -- results ------------------------------------------------------------------------------
    def completed_ids(self, run_id: str) -> set[str]:
        """Samples that have a successful row: never requested again. Failed rows are retried."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(ResultRow.sample_id).where(ResultRow.run_id == run_id, ResultRow.error_type.is_(None))
            )
            return {r[0] for r in rows}

    def count_results(self, run_id: str) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).select_from(ResultRow).where(ResultRow.run_id == run_id)).scalar_one()
            )

    def results(self, run_id: str) -> list[ResultRow]:
        with self._session() as session:
            return list(
                session.scalars(select(ResultRow).where(ResultRow.run_id == run_id).order_by(ResultRow.sample_id))
            )

    @contextmanager
    def writer(self, run_id: str, fingerprint: Callable[[Sample], str]) -> Iterator[ResultWriter]:
        """``fingerprint(sample)`` gives the request identity stored with each row."""
        w = ResultWriter(self.engine, run_id, fingerprint)
        w.start()
        try:
            yield w
        finally:
            w.close()


class ResultWriter:
    """A thread that commits queued results in batches; ``put`` never blocks on the database.

    Rows are built (fingerprint included) on the writer thread, keeping that work off the event loop.
    """

    _STOP = object()

    def __init__(
        self, engine: Engine, run_id: str, fingerprint: Callable[[Sample], str], window_s: float = 0.05
    ) -> None:
        self.window_s = window_s  # a crash loses at most the rows of this window
        self._fingerprint = fingerprint
        self._engine = engine
        self._run_id = run_id
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=f"aire-writer-{run_id[:8]}", daemon=True)
        self._error: BaseException | None = None
        self.written = 0

    def start(self) -> None:
        self._thread.start()

    def put(self, result: SampleResult) -> None:
        if self._error is not None:
            raise RuntimeError("result writer failed") from self._error
        self._queue.put(result)

    def flush(self) -> None:
        """Block until everything put so far is committed (a sequential look reads the store)."""
        done = threading.Event()
        self._queue.put(done)
        done.wait()
        if self._error is not None:
            raise RuntimeError(f"result writer failed: {self._error}") from self._error

    def close(self) -> None:
        self._queue.put(self._STOP)
        self._thread.join()
        if self._error is not None:
            raise RuntimeError(f"result writer failed: {self._error}") from self._error

    def _loop(self) -> None:
        table = ResultRow.__table__
        stop = False
        while not stop:
            batch = [self._queue.get()]
            # Gather what arrives within a short window into one transaction. Committing every row
            # on its own costs ~0.5 ms of Python under the GIL per commit, which at hundreds of
            # samples per second starves the event loop that drives the requests.
            deadline = time.monotonic() + self.window_s
            while batch[-1] is not self._STOP and (remaining := deadline - time.monotonic()) > 0:
                try:
                    batch.append(self._queue.get(timeout=remaining))
                except queue.Empty:
                    break
            flushes = [b for b in batch if isinstance(b, threading.Event)]
            results = [b for b in batch if b is not self._STOP and not isinstance(b, threading.Event)]
            stop = any(b is self._STOP for b in batch)
            if not results or self._error is not None:
                for f in flushes:
                    f.set()
                continue
            try:
                rows = [r.to_row(self._run_id, self._fingerprint(r.sample)) for r in results]
                with self._engine.begin() as conn:
                    # A retried sample replaces its failed row: one row per sample and run.
                    conn.execute(
                        delete(table).where(
                            table.c.run_id == self._run_id, table.c.sample_id.in_([r["sample_id"] for r in rows])
                        )
                    )
                    conn.execute(table.insert(), rows)
                self.written += len(rows)
            except BaseException as exc:  # surfaced to the caller on the next put/close
                self._error = exc
            for f in flushes:
                f.set()
