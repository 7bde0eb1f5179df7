"""The monitor's queries of the store: earlier runs a canary compares with, resumes, or counts.

Plain functions of a ``Store``, the only place in aire.monitor that reads its tables (TODO: these become
``Store`` methods, which owns the queries elsewhere).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from aire.store import FINISHED, RunRow

if TYPE_CHECKING:
    from aire.store import Store


def finished_runs_of_suite(store: Store, suite: str) -> list[RunRow]:
    """Every finished run of ``suite`` other than canaries (offline and shadow evaluations), newest first."""
    with Session(store.engine) as session:
        return list(
            session.scalars(
                select(RunRow)
                .where(RunRow.suite == suite, RunRow.status == FINISHED, RunRow.kind != "canary")
                .order_by(RunRow.finished_at.desc())
            ).all()
        )


def probe_run(store: Store, resume_key: str) -> RunRow | None:
    """The canary run this probe started (a retried task), if any: unfinished, or finished by an attempt
    that failed after it (then nothing is requested again and the same verdict is recomputed)."""
    with Session(store.engine) as session:
        run = session.scalars(
            select(RunRow).where(RunRow.resume_key == resume_key).order_by(RunRow.created_at.desc()).limit(1)
        ).first()
    return run if run is not None and run.kind == "canary" and "sample_ids" in run.params else None


def _of_version(suite: str, identity: dict[str, Any]) -> list[Any]:
    """SQL conditions: finished canaries of this version (model, registry version, endpoint and, where
    known, its weights' digest) on the suite."""
    where = [
        RunRow.kind == "canary",
        RunRow.suite == suite,
        RunRow.endpoint == identity["endpoint"],
        RunRow.status == FINISHED,
        RunRow.params["model"].as_string() == identity["model"],
        RunRow.params["version"].as_string() == identity["version"],
    ]
    if identity.get("weights_digest"):
        where.append(RunRow.params["weights_digest"].as_string() == identity["weights_digest"])
    return where


def count_version_canaries(store: Store, suite: str, identity: dict[str, Any]) -> int:
    """How many canaries of this version (``identity``: model, version, endpoint, digest) finished on ``suite``."""
    with store.engine.connect() as conn:
        query = select(func.count()).select_from(RunRow).where(*_of_version(suite, identity))
        return int(conn.execute(query).scalar_one())


def recent_version_canaries(
    store: Store, suite: str, identity: dict[str, Any], *, exclude: str | None, limit: int
) -> list[RunRow]:
    """The newest finished canaries of this version, newest first (at most ``limit``), without ``exclude``."""
    query = select(RunRow).where(*_of_version(suite, identity))
    if exclude is not None:
        query = query.where(RunRow.id != exclude)
    with Session(store.engine) as session:
        return list(
            session.scalars(query.order_by(RunRow.finished_at.desc(), RunRow.created_at.desc()).limit(limit)).all()
        )


def production_since(store: Store, model: str, version: str) -> datetime | None:
    """When this version last took ``production`` (alias history): a run of FAILs starts over after a
    rollback and a re-promotion. None when the history has no such move."""
    from aire.release.registry import history

    moves = [m for m in history(store, model) if m.alias == "production" and m.version == version]
    return utc(moves[-1].at) if moves else None


def set_params(store: Store, run_id: str, params: dict[str, Any]) -> None:
    """Replace a run's params (the canary adds its verdicts to its run, for the next canaries to read)."""
    with store.engine.begin() as conn:
        conn.execute(update(RunRow).where(RunRow.id == run_id).values(params=params))


def utc(at: datetime) -> datetime:
    """A stored time as an aware UTC one: SQLite returns naive UTC."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
