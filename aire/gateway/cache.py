"""The gateway's response cache: answers to deterministic requests (temperature 0), served again without
going upstream.

Two layers, both keyed by the served *version* ("aire-model/3"), so a new production version never serves
the previous one's answers:

- exact: sha256 of (version, route, the request body minus what does not change the answer: ``stream``,
  ``stream_options``, ``user``). A bounded LRU with a TTL (cachetools).
- semantic: for a prompt that is not byte-for-byte a cached one, the nearest cached prompt of the same
  *partition* (version, route, and every other field of the body equal, chat turns before the last one
  included) by all-MiniLM-L6-v2 cosine (normalised vectors, inner product, in a faiss index per partition).
  It is served only when the cosine reaches ``DEFAULT_THRESHOLD`` *and* the guard
  (aire.gateway.cache_guard) finds that the two prompts differ in form only: embeddings alone put "3+4" and
  "3+5", or "km to miles" and "miles to km", as close as paraphrases. Only the last chat message is compared
  this way, and only when it is the user's plain text; a changed system prompt or earlier turn is a miss.

What the semantic layer means for a completion (not chat) model: a hit returns the continuation of an
equivalent prompt, not the one this exact text would get. A gateway in front of base models may prefer
``semantic=False``.

Entries are stored as JSON bytes (a lookup returns a fresh dict the caller may change) and bound in count:
``max_entries`` covers both layers, a semantic vector leaves its index when its entry is evicted or expires.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import orjson
from cachetools import LRUCache, TTLCache

from aire.gateway.cache_guard import Signature, signature
from aire.gateway.requests import CHAT, COMPLETIONS

log = logging.getLogger("aire.gateway")

Embedder = Callable[[list[str]], np.ndarray]

# Chosen by ``python -m benchmarks.cache_threshold`` on tests/data/cache_pairs.jsonl (30 paraphrase, 37
# near-miss, 8 unrelated pairs), all-MiniLM-L6-v2 cosines: paraphrases 0.73-1.00 (median 0.93), near misses
# 0.58-0.995 (median 0.88: "the cat chases the dog" vs "the dog chases the cat" 0.995), unrelated 0.03-0.10.
# Cosine alone keeps every near miss out only at 1.00, where 2 of 30 paraphrases hit. With the guard no near miss or
# unrelated pair passes at any threshold and 14 of 30 paraphrases hit, the lowest at 0.733 ("Please compute 9
# times 6." | "What is 9*6?"); the highest threshold that keeps all 14, rounded down to 2 decimals for float32
# search, is 0.73. So it is a floor under the guard, not the separator: the guard is what stops near misses.
DEFAULT_THRESHOLD = 0.73
ANSWER_NEUTRAL = frozenset({"stream", "stream_options", "user"})


def minilm_embed() -> Embedder:
    """The bundled all-MiniLM-L6-v2 (unit-norm, 384 dimensions), loaded on first use (~7 s, mostly torch).

    One short prompt takes ~20 ms on one core of these 2-core boxes and several times that when torch's
    threads compete with the gateway's: a gateway process with a semantic cache wants
    ``torch.set_num_threads(1)`` (not set here: it is process-wide)."""
    from aire.monitor.drift.embeddings import minilm_embedder

    return minilm_embedder(batch_size=32)


@dataclass
class CacheStats:
    """Counters since start (monotonic, as a Prometheus exporter reads them) and the entries held now."""

    lookups: int = 0  # every lookup, cacheable or not
    exact_hits: int = 0
    semantic_hits: int = 0
    misses: int = 0  # cacheable, not found
    uncacheable: int = 0  # temperature missing or > 0, n > 1, ...
    stores: int = 0
    evictions: int = 0  # by the entry bound or the TTL
    errors: int = 0  # the embedder failed: counted as a miss, never as a failed request
    saved_prompt_tokens: int = 0
    saved_completion_tokens: int = 0
    entries: int = 0

    @property
    def hits(self) -> int:
        return self.exact_hits + self.semantic_hits

    @property
    def hit_rate(self) -> float:
        """The share of all requests answered from the cache (0.0 before any lookup)."""
        return self.hits / self.lookups if self.lookups else 0.0

    @property
    def saved_tokens(self) -> int:
        return self.saved_prompt_tokens + self.saved_completion_tokens


@dataclass(frozen=True)
class CacheHit:
    response: dict[str, Any]  # the stored non-streamed body, a fresh copy
    kind: Literal["exact", "semantic"]
    similarity: float  # cosine of the two prompts; 1.0 for an exact hit


@dataclass(frozen=True)
class _Plan:
    """What the cache needs of one request: its exact key and, when its prompt may match semantically, the
    partition it is compared within, the text embedded and the text's guard signature."""

    key: str
    partition: str | None
    text: str | None
    sig: Signature | None


@dataclass(frozen=True)
class _Entry:
    raw: bytes
    prompt_tokens: int
    completion_tokens: int
    partition: str | None
    vector_id: int | None
    sig: Signature | None


def _digest(*parts: Any) -> str:
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()


def cacheable(body: dict[str, Any]) -> bool:
    """Deterministic requests only: temperature exactly 0 (OpenAI's default is 1) and one choice."""
    temperature = body.get("temperature")
    return (
        isinstance(temperature, int | float)
        and not isinstance(temperature, bool)
        and temperature == 0
        and body.get("n", 1) == 1
    )


def _plan(version: str, route: str, body: dict[str, Any]) -> _Plan | None:
    """None for a request the cache does not take (not deterministic, or a body it cannot hash)."""
    if route not in (COMPLETIONS, CHAT) or not cacheable(body):
        return None
    try:
        return _keys(version, route, body)
    except (TypeError, orjson.JSONEncodeError):  # e.g. an integer beyond 64 bits: not worth failing a request
        return None


def _keys(version: str, route: str, body: dict[str, Any]) -> _Plan:
    canon = {k: v for k, v in body.items() if k not in ANSWER_NEUTRAL and k != "n"}
    canon["temperature"] = 0.0  # 0 and 0.0 are one request
    key = _digest("exact", version, route, canon)
    text: str | None = None
    rest = dict(canon)
    if route == COMPLETIONS and isinstance(canon.get("prompt"), str):
        text = rest.pop("prompt")
    elif route == CHAT and isinstance(canon.get("messages"), list) and canon["messages"]:
        *before, last = canon["messages"]
        if isinstance(last, dict) and last.get("role") == "user" and isinstance(last.get("content"), str):
            text = last["content"]
            rest["messages"] = [*before, {k: v for k, v in last.items() if k != "content"}]
    if text is None:  # a batch of prompts, token ids, images, a tool result: the exact layer only
        return _Plan(key, None, None, None)
    return _Plan(key, _digest("semantic", version, route, rest), text, signature(text))


def _tokens(response: dict[str, Any]) -> tuple[int, int]:
    usage = response.get("usage")
    if not isinstance(usage, dict):
        return 0, 0
    counts = [usage.get("prompt_tokens"), usage.get("completion_tokens")]
    p, c = (n if isinstance(n, int) and not isinstance(n, bool) else 0 for n in counts)
    return p, c


class _Entries(TTLCache[str, _Entry]):
    """A TTLCache (least recently used goes first when full) that reports what it drops: cachetools'
    documented way is to override ``popitem``; expiry goes through ``expire``, which returns what expired."""

    def __init__(self, maxsize: int, ttl: float, timer: Callable[[], float], dropped: Callable[[_Entry], None]):
        super().__init__(maxsize, ttl, timer=timer)
        self._dropped = dropped

    def popitem(self) -> tuple[str, _Entry]:
        key, entry = super().popitem()
        self._dropped(entry)
        return key, entry

    def expire(self, time: float | None = None) -> list[tuple[str, _Entry]]:
        expired = list(super().expire(time))
        for _, entry in expired:
            self._dropped(entry)
        return expired


class _Partition:
    """One (version, params) partition's vectors: an exact inner-product faiss index (a partition is bounded by
    ``max_entries``, so a flat scan is fast, and exact search means the measured threshold is the one applied)."""

    def __init__(self, dim: int) -> None:
        import faiss  # ~0.2 s; only a gateway that caches semantically pays it

        self.index = faiss.IndexIDMap(faiss.IndexFlatIP(dim))
        self.keys: dict[int, str] = {}

    def add(self, vector_id: int, key: str, vector: np.ndarray) -> None:
        self.index.add_with_ids(vector[None, :], np.array([vector_id], dtype=np.int64))
        self.keys[vector_id] = key

    def remove(self, vector_id: int) -> None:
        self.index.remove_ids(np.array([vector_id], dtype=np.int64))
        self.keys.pop(vector_id, None)

    def search(self, vector: np.ndarray, k: int) -> list[tuple[float, str]]:
        scores, ids = self.index.search(vector[None, :], min(k, len(self.keys)))
        return [(float(s), self.keys[int(i)]) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]


class ResponseCache:
    """``lookup`` before going upstream, ``store`` after a successful answer.

    The gateway is one asyncio thread; an embedding is CPU work of tens of milliseconds, which would stall
    every other request. So ``alookup``/``astore`` answer exact hits inline and run only the embedding in a
    worker thread; ``lookup``/``store`` are the same, blocking. State is guarded by one lock (embedding runs
    outside it), so both kinds may be mixed and called from threads.
    """

    def __init__(
        self,
        *,
        max_entries: int = 4096,
        ttl_s: float = 3600.0,
        semantic: bool = True,
        embed: Embedder | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        candidates: int = 8,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or ttl_s <= 0 or candidates < 1 or not 0.0 < threshold <= 1.0:
            raise ValueError("max_entries and candidates must be >= 1, ttl_s > 0, threshold in (0, 1]")
        self.semantic, self.threshold, self.candidates = semantic, threshold, candidates
        self._embed_fn = embed
        self._lock = threading.Lock()
        self._stats = CacheStats()
        self._entries = _Entries(max_entries, ttl_s, timer, self._dropped)
        self._partitions: dict[str, _Partition] = {}
        # The vector of a prompt just looked up, so the store after the upstream answer does not embed again.
        self._vectors: LRUCache[str, np.ndarray] = LRUCache(maxsize=1024)
        self._ids = itertools.count(1)

    # -- public -------------------------------------------------------------------------------
    @property
    def stats(self) -> CacheStats:
        """A snapshot of the counters."""
        with self._lock:
            self._entries.expire()
            return replace(self._stats, entries=len(self._entries))

    def warm(self) -> None:
        """Load the embedder now (at start-up, in a thread) instead of on the first semantic lookup."""
        if self.semantic:
            self._vector("warm up")

    def lookup(self, version: str, route: str, body: dict[str, Any]) -> CacheHit | None:
        plan, hit = self._exact(version, route, body)
        if hit is not None or plan is None:
            return hit
        if not self._may_match(plan):
            return self._miss()
        return self._semantic(plan, self._safe_vector(plan.text))

    async def alookup(self, version: str, route: str, body: dict[str, Any]) -> CacheHit | None:
        plan, hit = self._exact(version, route, body)
        if hit is not None or plan is None:
            return hit
        if not self._may_match(plan):
            return self._miss()
        return self._semantic(plan, await self._avector(plan.text))

    def store(self, version: str, route: str, body: dict[str, Any], response: dict[str, Any]) -> None:
        plan = self._storable(version, route, body, response)
        if plan is not None:
            self._put(plan, response, self._safe_vector(plan.text) if self._wants_vector(plan) else None)

    async def astore(self, version: str, route: str, body: dict[str, Any], response: dict[str, Any]) -> None:
        plan = self._storable(version, route, body, response)
        if plan is not None:
            self._put(plan, response, await self._avector(plan.text) if self._wants_vector(plan) else None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._partitions.clear()
            self._vectors.clear()

    def __len__(self) -> int:
        with self._lock:
            self._entries.expire()
            return len(self._entries)

    # -- lookup -------------------------------------------------------------------------------
    def _exact(self, version: str, route: str, body: dict[str, Any]) -> tuple[_Plan | None, CacheHit | None]:
        plan = _plan(version, route, body)
        with self._lock:
            self._stats.lookups += 1
            if plan is None:
                self._stats.uncacheable += 1
                return None, None
            self._entries.expire()
            entry = self._entries.get(plan.key)
            if entry is None:
                return plan, None
            self._stats.exact_hits += 1
            return plan, self._hit(entry, "exact", 1.0)

    def _may_match(self, plan: _Plan) -> bool:
        # No vectors stored for this partition: a miss without paying for an embedding.
        with self._lock:
            return self.semantic and plan.text is not None and plan.partition in self._partitions

    def _semantic(self, plan: _Plan, vector: np.ndarray | None) -> CacheHit | None:
        assert plan.partition is not None
        with self._lock:
            self._entries.expire()
            partition = self._partitions.get(plan.partition)
            if vector is None or partition is None:
                self._stats.misses += 1
                return None
            for score, key in partition.search(vector, self.candidates):
                if score < self.threshold:
                    break  # best first
                entry = self._entries.get(key)  # also marks it recently used
                if entry is not None and entry.sig == plan.sig:
                    self._stats.semantic_hits += 1
                    return self._hit(entry, "semantic", score)
            self._stats.misses += 1
            return None

    def _miss(self) -> None:
        with self._lock:
            self._stats.misses += 1

    def _hit(self, entry: _Entry, kind: Literal["exact", "semantic"], similarity: float) -> CacheHit:
        self._stats.saved_prompt_tokens += entry.prompt_tokens
        self._stats.saved_completion_tokens += entry.completion_tokens
        return CacheHit(orjson.loads(entry.raw), kind, min(similarity, 1.0))

    # -- store --------------------------------------------------------------------------------
    def _storable(self, version: str, route: str, body: dict[str, Any], response: dict[str, Any]) -> _Plan | None:
        # An error (even inside a 200) or a body without choices is not an answer worth repeating.
        ok = isinstance(response, dict) and not response.get("error") and bool(response.get("choices"))
        return _plan(version, route, body) if ok else None

    def _wants_vector(self, plan: _Plan) -> bool:
        return self.semantic and plan.text is not None

    def _put(self, plan: _Plan, response: dict[str, Any], vector: np.ndarray | None) -> None:
        raw = orjson.dumps(response)
        prompt_tokens, completion_tokens = _tokens(response)
        with self._lock:
            self._entries.expire()
            old = self._entries.pop(plan.key, None)
            if old is not None:
                self._unindex(old)
            vector_id = next(self._ids) if vector is not None else None
            entry = _Entry(raw, prompt_tokens, completion_tokens, plan.partition, vector_id, plan.sig)
            self._entries[plan.key] = entry  # may evict the least recently used: _dropped unindexes it
            if vector is not None and vector_id is not None and plan.partition is not None:
                partition = self._partitions.get(plan.partition)
                if partition is None:
                    partition = self._partitions[plan.partition] = _Partition(len(vector))
                partition.add(vector_id, plan.key, vector)
            self._stats.stores += 1

    def _dropped(self, entry: _Entry) -> None:
        # Called by _Entries under the lock, for evictions and expiries.
        self._stats.evictions += 1
        self._unindex(entry)

    def _unindex(self, entry: _Entry) -> None:
        if entry.vector_id is None or entry.partition is None:
            return
        partition = self._partitions.get(entry.partition)
        if partition is not None:
            partition.remove(entry.vector_id)
            if not partition.keys:
                del self._partitions[entry.partition]  # versions come and go: no empty indexes left behind

    # -- vectors ------------------------------------------------------------------------------
    def _cached_vector(self, text: str) -> np.ndarray | None:
        with self._lock:
            return self._vectors.get(text)

    def _vector(self, text: str) -> np.ndarray:
        """The unit-norm float32 vector faiss wants (a custom embedder need not normalise)."""
        cached = self._cached_vector(text)
        if cached is not None:
            return cached
        if self._embed_fn is None:
            self._embed_fn = minilm_embed()
        vector = np.asarray(self._embed_fn([text]), dtype=np.float32).reshape(-1)
        vector = np.ascontiguousarray(vector / max(float(np.linalg.norm(vector)), 1e-12))
        with self._lock:
            self._vectors[text] = vector
        return vector

    def _safe_vector(self, text: str | None) -> np.ndarray | None:
        # The cache must never fail a request: an embedder that breaks turns semantic lookups into misses.
        assert text is not None
        try:
            return self._vector(text)
        except Exception:
            log.exception("cache: embedding failed; semantic layer skipped for this request")
            with self._lock:
                self._stats.errors += 1
            return None

    async def _avector(self, text: str | None) -> np.ndarray | None:
        assert text is not None
        cached = self._cached_vector(text)
        return cached if cached is not None else await asyncio.to_thread(self._safe_vector, text)
