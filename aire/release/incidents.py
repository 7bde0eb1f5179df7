"""Incidents, automatic rollback and the circuit breaker on promotions.

A breach found by the monitor opens an incident for the version that holds ``production``. Opening is
idempotent (one open incident per version, enforced by a unique key in the store), and only the run
that opened it rolls back: two monitor runs that see the same breach roll back once.

Rollback moves ``production`` to the last good version: walking the alias history back from the
newest move, the most recent earlier production version that has no open incident. With none, it is
an error (``RollbackError``), never a guess. Then the configured actuator is called so the serving
layer follows the registry: ``dry-run`` (log only), ``webhook:URL`` (POST JSON), ``shell:COMMAND``
(environment ``AIRE_ROLLBACK_*``).

While an incident is open, promoting its version is refused (the circuit breaker), until
``aire incidents clear ID --reason ...``.
"""

from __future__ import annotations

import getpass
import json
import os
import shlex
import subprocess
import urllib.request
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aire.core.errors import AireError, InputError
from aire.core.settings import Settings
from aire.store.store import IncidentRow, Store

OPEN, CLEARED = "open", "cleared"


class RollbackError(AireError):
    """No earlier good version to roll back to, or the move failed."""


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
    from aire.release.registry import PromotionRefused

    incident = open_for(store, model, version)
    if incident is not None:
        raise PromotionRefused(
            f"v{version} of {model} has open incident #{incident.id} ({incident.summary}); "
            f"clear it first: aire incidents clear {incident.id} --reason ..."
        )


def last_good_version(store: Store, model: str, failing: str) -> str:
    """The most recent earlier production version without an open incident; an error when none."""
    from aire.release.registry import history

    moves = [m for m in history(store, model) if m.alias == "production"]
    for move in reversed(moves):
        for candidate in (move.version, move.previous_version):
            if candidate and candidate != failing and open_for(store, model, candidate) is None:
                return candidate
    raise RollbackError(
        f"no earlier good production version of {model} to roll back to from v{failing} "
        f"(alias history has {len(moves)} production move(s))"
    )


def rollback(settings: Settings, store: Store, incident: Incident) -> str:
    """Move ``production`` to the last good version and call the actuator; returns that version."""
    from aire.release import registry

    target = last_good_version(store, incident.model, incident.version)
    registry.promote(
        settings,
        store,
        model=incident.model,
        alias="production",
        version=target,
        verdict="ROLLBACK",
        force=True,
        reason=f"automatic rollback: incident #{incident.id}: {incident.summary}",
        actor="aire-monitor",
    )
    result = actuate(settings.actuator, incident, target)
    update_incident(store, incident.id, rolled_back_to=target, actuator=result)
    return target


def actuate(actuator: str, incident: Incident, target: str) -> dict[str, Any]:
    """Tell the serving layer to follow the registry. Never raises: the result is recorded."""
    payload = {
        "incident": incident.id,
        "model": incident.model,
        "from_version": incident.version,
        "to_version": target,
        "summary": incident.summary,
    }
    kind, _, arg = actuator.partition(":")
    try:
        if kind == "dry-run":
            return {"kind": "dry-run", "ok": True, "would": payload}
        if kind == "webhook":
            req = urllib.request.Request(
                arg, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
            )
            with urllib.request.urlopen(req, timeout=10) as resp:
                return {"kind": "webhook", "ok": 200 <= resp.status < 300, "status": resp.status}
        if kind == "shell":
            env = {**os.environ, **{f"AIRE_ROLLBACK_{k.upper()}": str(v) for k, v in payload.items()}}
            proc = subprocess.run(shlex.split(arg), env=env, capture_output=True, text=True, timeout=120)
            return {
                "kind": "shell",
                "ok": proc.returncode == 0,
                "returncode": proc.returncode,
                "output": (proc.stdout + proc.stderr)[-2000:],
            }
    except Exception as exc:  # the rollback in the registry stands; the failed actuation is on record
        return {"kind": kind, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"kind": kind, "ok": False, "error": f"unknown actuator {actuator!r}: use dry-run, webhook:URL or shell:CMD"}


def respond(
    settings: Settings,
    store: Store,
    *,
    model: str,
    version: str,
    severity: str,
    summary: str,
    evidence: dict[str, Any],
    roll_back: bool,
) -> tuple[Incident, str | None]:
    """Open the incident of a breach and, if this call opened it, roll back. Returns the incident and
    the version production moved to (None when another run already handled this breach)."""
    incident, created = open_incident(
        store, model=model, version=version, severity=severity, summary=summary, evidence=evidence
    )
    if not created or not roll_back:
        return incident, None
    return incident, rollback(settings, store, incident)
