"""Automatic rollback: move ``production`` to the last good version and tell the serving layer.

Only the monitor run that opened a breach's incident rolls back: two runs that see the same breach
roll back once. The last good version is found by walking the alias history back from the newest
move: the most recent earlier production version that has no open incident. With none, it is an
error (``RollbackError``), never a guess. Then the configured actuator (aire.release.actuators) is
called so the serving layer follows the registry.
"""

from __future__ import annotations

from typing import Any

from aire.core.errors import RollbackError
from aire.core.settings import Settings
from aire.release.actuators import actuate
from aire.release.incidents import Incident, open_for, open_incident, update_incident
from aire.release.registry import history, promote
from aire.store.store import Store


def last_good_version(store: Store, model: str, failing: str) -> str:
    """The most recent earlier production version without an open incident; an error when none."""
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
    target = last_good_version(store, incident.model, incident.version)
    promote(
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
