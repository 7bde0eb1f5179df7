"""The plans this process is running, by id: what a step given only a plan id and a shard index works on.

Prefect tasks take small serialisable arguments (Prefect walks a task's arguments on every call, and a
worker in another process could not receive a live client anyway). The flow prepares a plan, which
puts it here; each task looks it up by id. A plan holds its open clients and writers while it sends,
so every shard of a run shares one client and the run's concurrency holds across all of them.
"""

from __future__ import annotations

from typing import Any, TypeVar

P = TypeVar("P")

_PLANS: dict[str, Any] = {}


def keep(plan_id: str, plan: Any) -> None:
    """Remember ``plan`` for this process's steps; a resumed run replaces its earlier plan."""
    _PLANS[plan_id] = plan


def get(plan_id: str, kind: type[P]) -> P:
    plan = _PLANS.get(plan_id)
    if not isinstance(plan, kind):
        raise RuntimeError(f"no {kind.__name__} {plan_id!r} was prepared in this process")
    return plan


def drop(plan_id: str) -> None:
    """Forget a finished plan (its samples and bound evaluators)."""
    _PLANS.pop(plan_id, None)
