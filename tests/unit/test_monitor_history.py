"""The canary's look-ups of earlier runs on a real store (SQLite and PostgreSQL): which baseline it
compares with (by weights digest, else served model and URL), where its rotation starts, which
earlier canaries of the version count for the escalation, and a retried probe finding its run."""

from __future__ import annotations

import time
from typing import Any

import pytest

from aire.client.config import EndpointConfig
from aire.monitor import history
from aire.monitor.canaries import find_baseline, resume_key, rotation
from aire.store import FINISHED, Store

URL = "http://127.0.0.1:8101/v1"


def _run(store: Store, kind: str, *, suite: str = "arith", finish: bool = True, **params: Any) -> str:
    run = store.create_run(
        kind=kind,
        resume_key=params.pop("resume_key", f"k-{time.monotonic_ns()}"),
        suite=suite,
        suite_version="v",
        endpoint=params.get("endpoint", "champion"),
        served_model=params.get("served_model", "champion"),
        params=params,
        n_samples=10,
    )
    if finish:
        time.sleep(0.002)  # distinct finished_at: newest first must be well defined
        store.set_status(run.id, FINISHED)
    return run.id


@pytest.fixture
def store(store_url: str) -> Store:
    return Store(store_url)


def test_the_baseline_is_the_newest_run_of_the_same_weights(store: Store) -> None:
    old = _run(store, "offline", weights_digest="aaa")
    _run(store, "offline", weights_digest="bbb")  # other weights
    new = _run(store, "shadow", weights_digest="aaa")
    _run(store, "canary", weights_digest="aaa")  # a canary is never a baseline
    _run(store, "offline", finish=False, weights_digest="aaa")  # nor an unfinished run
    _run(store, "offline", suite="other", weights_digest="aaa")  # nor another suite's
    endpoint = EndpointConfig(name="prod", base_url=URL, model="champion", weights_digest="aaa")
    found = find_baseline(store, "arith", endpoint)
    assert found is not None and found.id == new and found.id != old


def test_without_a_digest_the_baseline_is_matched_by_served_model_and_url(store: Store) -> None:
    _run(store, "offline", served_model="champion", base_url="http://elsewhere/v1")
    same = _run(store, "offline", served_model="champion", base_url=URL)
    endpoint = EndpointConfig(name="prod", base_url=URL, model="champion")
    found = find_baseline(store, "arith", endpoint)
    assert found is not None and found.id == same
    assert find_baseline(store, "arith", EndpointConfig(name="x", base_url=URL, model="nobody")) is None


@pytest.mark.parametrize(
    ("n", "size", "done", "offset", "first", "last"),
    [(200, 100, 0, 0, 0, 99), (200, 100, 1, 100, 100, 199), (200, 100, 2, 0, 0, 99), (250, 100, 2, 200, 200, 49)],
)
def test_rotation_walks_the_suite_and_wraps(n: int, size: int, done: int, offset: int, first: int, last: int) -> None:
    ids = [f"s{i}" for i in range(n)]
    got_offset, chosen = rotation(ids, size, done)
    assert got_offset == offset and len(chosen) == size and len(set(chosen)) == size
    assert chosen[0] == f"s{first}" and chosen[-1] == f"s{last}"
    assert rotation(ids[:50], 300, 3) == (0, ids[:50])  # a canary larger than the suite is the suite


def test_only_finished_canaries_of_this_version_count(store: Store) -> None:
    identity = {"model": "m", "version": "2", "endpoint": "prod", "weights_digest": "aaa"}
    mine = dict(endpoint="prod", model="m", version="2", weights_digest="aaa")
    first = _run(store, "canary", **mine, verdict="FAIL")
    second = _run(store, "canary", **mine, verdict="PASS")
    _run(store, "canary", **{**mine, "version": "1"}, verdict="FAIL")  # another version
    _run(store, "canary", **{**mine, "weights_digest": "zzz"}, verdict="FAIL")  # same version, other weights
    _run(store, "canary", finish=False, **mine)  # a crashed canary does not shift the rotation
    assert history.count_version_canaries(store, "arith", identity) == 2
    recent = history.recent_version_canaries(store, "arith", identity, exclude=None, limit=5)
    assert [r.id for r in recent] == [second, first]
    assert [r.id for r in history.recent_version_canaries(store, "arith", identity, exclude=second, limit=5)] == [first]


def test_a_retried_probe_finds_its_own_run(store: Store) -> None:
    key = resume_key("flow-run-1:canary")
    run_id = _run(store, "canary", finish=False, resume_key=key, sample_ids=["a", "b"])
    found = history.probe_run(store, key)
    assert found is not None and found.id == run_id
    assert found.created_at.tzinfo is not None  # stored times read back aware on every backend
    assert history.probe_run(store, resume_key("flow-run-2:canary")) is None
    assert len(resume_key("x" * 200)) <= 64
    store.set_params(run_id, {"sample_ids": ["a", "b"], "verdict": "FAIL"})
    stored = store.get_run(run_id)
    assert stored is not None and stored.params["verdict"] == "FAIL"
