"""The route table: served name -> the upstream of the registered version holding ``production`` (and
``challenger``, for the canary split and the mirror), re-read from the MLflow registry every few seconds.

A version's upstream comes from the tags ``aire.release.registry.register`` wrote (``base_url``,
``served_model``, ``endpoint``); its API key, if any, from the aire.yaml endpoint of that name (read
from the environment at request time, never stored). A version with an open incident receives no
traffic: the route falls back to the newest earlier version in the alias history that has none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from aire.client.config import AireConfig
from aire.core.settings import Settings
from aire.gateway.config import GatewayConfig
from aire.release.incidents import open_for
from aire.store.store import Store

log = logging.getLogger("aire.gateway")


@dataclass(frozen=True)
class Upstream:
    """One registered version's server, as the gateway sends to it."""

    model: str  # the registered model
    version: str
    base_url: str
    served_model: str
    endpoint: str | None = None  # the aire.yaml endpoint it was registered from
    api_key_env: str | None = None

    @property
    def label(self) -> str:
        return f"{self.model}/{self.version}"


@dataclass(frozen=True)
class Route:
    name: str
    production: Upstream | None
    challenger: Upstream | None = None
    canary: float = 0.0
    mirror: float = 0.0
    # Why production is not the alias holder (an open incident), for /v1/models and the logs.
    note: str | None = None
    # Where production's requests go while its circuit breaker is open: the newest earlier production
    # version with no open incident (None: no such version; the requests get 503).
    fallback: Upstream | None = None

    def pick(self, rand: Callable[[], float] = random.random) -> Upstream | None:
        """The upstream this request goes to: the challenger for a ``canary`` share, else production."""
        if self.challenger is not None and self.canary > 0 and rand() < self.canary:
            return self.challenger
        return self.production


@dataclass
class RouteTable:
    """The routes as last read from the registry; ``refresh`` re-reads them (blocking: run it in a thread)."""

    settings: Settings
    config: GatewayConfig
    endpoints: AireConfig
    routes: dict[str, Route] = field(default_factory=dict)
    refreshed: int = 0
    errors: int = 0

    def refresh(self) -> dict[str, Route]:
        """Re-read every route's aliases; a route whose registry read fails keeps its last known state."""
        from mlflow.exceptions import MlflowException

        from aire.tracking.runs import client

        mc = client(self.settings)
        store = Store(self.settings.resolved_store_url)
        new = dict(self.routes)
        for name, rc in self.config.routes.items():
            model = self.config.registered_model(name)
            try:
                production, note = self._serving(mc, store, model)
                fallback = self._last_good(mc, store, model, production.version) if production else None
                challenger = self._upstream(mc, model, "challenger")
            except MlflowException as exc:
                self.errors += 1
                log.warning("route %s: registry read failed, keeping the last routes: %s", name, exc)
                continue
            if challenger is not None and production is not None and challenger.version == production.version:
                challenger = None  # nothing to compare or split against
            new[name] = Route(name, production, challenger, rc.canary, rc.mirror, note, fallback)
        self.routes = new
        self.refreshed += 1
        return new

    def _serving(self, mc: object, store: Store, model: str) -> tuple[Upstream | None, str | None]:
        holder = self._upstream(mc, model, "production")
        if holder is None or open_for(store, model, holder.version) is None:
            return holder, None
        # An open incident on the holder: the newest earlier production version without one serves.
        fallback = self._last_good(mc, store, model, holder.version)
        if fallback is not None:
            return fallback, f"v{holder.version} has an open incident: serving v{fallback.version}"
        return None, f"v{holder.version} has an open incident and no earlier version is clear"

    def _last_good(self, mc: object, store: Store, model: str, besides: str) -> Upstream | None:
        """The newest production version in the alias history, other than ``besides``, with no open incident."""
        moves = [m for m in store.alias_history(model) if m.alias == "production" and m.version != besides]
        for move in sorted(moves, key=lambda m: m.seq, reverse=True):
            if open_for(store, model, move.version) is None:
                found = self._version(mc, model, move.version)
                if found is not None:
                    return found
        return None

    def _upstream(self, mc: object, model: str, alias: str) -> Upstream | None:
        from mlflow.exceptions import MlflowException

        try:
            mv = mc.get_model_version_by_alias(model, alias)  # type: ignore[attr-defined]
        except MlflowException as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "not found" in str(exc).lower():
                return None  # no such alias (yet): the route answers 503 until one is set
            raise
        return self._from_version(model, mv)

    def _version(self, mc: object, model: str, version: str) -> Upstream | None:
        return self._from_version(model, mc.get_model_version(model, version))  # type: ignore[attr-defined]

    def _from_version(self, model: str, mv: object) -> Upstream | None:
        tags: dict[str, str] = dict(mv.tags or {})  # type: ignore[attr-defined]
        if not tags.get("base_url") or not tags.get("served_model"):
            log.warning("%s v%s has no base_url/served_model tags: not routable", model, mv.version)  # type: ignore[attr-defined]
            return None
        endpoint = tags.get("endpoint") or None
        configured = self.endpoints.endpoints.get(endpoint) if endpoint else None
        return Upstream(
            model=model,
            version=str(mv.version),  # type: ignore[attr-defined]
            base_url=tags["base_url"].rstrip("/"),
            served_model=tags["served_model"],
            endpoint=endpoint,
            api_key_env=configured.api_key_env if configured else None,
        )

    async def keep_fresh(self, stop: asyncio.Event, also: Callable[[], object] | None = None) -> None:
        """Refresh every ``refresh_s`` until ``stop`` is set (and ``also``, e.g. the API keys); the registry
        calls run off the event loop."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.refresh_s)
            if stop.is_set():
                return
            try:
                await asyncio.to_thread(self.refresh)
                if also is not None:
                    await asyncio.to_thread(also)
            except Exception:  # a refresh must never stop the gateway: the last routes stay
                self.errors += 1
                log.exception("route refresh failed")
