"""aire.gateway.cache: what is cacheable, what the exact key ignores, the version partition, the bounds,
and the semantic layer on the labelled pairs with the real bundled all-MiniLM-L6-v2."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from aire.gateway.cache import DEFAULT_THRESHOLD, ResponseCache, cacheable, minilm_embed
from aire.gateway.cache_guard import same_meaning
from benchmarks.cache_threshold import choose, cosines, load_pairs

V1, V2 = "aire-model/1", "aire-model/2"
PAIRS = load_pairs()
# Measured by benchmarks/cache_threshold.py (and below): 14 of the 30 paraphrase pairs hit. The others reword
# or reorder content words ("Who is the author of Hamlet?"), which the guard refuses on purpose.
PARAPHRASES_HIT = 14


@pytest.fixture(scope="module")
def embed() -> Callable[[list[str]], np.ndarray]:
    """The real MiniLM. Every text of the labelled file is embedded in one batch up front (a cache embeds
    one prompt at a time, which is the same vector at ~10x the cost here); other texts go to the model."""
    model = minilm_embed()
    texts = sorted({p[side] for p in PAIRS for side in ("a", "b")})
    memo = dict(zip(texts, model(texts), strict=True))

    def cached(batch: list[str]) -> np.ndarray:
        missing = [t for t in batch if t not in memo]
        if missing:
            memo.update(zip(missing, model(missing), strict=True))
        return np.stack([memo[t] for t in batch])

    return cached


def completion(prompt: str, **params: Any) -> dict[str, Any]:
    return {"model": "aire-model", "prompt": prompt, "temperature": 0, "max_tokens": 8, **params}


def chat(*messages: tuple[str, str], **params: Any) -> dict[str, Any]:
    body = {"model": "aire-model", "messages": [{"role": r, "content": c} for r, c in messages], "temperature": 0}
    return {**body, **params}


def answer(text: str, prompt_tokens: int = 7, completion_tokens: int = 2) -> dict[str, Any]:
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
    return {"object": "text_completion", "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
            "usage": usage}  # fmt: skip


# -- what may be cached ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "ok"),
    [
        ({}, False),  # OpenAI's default temperature is 1
        ({"temperature": 0.7}, False),
        ({"temperature": 1e-9}, False),
        ({"temperature": False}, False),  # a bool is not a number here
        ({"temperature": 0, "n": 2}, False),
        ({"temperature": 0}, True),
        ({"temperature": 0.0, "n": 1}, True),
    ],
)
def test_only_deterministic_requests_are_cacheable(params: dict[str, Any], ok: bool) -> None:
    body = {"model": "m", "prompt": "What is 3+4?", **params}
    assert cacheable(body) is ok
    cache = ResponseCache(semantic=False)
    cache.store(V1, "completions", body, answer(" 7"))
    assert len(cache) == int(ok)
    assert (cache.lookup(V1, "completions", body) is not None) is ok
    stats = cache.stats
    assert (stats.uncacheable, stats.exact_hits, stats.lookups) == ((0, 1, 1) if ok else (1, 0, 1))


def test_errors_and_empty_answers_are_not_stored() -> None:
    cache = ResponseCache(semantic=False)
    body = completion("What is 3+4?")
    cache.store(V1, "completions", body, {"error": {"message": "upstream overloaded", "type": "upstream_error"}})
    cache.store(V1, "completions", body, {"object": "text_completion", "choices": []})
    cache.store(V1, "embeddings", body, answer(" 7"))  # not a route the cache knows
    assert len(cache) == 0 and cache.lookup(V1, "completions", body) is None


# -- the exact key ---------------------------------------------------------------------------------
def test_stream_user_and_an_explicit_n_of_one_do_not_change_the_key() -> None:
    cache = ResponseCache(semantic=False)
    cache.store(V1, "completions", completion("Q: 3+4=\nA:"), answer(" 7"))
    same = [
        completion("Q: 3+4=\nA:", stream=True, stream_options={"include_usage": True}),
        completion("Q: 3+4=\nA:", user="someone", n=1),
        {**completion("Q: 3+4=\nA:"), "temperature": 0.0},
        dict(reversed(list(completion("Q: 3+4=\nA:").items()))),  # key order
    ]
    for body in same:
        hit = cache.lookup(V1, "completions", body)
        assert hit is not None and hit.kind == "exact" and hit.similarity == 1.0
        assert hit.response["choices"][0]["text"] == " 7"


def test_a_parameter_that_changes_the_answer_changes_the_key(embed: Callable[[list[str]], np.ndarray]) -> None:
    cache = ResponseCache(embed=embed)
    cache.store(V1, "completions", completion("What is 3+4?"), answer(" 7"))
    # Neither layer: the semantic one compares prompts only within equal parameters.
    for body in (
        completion("What is 3+4?", max_tokens=9),
        completion("What is 3 + 4?", max_tokens=9),
        completion("What is 3+4?", logprobs=1),
        completion("What is 3+4?", stop=["\n"]),
        {**completion("What is 3+4?"), "model": "other-name"},
    ):
        assert cache.lookup(V1, "completions", body) is None, body
    assert cache.lookup(V1, "chat", chat(("user", "What is 3+4?"))) is None  # another route
    assert cache.lookup(V1, "completions", completion("What is 3+4?")) is not None


def test_a_new_version_never_gets_the_previous_versions_answers(embed: Callable[[list[str]], np.ndarray]) -> None:
    cache = ResponseCache(embed=embed)
    cache.store(V1, "completions", completion("What is 3+4?"), answer(" 7 (from version 1)"))
    cache.store(V1, "chat", chat(("user", "What is 3+4?")), answer(" 7 (from version 1)"))
    for route, body in (
        ("completions", completion("What is 3+4?")),  # exactly the same request
        ("completions", completion("What's 3 plus 4?")),  # a paraphrase that hits on version 1
        ("chat", chat(("user", "What is 3+4?"))),
    ):
        assert cache.lookup(V2, route, body) is None
    assert cache.lookup(V1, "completions", completion("What's 3 plus 4?")).kind == "semantic"  # type: ignore[union-attr]
    cache.store(V2, "completions", completion("What is 3+4?"), answer(" 7 (from version 2)"))
    hit = cache.lookup(V2, "completions", completion("What's 3 plus 4?"))
    assert hit is not None and hit.response["choices"][0]["text"] == " 7 (from version 2)"
    hit = cache.lookup(V1, "completions", completion("What is 3+4?"))
    assert hit is not None and hit.response["choices"][0]["text"] == " 7 (from version 1)"


# -- bounds ----------------------------------------------------------------------------------------
def test_the_entry_bound_evicts_the_least_recently_used_and_its_vector(
    embed: Callable[[list[str]], np.ndarray],
) -> None:
    cache = ResponseCache(embed=embed, max_entries=2)
    cache.store(V1, "completions", completion("What is 3+4?"), answer(" 7"))
    cache.store(V1, "completions", completion("What is 2*6?"), answer(" 12"))
    assert cache.lookup(V1, "completions", completion("What is 3+4?")) is not None  # now the most recent
    cache.store(V1, "completions", completion("What is 9*9?"), answer(" 81"))  # evicts 2*6, not 3+4
    assert len(cache) == 2 and cache.stats.evictions == 1
    assert cache.lookup(V1, "completions", completion("What is 2*6?")) is None
    assert cache.lookup(V1, "completions", completion("What is 2 * 6?")) is None  # its vector left the index
    assert cache.lookup(V1, "completions", completion("What is 3+4?")) is not None
    assert cache.lookup(V1, "completions", completion("What is 9 * 9?")).kind == "semantic"  # type: ignore[union-attr]
    for i in range(10):  # the bound holds however many are stored
        cache.store(V1, "completions", completion(f"What is {i}+1?"), answer(f" {i + 1}"))
    assert len(cache) == 2 and cache.stats.evictions == 11
    assert sum(len(p.keys) for p in cache._partitions.values()) == 2


def test_entries_expire_after_the_ttl(embed: Callable[[list[str]], np.ndarray]) -> None:
    now = [1000.0]
    cache = ResponseCache(embed=embed, ttl_s=60, timer=lambda: now[0])
    cache.store(V1, "completions", completion("What is 3+4?"), answer(" 7"))
    now[0] += 59
    assert cache.lookup(V1, "completions", completion("What is 3+4?")) is not None
    assert cache.lookup(V1, "completions", completion("What is 3 + 4?")) is not None
    now[0] += 2  # stored 61 s ago; a hit does not extend the TTL
    assert cache.lookup(V1, "completions", completion("What is 3+4?")) is None
    assert cache.lookup(V1, "completions", completion("What is 3 + 4?")) is None
    assert len(cache) == 0 and cache.stats.evictions == 1 and not cache._partitions


# -- the semantic layer, measured ------------------------------------------------------------------
def test_labelled_pairs_paraphrases_hit_near_misses_and_unrelated_never(
    embed: Callable[[list[str]], np.ndarray],
) -> None:
    """Each pair in its own version: store one side, look the other up, both ways round."""
    cache = ResponseCache(embed=embed)
    hits: dict[str, list[str]] = {"paraphrase": [], "near_miss": [], "unrelated": []}
    for i, pair in enumerate(PAIRS):
        for n, (stored, asked) in enumerate(((pair["a"], pair["b"]), (pair["b"], pair["a"]))):
            version = f"pairs/{i}.{n}"
            cache.store(version, "completions", completion(stored), answer(f" answer to {stored!r}"))
            hit = cache.lookup(version, "completions", completion(asked))
            if hit is not None:
                assert hit.kind == "semantic" or stored == asked
                assert hit.similarity >= DEFAULT_THRESHOLD
                hits[pair["kind"]].append(f"{stored!r} -> {asked!r}")
    assert hits["near_miss"] == [], "near misses served another prompt's answer"
    assert hits["unrelated"] == []
    n_para = sum(p["kind"] == "paraphrase" for p in PAIRS)
    assert len(hits["paraphrase"]) == 2 * PARAPHRASES_HIT, hits["paraphrase"]  # symmetric: both ways or neither
    assert PARAPHRASES_HIT / n_para >= 0.45


def test_the_default_threshold_is_the_measured_one(embed: Callable[[list[str]], np.ndarray]) -> None:
    kinds = [p["kind"] for p in PAIRS]
    cos = cosines(PAIRS, embed)
    guarded = np.array([same_meaning(p["a"], p["b"]) for p in PAIRS])
    assert choose(kinds, cos, guarded) == (DEFAULT_THRESHOLD, PARAPHRASES_HIT)
    # and the embedding alone would need 1.00, where 2 paraphrases hit
    assert choose(kinds, cos, np.ones(len(PAIRS), dtype=bool)) == (1.0, 2)


def test_chat_compares_the_last_user_message_within_equal_earlier_turns(
    embed: Callable[[list[str]], np.ndarray],
) -> None:
    cache = ResponseCache(embed=embed)
    system = ("system", "Answer with a number only.")
    cache.store(V1, "chat", chat(system, ("user", "What is 7 times 8?")), answer("56"))
    hit = cache.lookup(V1, "chat", chat(system, ("user", "What's 7 multiplied by 8?")))
    assert hit is not None and hit.kind == "semantic" and hit.response["choices"][0]["text"] == "56"
    assert cache.lookup(V1, "chat", chat(system, ("user", "What is 7 times 9?"))) is None
    assert cache.lookup(V1, "chat", chat(("system", "Answer in words."), ("user", "What is 7 times 8?"))) is None
    assert cache.lookup(V1, "chat", chat(("user", "What is 7 times 8?"))) is None  # no system prompt
    earlier = [system, ("user", "What is 7 times 8?"), ("assistant", "56")]
    assert cache.lookup(V1, "chat", chat(*earlier, ("user", "What's 7 multiplied by 8?"))) is None
    # Content that is not plain text is cached exactly or not at all.
    parts = chat(system, ("user", "x"))
    parts["messages"][-1]["content"] = [{"type": "text", "text": "What is 7 times 8?"}]
    cache.store(V1, "chat", parts, answer("56"))
    assert cache.lookup(V1, "chat", parts).kind == "exact"  # type: ignore[union-attr]


def test_the_guard_on_cases_the_pairs_do_not_spell_out() -> None:
    assert same_meaning("What is twenty plus 3?", "what is 20 + 3")
    assert same_meaning("Isn't Paris in France?", "Is not Paris in France?")
    assert same_meaning("Is it a well-known fact?", "Is it a well-known fact")
    assert not same_meaning("What is 3-4?", "What is 3 4?")  # a minus before a number counts
    assert not same_meaning("What is (3+4)*2?", "What is 3+4*2?")
    assert not same_meaning('Say "yes"', 'Say "Yes"')  # quoted text exactly
    assert same_meaning("Who came first?", "Who came 1st?")  # an ordinal in words or digits is one number
    assert not same_meaning("Can birds fly?", "Can't birds fly?")
    assert same_meaning("Can't birds fly?", "Cannot birds fly?") and same_meaning("Won't it rain?", "Will it not rain?")
    assert not same_meaning("Who won?", "Who will?")
    assert same_meaning("What is 1,000 + 1?", "What is 1000 + 1?")
    assert not same_meaning("What is 1000 + 1?", "What is 1000.5 + 1?")


# -- stats, copies, failures, async ----------------------------------------------------------------
def test_stats_count_hits_misses_and_saved_tokens(embed: Callable[[list[str]], np.ndarray]) -> None:
    cache = ResponseCache(embed=embed)
    assert cache.stats.hit_rate == 0.0
    cache.store(V1, "completions", completion("What is 3+4?"), answer(" 7", prompt_tokens=12, completion_tokens=3))
    cache.lookup(V1, "completions", completion("What is 3+4?"))  # exact
    cache.lookup(V1, "completions", completion("What is 3 + 4?"))  # semantic
    cache.lookup(V1, "completions", completion("What is 3+5?"))  # miss
    cache.lookup(V1, "completions", {"model": "m", "prompt": "What is 3+4?"})  # uncacheable
    s = cache.stats
    assert (s.lookups, s.exact_hits, s.semantic_hits, s.misses, s.uncacheable) == (4, 1, 1, 1, 1)
    assert (s.hits, s.hit_rate, s.stores, s.entries) == (2, 0.5, 1, 1)
    assert (s.saved_prompt_tokens, s.saved_completion_tokens, s.saved_tokens) == (24, 6, 30)


def test_a_hit_is_a_fresh_copy() -> None:
    cache = ResponseCache(semantic=False)
    cache.store(V1, "completions", completion("What is 3+4?"), answer(" 7"))
    first = cache.lookup(V1, "completions", completion("What is 3+4?"))
    assert first is not None
    first.response["choices"][0]["text"] = "changed by a caller"
    again = cache.lookup(V1, "completions", completion("What is 3+4?"))
    assert again is not None and again.response["choices"][0]["text"] == " 7"


def test_a_failing_embedder_makes_misses_not_errors() -> None:
    calls = []

    def broken(texts: list[str]) -> np.ndarray:
        calls.append(texts)
        raise RuntimeError("no model")

    cache = ResponseCache(embed=broken)
    cache.store(V1, "completions", completion("What is 3+4?"), answer(" 7"))  # stored for the exact layer
    assert cache.lookup(V1, "completions", completion("What is 3+4?")) is not None
    assert cache.lookup(V1, "completions", completion("What is 3 + 4?")) is None
    # No partition has a vector, so the second lookup did not even try to embed.
    assert len(calls) == 1 and cache.stats.errors == 1 and cache.stats.misses == 1


async def test_the_async_variants_embed_off_the_event_loop(
    embed: Callable[[list[str]], np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    threads = []
    real_to_thread = asyncio.to_thread

    async def counting(fn: Callable[..., Any], *args: Any) -> Any:
        threads.append(fn.__name__)
        return await real_to_thread(fn, *args)

    monkeypatch.setattr(asyncio, "to_thread", counting)
    cache = ResponseCache(embed=embed)
    await cache.astore(V1, "completions", completion("Please compute 9 times 6."), answer(" 54"))
    assert threads == ["_safe_vector"]
    assert (await cache.alookup(V1, "completions", completion("Please compute 9 times 6."))).kind == "exact"  # type: ignore[union-attr]
    assert threads == ["_safe_vector"]  # an exact hit stays on the loop
    hit = await cache.alookup(V1, "completions", completion("What is 9*6?"))
    assert hit is not None and hit.kind == "semantic" and threads == ["_safe_vector"] * 2
    assert await cache.alookup(V1, "completions", completion("What is 9*7?")) is None
