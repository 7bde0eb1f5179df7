"""Incidents and the circuit breaker on promotions.

A breach found by the monitor opens an incident for the version that holds ``production``. Opening is
idempotent (one open incident per version, enforced by a unique key in the store). While an incident
is open, promoting its version is refused (the circuit breaker), until
``aire incidents clear ID --reason ...``. Rolling back is aire.release.rollback's job.
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aire.core.errors import InputError, PromotionRefused
from aire.store.store import IncidentRow, Store

OPEN, CLEARED = "open", "cleared"


class Incident(BaseModel):
    id: int
    model: str
    version: str
    severity: str
    status: str
    summary: str
    evidence: dict[str, Any]
    rolled_back_to: str | None
    actuator: dict[str, Any]
    mlflow_run_id: str | None
    opened_at: datetime
    cleared_at: datetime | None
    cleared_by: str | None
    clear_reason: str | None


def _incident(row: IncidentRow) -> Incident:
    return Incident.model_validate(row, from_attributes=True)


def open_incident(
    store: Store, *, model: str, version: str, severity: str, summary: str, evidence: dict[str, Any]
) -> tuple[Incident, bool]:
    """The open incident of this version: created now (True) or already open (False)."""
    row = IncidentRow(
        open_key=f"{model}:{version}",
        model=model,
        version=version,
        severity=severity,
        status=OPEN,
        summary=summary,
        evidence=evidence,
        opened_at=datetime.now(UTC),
    )
    with Session(store.engine, expire_on_commit=False) as session:
        session.add(row)
        try:
            session.commit()
            return _incident(row), True
        except IntegrityError:
            session.rollback()
    existing = open_for(store, model, version)
    if existing is None:  # cleared between our insert and this read: a new breach, try once more
        return open_incident(store, model=model, version=version, severity=severity, summary=summary, evidence=evidence)
    return existing, False


def open_for(store: Store, model: str, version: str) -> Incident | None:
    with Session(store.engine) as session:
        row = session.scalars(select(IncidentRow).where(IncidentRow.open_key == f"{model}:{version}")).first()
        return None if row is None else _incident(row)


def update_incident(store: Store, incident_id: int, **values: Any) -> None:
    with store.engine.begin() as conn:
        conn.execute(update(IncidentRow).where(IncidentRow.id == incident_id).values(**values))


def list_incidents(store: Store, model: str | None = None, include_cleared: bool = True) -> list[Incident]:
    query = select(IncidentRow).order_by(IncidentRow.id)
    if model:
        query = query.where(IncidentRow.model == model)
    if not include_cleared:
        query = query.where(IncidentRow.status == OPEN)
    with Session(store.engine) as session:
        return [_incident(r) for r in session.scalars(query)]


def clear(store: Store, incident_id: int, reason: str) -> Incident:
    """Close an incident; its version may be promoted again."""
    if not reason.strip():
        raise InputError("clearing an incident needs --reason (it is recorded)", field="reason")
    with Session(store.engine, expire_on_commit=False) as session:
        row = session.get(IncidentRow, incident_id)
        if row is None:
            raise InputError(f"no incident {incident_id}", field="id")
        if row.status == CLEARED:
            return _incident(row)
        row.status, row.open_key = CLEARED, None
        row.cleared_at, row.cleared_by, row.clear_reason = datetime.now(UTC), getpass.getuser(), reason
        session.commit()
        return _incident(row)


def check_breaker(store: Store, model: str, version: str) -> None:
    """The circuit breaker: refuse to promote a version with an open incident."""

    incident = open_for(store, model, version)
    if incident is not None:
        raise PromotionRefused(
            f"v{version} of {model} has open incident #{incident.id} ({incident.summary}); "
            f"clear it first: aire incidents clear {incident.id} --reason ..."
        )
