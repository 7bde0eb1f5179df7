"""Incidents and the circuit breaker on promotions.

A breach found by the monitor opens an incident for the version that holds ``production``. Opening is
idempotent (one open incident per version, enforced by a unique key in the store). While an incident
is open, promoting its version is refused (the circuit breaker), until
``aire incidents clear ID --reason ...``. Rolling back is aire.release.rollback's job.
"""

from __future__ import annotations

import getpass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from aire.core.errors import InputError, PromotionRefused
from aire.store.store import CLEARED, OPEN, IncidentRow, Store

__all__ = [
    "CLEARED",
    "OPEN",
    "Incident",
    "check_breaker",
    "clear",
    "list_incidents",
    "open_for",
    "open_incident",
    "update_incident",
]


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
    row, created = store.open_incident(
        model=model, version=version, severity=severity, summary=summary, evidence=evidence
    )
    return _incident(row), created


def open_for(store: Store, model: str, version: str) -> Incident | None:
    row = store.open_incident_for(model, version)
    return None if row is None else _incident(row)


def update_incident(store: Store, incident_id: int, **values: Any) -> None:
    store.update_incident(incident_id, **values)


def list_incidents(store: Store, model: str | None = None, include_cleared: bool = True) -> list[Incident]:
    return [_incident(r) for r in store.incidents(model, include_cleared=include_cleared)]


def clear(store: Store, incident_id: int, reason: str) -> Incident:
    """Close an incident; its version may be promoted again."""
    if not reason.strip():
        raise InputError("clearing an incident needs --reason (it is recorded)", field="reason")
    row = store.clear_incident(incident_id, reason=reason, by=getpass.getuser())
    if row is None:
        raise InputError(f"no incident {incident_id}", field="id")
    return _incident(row)


def check_breaker(store: Store, model: str, version: str) -> None:
    """The circuit breaker: refuse to promote a version with an open incident."""

    incident = open_for(store, model, version)
    if incident is not None:
        raise PromotionRefused(
            f"v{version} of {model} has open incident #{incident.id} ({incident.summary}); "
            f"clear it first: aire incidents clear {incident.id} --reason ..."
        )
