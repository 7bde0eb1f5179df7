"""The executor (one sample end to end: generate, score, store) and the engine steps that drive it,
against the in-process fake OpenAI server and a real SQLite store; no Prefect, no MLflow."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

import evaluators
from aire.client.config import EndpointConfig
from aire.client.endpoints import request_fingerprint
from aire.core.settings import Settings
from aire.core.types import Completion, GenerationParams, Sample, Score
from aire.run import (
    ShadowPlan,
    open_target,
    paired_data,
    prepare,
    prepare_shadow,
    run_all,
    run_sample,
    run_shard,
    send_in_looks,
    sending,
    sending_pairs,
)
from aire.store.store import Store
from aire.testing.fake_openai import FakeOpenAI, Fault, fail_first
from aire.testing.ragas_judge import ragas_judge, supported

ROOT = Path(__file__).resolve().parents[2]
P = GenerationParams()
Q = Sample(id="q1", prompt="Q: 3+4=\nA:", reference="7")


@pytest.fixture
async def srv() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(latency_s=0.001) as s:
        yield s


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", datasets_dir=ROOT / "datasets", max_attempts=1, shard_size=7)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    s = Store(settings.resolved_store_url)
    yield s
    s.close()


def new_run(store: Store, n: int = 1) -> str:
    run = store.create_run(
        kind="offline",
        resume_key=uuid.uuid4().hex,
        suite="t",
        suite_version="v",
        endpoint="e",
        served_model="fake",
        n_samples=n,
        params={},
    )
    return run.id


class CannotScore:
    """An async evaluator that never has an answer (a judge that timed out, say)."""

    async def score(self, sample: Sample, completion: Completion) -> Score:
        await asyncio.sleep(0)
        return Score(explanation="no verdict")


# --------------------------------------------------------------------------------------------- executor
async def test_one_sample_end_to_end_into_the_store(srv: FakeOpenAI, settings: Settings, store: Store) -> None:
    ep = EndpointConfig(name="e", base_url=srv.base_url, model="fake")
    run_id = new_run(store)
    bound = {"numeric": evaluators.bind("numeric"), "exact_match": evaluators.bind("exact_match")}
    async with open_target(settings, store, run_id, ep, lambda _: P, bound) as target:
        completion = await run_sample(target, Q)
    assert completion.ok and completion.text == " 7"
    (row,) = store.results(run_id)  # committed when the target closed
    assert row.sample_id == "q1" and row.text == " 7" and row.error_type is None
    assert row.scores == {"numeric": 1.0, "exact_match": 1.0}
    assert row.fingerprint == request_fingerprint(ep, Q, P)
    assert row.e2e_s is not None and row.ttft_s is not None
    assert store.completed_ids(run_id) == {"q1"}
    assert srv.by_path == {"/v1/completions": 1}


async def test_an_endpoint_error_is_a_stored_error_row_not_an_exception(settings: Settings, store: Store) -> None:
    run_id = new_run(store)
    async with FakeOpenAI(latency_s=0, faults=fail_first(99, Fault("status", 500, message="boom"))) as s:
        ep = EndpointConfig(name="e", base_url=s.base_url, model="fake")
        async with open_target(settings, store, run_id, ep, lambda _: P, {"numeric": evaluators.bind("numeric")}) as t:
            completion = await run_sample(t, Q)
    assert not completion.ok and completion.error is not None
    (row,) = store.results(run_id)
    assert row.error_type == completion.error.type and row.error_status == 500
    assert math.isnan(row.scores["numeric"])  # a failed request is not scored, and not a zero
    assert store.completed_ids(run_id) == set()  # a resumed run requests it again


async def test_an_evaluator_that_cannot_score_gives_nan(srv: FakeOpenAI, settings: Settings, store: Store) -> None:
    ep = EndpointConfig(name="e", base_url=srv.base_url, model="fake")
    run_id = new_run(store)
    no_reference = Sample(id="q2", prompt="Q: 3+4=\nA:", reference="seven")
    bound: dict[str, Any] = {"numeric": evaluators.bind("numeric"), "judge": CannotScore()}
    async with open_target(settings, store, run_id, ep, lambda _: P, bound) as target:
        assert (await run_sample(target, no_reference)).ok
    (row,) = store.results(run_id)
    assert math.isnan(row.scores["numeric"]) and math.isnan(row.scores["judge"])  # sync and async alike
    assert row.error_type is None and row.explanations["judge"] == "no verdict"
    assert "q2" in store.completed_ids(run_id)  # answered: not requested again on resume


async def test_run_all_cancels_the_rest_when_one_fails() -> None:
    finished: list[int] = []

    async def work(i: int) -> int:
        if i == 0:
            raise RuntimeError("boom")
        await asyncio.sleep(1)
        finished.append(i)
        return i

    with pytest.raises(RuntimeError, match="boom"):
        await run_all(work(i) for i in range(5))
    await asyncio.sleep(0)
    assert finished == []
    assert await run_all(asyncio.sleep(0, result=i) for i in range(3)) == [0, 1, 2]


# ------------------------------------------------------------------------------------- offline engine
async def test_offline_shards_by_id_and_a_resumed_run_sends_only_what_failed(settings: Settings) -> None:
    # Every fourth request fails (once): those samples are error rows until the run is resumed.
    plan_faults = lambda info: Fault("status", 500) if info.index % 4 == 3 else None  # noqa: E731
    async with FakeOpenAI(latency_s=0, faults=plan_faults) as s:
        kw: dict[str, Any] = {"suite": "arith", "base_url": s.base_url, "model": "fake", "limit": 20}
        plan = await prepare(settings, **kw)
        assert len(plan.shards()) == 3 and not plan.resumed
        async with sending(plan):
            failed = sum([await run_shard(plan.id, i) for i in range(len(plan.shards()))])
        assert s.requests == 20 and failed == 5
        assert len(plan.store.results(plan.run_id)) == 20
        # The request phase is timed in wall and CPU seconds; CPU cannot exceed wall by much on one thread.
        assert 0 < plan.execution_cpu_s < plan.execution_s + 0.5

        s.faults = None
        again = await prepare(settings, **kw)
        assert again.resumed and again.run_id == plan.run_id and len(again.pending) == 5
        async with sending(again):
            assert sum([await run_shard(again.id, i) for i in range(len(again.shards()))]) == 0
        assert s.requests == 25  # only the five failed samples were sent again
        rows = again.store.results(again.run_id)
        assert len(rows) == 20 and all(r.error_type is None for r in rows)
        assert all(r.scores["exact_match"] == 1.0 for r in rows)


# -------------------------------------------------------------------------------------- shadow engine
def shadow_config(tmp_path: Path, champion: FakeOpenAI, challenger: FakeOpenAI) -> Path:
    path = tmp_path / "aire.yaml"
    path.write_text(
        "endpoints:\n"
        f"  champion: {{base_url: '{champion.base_url}', model: fake}}\n"
        f"  challenger: {{base_url: '{challenger.base_url}', model: fake}}\n"
    )
    return path


async def test_shadow_sends_pairs_in_looks_and_a_resumed_run_sends_nothing_twice(
    tmp_path: Path, settings: Settings
) -> None:
    async with FakeOpenAI(latency_s=0) as a, FakeOpenAI(latency_s=0, wrong_rate=0.5, seed=1) as b:
        settings = settings.model_copy(update={"config": shadow_config(tmp_path, a, b)})
        kw: dict[str, Any] = {
            "policy": ROOT / "gates" / "default.yaml",
            "champion": "champion",
            "challenger": "challenger",
            "suite": "arith",
            "limit": 200,
            "sequential": True,
            "batch": 40,
            "out_dir": tmp_path / "out",
        }
        plan = await prepare_shadow(settings, **kw)
        assert isinstance(plan, ShadowPlan) and plan.id == plan.runs["challenger"]
        async with sending_pairs(plan):
            n_requested, looks = await send_in_looks(plan.id, warmup=0)
        # Half the challenger's answers are wrong: a FAIL, settled before the cap of 200.
        assert looks and looks[-1].verdict.value == "FAIL"
        assert all(look.verdict.value == "INCONCLUSIVE" for look in looks[:-1])
        n = looks[-1].n
        assert n < 200 and n == 40 * len(looks)
        assert n_requested == 2 * n and a.requests == n and b.requests == n
        data = await paired_data(plan)
        assert data.counts.n_pairs == n and data.counts.n_errors == 0

        again = await prepare_shadow(settings, **kw)
        assert again.resumed and again.runs == plan.runs
        async with sending_pairs(again):
            n_again, looks_again = await send_in_looks(again.id, warmup=0)
        # What is stored already settles it: the resumed run looks once and sends nothing.
        assert n_again == 0 and [look.verdict.value for look in looks_again] == ["FAIL"]
        assert a.requests == n and b.requests == n


async def test_a_rag_suite_runs_end_to_end_with_ragas_metrics(settings: Settings) -> None:
    # Half the answers are the reference, half are not: the ragas string metrics tell them apart, and
    # the retrieval metrics score the passages (the relevant one is first in every other row).
    import json

    rows = [json.loads(line) for line in (ROOT / "datasets" / "rag" / "samples.jsonl").read_text().splitlines()]
    by_question = {r["question"]: (i, r["answer"]) for i, r in enumerate(rows)}

    def answer(prompt: str) -> str:
        i, reference = next(v for q, v in by_question.items() if q in prompt)
        return reference if i % 2 == 0 else "I do not know"

    # The judged ragas metrics ask the suite's `judge` endpoint: here a scripted judge (exact values).
    async with (
        FakeOpenAI(latency_s=0, answer=answer) as s,
        FakeOpenAI(latency_s=0, answer=ragas_judge(), models=["judge"]) as j,
    ):
        config = settings.home / "aire.yaml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(json.dumps({"endpoints": {"judge": {"base_url": j.base_url, "model": "judge"}}}))
        settings = settings.model_copy(update={"config": config})
        plan = await prepare(settings, suite="rag", base_url=s.base_url, model="fake")
        async with sending(plan):
            assert sum([await run_shard(plan.id, i) for i in range(len(plan.shards()))]) == 0
    stored = {r.sample_id: r for r in plan.store.results(plan.run_id)}
    assert len(stored) == len(rows) == 16
    for i, row in enumerate(rows):
        scores = stored[row["id"]].scores
        assert set(scores) == {k.key for k in plan.suite.spec.evaluators}
        right = i % 2 == 0
        assert (scores["ragas_rouge"] == 1.0) is right and (scores["ragas_chrf"] == 1.0) is right
        assert scores["ragas_context_recall_nonllm"] == 1.0
        assert scores["ragas_context_precision_nonllm"] == (1.0 if i % 2 == 0 else pytest.approx(0.5))
        # The judged metrics, through ragas's own code, equal what the scripted judge's rules give:
        # a statement counts when the passages contain it word for word (q08's reference does not).
        said = row["answer"] if right else "I do not know"
        found = [supported(row["answer"], c) for c in row["contexts"]]
        precision = sum(sum(found[: k + 1]) / (k + 1) * v for k, v in enumerate(found)) / max(sum(found), 1)
        assert scores["ragas_faithfulness"] == supported(said, " ".join(row["contexts"]))
        assert scores["ragas_factual_correctness"] == (1.0 if right else 0.0)
        assert scores["ragas_context_precision"] == pytest.approx(precision)
        assert scores["ragas_context_recall"] == supported(row["answer"], "\n".join(row["contexts"]))
        assert 0.0 <= scores["ragas_answer_relevancy"] <= 1.0
