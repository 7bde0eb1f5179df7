"""A circuit breaker per upstream version (purgatory), on errors and on latency.

A request fails its breaker when the upstream could not be reached or answered 5xx (after the
gateway's retries), when a stream broke off, or when its first token took longer than ``slow_ttft_s``.
``threshold`` consecutive failures open the breaker for ``open_s``; then one request is let through
(half-open) and decides. While production's breaker is open, its requests go to the route's fallback
(the newest earlier production version with no open incident), and an incident is opened for the
version in the monitor's incidents table (one per version, enforced there), so the next route refresh
keeps traffic off it until someone clears the incident.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from aire.gateway.upstream import Outcome

__all__ = ["BreakerOpen", "Breakers", "Failed", "OpenedState"]

BreakerOpen = OpenedState  # what entering an open breaker raises


class Failed(Exception):
    """Raised inside a breaker's context to count the request as a failure (its response is kept)."""


@dataclass
class Breakers:
    threshold: int = 5
    open_s: float = 30.0
    slow_ttft_s: float | None = None
    factory: AsyncCircuitBreakerFactory = field(init=False)
    states: dict[str, str] = field(default_factory=dict)  # version label -> "closed" / "opened" / "half-opened"
    opened: int = 0

    def __post_init__(self) -> None:
        self.factory = AsyncCircuitBreakerFactory(default_threshold=self.threshold, default_ttl=self.open_s)
        self.factory.add_listener(self._hook)

    def _hook(self, name: str, kind: str, event: object) -> None:
        if kind == "state_changed":
            state = str(getattr(event, "state", ""))
            if state == "opened" and self.states.get(name) != "opened":
                self.opened += 1
            self.states[name] = state

    async def get(self, label: str) -> object:
        # A client that hung up (its handler cancelled, its socket reset) says nothing about the upstream.
        return await self.factory.get_breaker(label, exclude=[asyncio.CancelledError, ConnectionResetError])

    def failed(self, outcome: Outcome) -> bool:
        """Whether this answered request counts against its upstream."""
        if outcome.status >= 500 or (outcome.error is not None and outcome.status in (0, 200)):
            return True
        c = outcome.completion
        return bool(self.slow_ttft_s is not None and c is not None and c.ttft_s is not None
                    and c.ttft_s > self.slow_ttft_s)  # fmt: skip

    def is_open(self, label: str) -> bool:
        return self.states.get(label) == "opened"
