"""Who may call the gateway, and how much: API keys (``aire keys``) and per-key limits on requests and on
tokens per minute, with the ``limits`` library.

A key is ``aire-<id>-<secret>``; the gateway keeps the keys' salted hashes in memory (re-read from the
store with the routes) and checks a presented key against its hash, never storing, logging or tracing
the key itself (the traffic log holds the key's id).

Tokens are charged before the request goes upstream at an estimate (prompt characters / 4 + max_tokens,
the most it may cost), and corrected by the difference when the answer's usage arrives. The windows are
``limits``' fixed one-minute windows (one counter per key and window, which an estimate can be added to
and corrected on; a burst across a window boundary can reach twice the limit, as limits' docs say).
A refusal is a 429 with ``Retry-After``, the seconds until the window resets.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import FixedWindowRateLimiter

from aire.gateway.requests import BadRequest
from aire.store.api_keys import ApiKeys, matches, split_key
from aire.store.schema import ApiKey

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for completions when max_tokens is not given


@dataclass
class Access:
    keys: ApiKeys
    required: bool = False
    _known: dict[str, ApiKey] = field(default_factory=dict)
    _verified: dict[str, str] = field(default_factory=dict)  # sha256 of a presented key -> its id
    rejected: int = 0
    limited: int = 0

    def __post_init__(self) -> None:
        self._storage = MemoryStorage()
        self._limiter = FixedWindowRateLimiter(self._storage)

    def refresh(self) -> None:
        """Re-read the keys (blocking: run it in a thread); a revoked key stops working here."""
        self._known = {k.id: k for k in self.keys.all() if k.revoked_at is None}
        self._verified = {h: i for h, i in self._verified.items() if i in self._known}

    def identify(self, authorization: str | None) -> ApiKey | None:
        """The key behind an ``Authorization: Bearer ...`` header; None when none is needed or given."""
        import hashlib

        token = authorization.removeprefix("Bearer ").strip() if authorization else ""
        if not token:
            if self.required:
                self.rejected += 1
                raise BadRequest(401, "an API key is required (Authorization: Bearer aire-...)",
                                 code="missing_api_key")  # fmt: skip
            return None
        seen = hashlib.sha256(token.encode()).hexdigest()  # never the key itself, even in memory maps
        if seen in self._verified:
            return self._known.get(self._verified[seen])
        parts = split_key(token)
        row = self._known.get(parts[0]) if parts else None
        if row is None or parts is None or not matches(row, parts[1]):
            self.rejected += 1
            raise BadRequest(401, "invalid or revoked API key", code="invalid_api_key")
        self._verified[seen] = row.id
        return row

    async def admit(self, key: ApiKey | None, body: dict[str, Any], prompt_chars: int) -> int:
        """Charge one request and the token estimate to the key; returns the estimate. 429 when over."""
        if key is None:
            return 0
        estimate = math.ceil(prompt_chars / 4) + int(body.get("max_tokens") or DEFAULT_MAX_TOKENS)
        for limit, cost, what in (
            (key.requests_per_minute, 1, "requests"),
            (key.tokens_per_minute, estimate, "tokens"),
        ):
            if not limit:
                continue
            item = RateLimitItemPerMinute(limit)
            if not await self._limiter.hit(item, key.id, what, cost=cost):
                # fixed windows count a refused hit too: give it back, it was not served
                await self._storage.incr(item.key_for(key.id, what), item.get_expiry(), amount=-cost)
                if what == "tokens" and key.requests_per_minute:
                    requests = RateLimitItemPerMinute(key.requests_per_minute)
                    await self._storage.incr(requests.key_for(key.id, "requests"), requests.get_expiry(), -1)
                reset, _ = await self._limiter.get_window_stats(item, key.id, what)
                retry = max(1, math.ceil(reset - time.time()))
                self.limited += 1
                raise BadRequest(429, f"rate limit of {limit} {what} per minute reached for key {key.id}",
                                 kind="rate_limit_exceeded", code=f"{what}_per_minute",
                                 headers={"Retry-After": str(retry)})  # fmt: skip
        return estimate

    async def settle(self, key: ApiKey | None, estimate: int, used: int | None) -> None:
        """Correct the token charge by what the answer really used (its usage, when it came)."""
        if key is None or not key.tokens_per_minute or used is None or used == estimate:
            return
        item = RateLimitItemPerMinute(key.tokens_per_minute)
        await self._storage.incr(item.key_for(key.id, "tokens"), item.get_expiry(), amount=used - estimate)
