"""The results store (SQLAlchemy): runs and per-sample results, committed as they finish; the alias
history and incidents; Alembic migrations (``upgrade``, ``current_revision``), run before first use.

Names are loaded on first use, so importing one stage does not import its neighbours' dependencies."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aire.store.migrate import current_revision, upgrade
    from aire.store.store import FAILED, FINISHED, AliasMove, IncidentRow, ResultRow, RunRow, SampleResult, Store

_WHERE = {
    "AliasMove": "store",
    "FAILED": "store",
    "FINISHED": "store",
    "IncidentRow": "store",
    "ResultRow": "store",
    "RunRow": "store",
    "SampleResult": "store",
    "Store": "store",
    "current_revision": "migrate",
    "upgrade": "migrate",
}
__all__ = [
    "FAILED",
    "FINISHED",
    "AliasMove",
    "IncidentRow",
    "ResultRow",
    "RunRow",
    "SampleResult",
    "Store",
    "current_revision",
    "upgrade",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"aire.store.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'aire.store' has no attribute {name!r}")
