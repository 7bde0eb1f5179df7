"""The store: every query aire makes on its tables (aire/store/schema.py) is a method here.

Runs and their per-sample results (written by aire.store.writer), the registry's alias history, the
monitor's incidents, and the look-ups the monitor makes on past runs. SQLite in WAL mode by default,
PostgreSQL (``postgresql+psycopg://``) or any SQLAlchemy URL by setting. ``Store(url)`` shares its
URL's engine in the process (aire.store.engine) and migrates the store first (aire.store.migrate).
A rerun of an interrupted run finds it by its resume key and requests only the samples with no
successful row.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aire.core.types import Sample
from aire.store import migrate
from aire.store.engine import dispose, engine_for
from aire.store.schema import (
    CLEARED,
    FAILED,
    FINISHED,
    OPEN,
    RUNNING,
    AliasMove,
    IncidentRow,
    JudgeCalibration,
    JudgeCall,
    ResultRow,
    RunRow,
    now_utc,
)
from aire.store.writer import ResultWriter, SampleResult

__all__ = [
    "CLEARED",
    "FAILED",
    "FINISHED",
    "OPEN",
    "RUNNING",
    "AliasMove",
    "IncidentRow",
    "ResultRow",
    "ResultWriter",
    "RunRow",
    "SampleResult",
    "Store",
]


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = engine_for(url)
        migrate.ensure(url)

    def close(self) -> None:
        """Close this URL's pooled connections (every Store of the URL in this process shares them)."""
        dispose(self.url)
        migrate.forget(self.url)

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # -- runs ---------------------------------------------------------------------------------
    def find_resumable(self, resume_key: str) -> RunRow | None:
        """The newest unfinished run with this key, if any."""
        with self._session() as session:
            return session.scalars(
                select(RunRow)
                .where(RunRow.resume_key == resume_key, RunRow.status != FINISHED)
                .order_by(RunRow.created_at.desc())
                .limit(1)
            ).first()

    def latest_run(self, resume_key: str) -> RunRow | None:
        """The newest run with this key, finished or not."""
        with self._session() as session:
            return session.scalars(
                select(RunRow).where(RunRow.resume_key == resume_key).order_by(RunRow.created_at.desc()).limit(1)
            ).first()

    def create_run(self, **values: Any) -> RunRow:
        run = RunRow(id=str(uuid.uuid4()), status=RUNNING, created_at=now_utc(), **values)
        with self._session() as session, session.begin():
            session.add(run)
        return run

    def get_run(self, run_id: str) -> RunRow | None:
        with self._session() as session:
            return session.get(RunRow, run_id)

    def runs(self, kind: str | None = None) -> list[RunRow]:
        """Every run (of one kind), oldest first."""
        query = select(RunRow).order_by(RunRow.created_at, RunRow.id)
        if kind is not None:
            query = query.where(RunRow.kind == kind)
        with self._session() as session:
            return list(session.scalars(query))

    def set_status(self, run_id: str, status: str, mlflow_run_id: str | None = None) -> None:
        values: dict[str, Any] = {"status": status}
        if status == FINISHED:
            values["finished_at"] = now_utc()
        if mlflow_run_id:
            values["mlflow_run_id"] = mlflow_run_id
        with self.engine.begin() as conn:
            conn.execute(update(RunRow).where(RunRow.id == run_id).values(**values))

    def set_params(self, run_id: str, params: dict[str, Any]) -> None:
        """Replace a run's params (the canary records its subset and baseline there)."""
        with self.engine.begin() as conn:
            conn.execute(update(RunRow).where(RunRow.id == run_id).values(params=params))

    # -- past runs, as the monitor looks them up ---------------------------------------------
    @staticmethod
    def _finished(
        suite: str,
        kind: str | None,
        exclude_kind: str | None,
        endpoint: str | None,
        params: Mapping[str, str] | None,
        exclude_id: str | None,
    ) -> list[ColumnElement[bool]]:
        where = [RunRow.suite == suite, RunRow.status == FINISHED]
        if kind is not None:
            where.append(RunRow.kind == kind)
        if exclude_kind is not None:
            where.append(RunRow.kind != exclude_kind)
        if endpoint is not None:
            where.append(RunRow.endpoint == endpoint)
        for key, value in (params or {}).items():  # JSON text equality: the same SQL on SQLite and PostgreSQL
            where.append(RunRow.params[key].as_string() == value)
        if exclude_id is not None:
            where.append(RunRow.id != exclude_id)
        return where

    def finished_runs(
        self,
        suite: str,
        *,
        kind: str | None = None,
        exclude_kind: str | None = None,
        endpoint: str | None = None,
        params: Mapping[str, str] | None = None,
        exclude_id: str | None = None,
        limit: int | None = None,
    ) -> list[RunRow]:
        """Finished runs of ``suite``, newest first; ``params``: string values the run's params must have."""
        where = self._finished(suite, kind, exclude_kind, endpoint, params, exclude_id)
        query = select(RunRow).where(*where).order_by(RunRow.finished_at.desc(), RunRow.created_at.desc())
        with self._session() as session:
            return list(session.scalars(query.limit(limit) if limit is not None else query))

    def count_finished_runs(
        self,
        suite: str,
        *,
        kind: str | None = None,
        exclude_kind: str | None = None,
        endpoint: str | None = None,
        params: Mapping[str, str] | None = None,
        exclude_id: str | None = None,
    ) -> int:
        where = self._finished(suite, kind, exclude_kind, endpoint, params, exclude_id)
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(RunRow).where(*where)).scalar_one())

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

    # -- alias history ------------------------------------------------------------------------
    def last_alias_move(self, model: str, alias: str) -> AliasMove | None:
        with self._session() as session:
            return session.scalars(
                select(AliasMove)
                .where(AliasMove.model == model, AliasMove.alias == alias)
                .order_by(AliasMove.seq.desc())
                .limit(1)
            ).first()

    def append_alias_move(self, **values: Any) -> AliasMove | None:
        """Record a move; None when its (model, alias, seq) is taken: another move committed first."""
        row = AliasMove(**values)
        with self._session() as session:
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                return None
        return row

    def alias_history(self, model: str) -> list[AliasMove]:
        """Every move of the model's aliases, oldest first."""
        with self._session() as session:
            return list(
                session.scalars(select(AliasMove).where(AliasMove.model == model).order_by(AliasMove.at, AliasMove.id))
            )

    def production_since(self, model: str, version: str) -> datetime | None:
        """When ``version`` last took ``production`` (UTC); None when the history has no such move."""
        with self._session() as session:
            at = session.scalars(
                select(AliasMove.at)
                .where(AliasMove.model == model, AliasMove.alias == "production", AliasMove.version == version)
                .order_by(AliasMove.at.desc(), AliasMove.id.desc())
                .limit(1)
            ).first()
        return at

    # -- incidents ----------------------------------------------------------------------------
    def open_incident(
        self, *, model: str, version: str, severity: str, summary: str, evidence: dict[str, Any]
    ) -> tuple[IncidentRow, bool]:
        """The open incident of this version: created now (True) or already open (False)."""
        while True:
            row = IncidentRow(
                open_key=f"{model}:{version}",
                model=model,
                version=version,
                severity=severity,
                status=OPEN,
                summary=summary,
                evidence=evidence,
                opened_at=now_utc(),
            )
            with self._session() as session:
                session.add(row)
                try:
                    session.commit()
                    return row, True
                except IntegrityError:  # the unique open_key: one open incident per version
                    session.rollback()
            existing = self.open_incident_for(model, version)
            if existing is not None:
                return existing, False
            # cleared between our insert and this read: a new breach, insert again

    def open_incident_for(self, model: str, version: str) -> IncidentRow | None:
        with self._session() as session:
            return session.scalars(select(IncidentRow).where(IncidentRow.open_key == f"{model}:{version}")).first()

    def update_incident(self, incident_id: int, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(IncidentRow).where(IncidentRow.id == incident_id).values(**values))

    def incidents(self, model: str | None = None, include_cleared: bool = True) -> list[IncidentRow]:
        query = select(IncidentRow).order_by(IncidentRow.id)
        if model:
            query = query.where(IncidentRow.model == model)
        if not include_cleared:
            query = query.where(IncidentRow.status == OPEN)
        with self._session() as session:
            return list(session.scalars(query))

    def clear_incident(self, incident_id: int, *, reason: str, by: str) -> IncidentRow | None:
        """Close an incident (its version may be promoted again); None when there is no such incident.
        One already cleared is returned as it is."""
        with self._session() as session:
            row = session.get(IncidentRow, incident_id, with_for_update=True)
            if row is None or row.status == CLEARED:
                return row
            row.status, row.open_key = CLEARED, None
            row.cleared_at, row.cleared_by, row.clear_reason = now_utc(), by, reason
            session.commit()
            return row

    # -- judge cache --------------------------------------------------------------------------
    def judge_reply(self, judge_id: str, prompt_hash: str) -> str | None:
        """The judge's stored reply to this prompt, or None when it was never asked."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(JudgeCall.reply).where(JudgeCall.judge_id == judge_id, JudgeCall.prompt_hash == prompt_hash)
            ).scalar()

    def put_judge_reply(self, judge_id: str, prompt_hash: str, reply: str) -> None:
        """Keep a reply; when two runs asked at once the first one stored stays (same prompt, same judge)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    JudgeCall.__table__.insert().values(
                        judge_id=judge_id, prompt_hash=prompt_hash, reply=reply, created_at=now_utc()
                    )
                )
        except IntegrityError:
            pass

    def count_judge_calls(self, judge_id: str | None = None) -> int:
        query = select(func.count()).select_from(JudgeCall)
        if judge_id is not None:
            query = query.where(JudgeCall.judge_id == judge_id)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    # ------------------------------------------------------------------------------ calibrations
    def put_calibration(self, record: dict[str, Any], mlflow_run_id: str | None = None) -> None:
        """Keep one calibration (``aire.judges.calibrate.Calibration`` as JSON)."""

        def finite(x: Any) -> float | None:
            return x if isinstance(x, float) and x == x else None  # NaN is stored as NULL

        with self.engine.begin() as conn:
            conn.execute(
                JudgeCalibration.__table__.insert().values(
                    judge_id=record["judge_id"],
                    judge=record["judge"],
                    evaluator=record["evaluator"],
                    suite=record["suite"],
                    n=record["n_scored"],
                    kappa=finite(record["kappa"]),
                    accuracy=finite(record["accuracy"]),
                    record=record,
                    mlflow_run_id=mlflow_run_id,
                    created_at=now_utc(),
                )
            )

    def latest_calibration(self, judge_id: str) -> dict[str, Any] | None:
        """The newest calibration of this judge identity (its JSON record), or None when never calibrated."""
        query = (
            select(JudgeCalibration.record, JudgeCalibration.mlflow_run_id)
            .where(JudgeCalibration.judge_id == judge_id)
            .order_by(JudgeCalibration.id.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else {**row.record, "mlflow_run_id": row.mlflow_run_id}
