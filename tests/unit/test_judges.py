"""LLM judges against a scripted fake judge server: structured-output requests, the store cache keyed
by (judge identity, prompt hash), unparseable replies as NaN with the reason, and the pointwise
``judge_rubric`` evaluator through a real offline run (the real tiny judge on vLLM is tested in
tests/integration)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel

from aire.client.config import EndpointConfig
from aire.client.endpoints import EndpointClient
from aire.core.errors import InputError
from aire.core.settings import Settings
from aire.core.types import ChatMessage
from aire.judges import Judge, judge_identity
from aire.run import prepare, run_shard, sending
from aire.store.store import Store
from aire.testing.fake_openai import FakeOpenAI

ROOT = Path(__file__).resolve().parents[2]


class Verdict(BaseModel):
    verdict: Literal["no", "yes"]


def grader(prompt: str) -> str:
    """A judge that compares 'Answer:' with 'Reference answer:' in its prompt; 'garble' gets non-JSON."""
    answer = re.search(r"^Answer: (.*)$", prompt, re.M)
    reference = re.search(r"^Reference answer: (.*)$", prompt, re.M)
    if "garble" in prompt:
        return "I think it is fine"
    ok = answer is not None and reference is not None and answer.group(1).strip() == reference.group(1).strip()
    if "reason first" in prompt and answer and reference:
        why = f"{answer.group(1).strip()} vs {reference.group(1).strip()}"
        return json.dumps({"rationale": why, "verdict": "yes" if ok else "no"})
    return json.dumps({"verdict": "yes" if ok else "no"})


def msg(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


@asynccontextmanager
async def fake_judge(tmp_path: Path) -> AsyncIterator[tuple[FakeOpenAI, Judge, Store]]:
    """The scripted judge server, an open client to it and a Judge caching in a fresh store."""
    store = Store(f"sqlite:///{tmp_path / 'aire.db'}")
    async with FakeOpenAI(latency_s=0, answer=grader, models=["judge"]) as srv:
        ep = EndpointConfig(name="j", base_url=srv.base_url, model="judge")
        async with EndpointClient(ep) as client:
            yield srv, Judge(ep, client, store), store


async def test_a_judge_sends_its_schema_and_caches_valid_replies(tmp_path: Path) -> None:
    async with fake_judge(tmp_path) as (srv, judge, store):
        first = await judge.ask(msg("Answer: 7\nReference answer: 7"), Verdict, template="t1")
        assert first.value == Verdict(verdict="yes") and not first.cached
        body = srv.last_body
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["schema"] == Verdict.model_json_schema()
        assert body["temperature"] == 0.0
        again = await judge.ask(msg("Answer: 7\nReference answer: 7"), Verdict, template="t1")
        assert again.value == first.value and again.cached and srv.requests == 1
        # Another template is another judge: asked again, kept apart.
        other = await judge.ask(msg("Answer: 7\nReference answer: 7"), Verdict, template="t2")
        assert not other.cached and srv.requests == 2
        # A second Judge object on the same store (a resumed run) reads the cache.
        resumed = Judge(judge.endpoint, judge.client, store)
        assert (await resumed.ask(msg("Answer: 7\nReference answer: 7"), Verdict, template="t1")).cached
        assert srv.requests == 2 and resumed.calls == 0


async def test_an_unparseable_reply_is_an_error_with_the_reason_and_is_not_cached(tmp_path: Path) -> None:
    async with fake_judge(tmp_path) as (srv, judge, store):
        reply = await judge.ask(msg("garble"), Verdict, template="t")
        assert reply.value is None and reply.error is not None
        assert reply.error.startswith("unparseable judge reply") and "I think it is fine" in reply.error
        await judge.ask(msg("garble"), Verdict, template="t")
        assert srv.requests == 2  # not cached: asked again
    assert store.count_judge_calls() == 0


def test_judge_identity_names_the_endpoint_model_weights_and_template() -> None:
    ep = EndpointConfig(name="j", base_url="http://127.0.0.1:1/v1", model="judge", weights_digest="sha256:ab")
    ident = judge_identity(ep, "template")
    assert ident["endpoint"] == "j" and ident["served_model"] == "judge" and ident["weights_digest"] == "sha256:ab"
    assert len(ident["template_sha256"]) == 64 and "api_key" not in json.dumps(ident)


# ------------------------------------------------------------------------------- through a real run
def judged_suite(tmp_path: Path, judge: str = "fakejudge", extra: str = "") -> Path:
    folder = tmp_path / "datasets" / "judged"
    folder.mkdir(parents=True)
    rows = [json.loads(line) for line in (ROOT / "datasets" / "arith" / "samples.jsonl").read_text().splitlines()]
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:12]))
    (folder / "suite.yaml").write_text(
        "name: judged\n"
        'prompt: {mode: completion, template: "Q: {question}=\\nA:"}\n'
        "reference_field: answer\n"
        "generation: {temperature: 0, max_tokens: 4, stop: ['\\n']}\n"
        "evaluators:\n"
        "  - name: exact_match\n"
        "  - name: judge_rubric\n"
        f"    options: {{judge: {judge}, labels: ['no', 'yes']{extra}}}\n"
    )
    return folder


def judge_settings(tmp_path: Path, judge_url: str) -> Settings:
    config = tmp_path / "aire.yaml"
    config.write_text(json.dumps({"endpoints": {"fakejudge": {"base_url": judge_url, "model": "judge"}}}))
    return Settings(home=tmp_path / "home", datasets_dir=tmp_path / "datasets", config=config, max_attempts=1)


async def test_judge_rubric_scores_a_run_and_a_repeated_run_pays_once(tmp_path: Path) -> None:
    suite = judged_suite(tmp_path)
    async with (
        FakeOpenAI(latency_s=0, wrong_rate=0.5, seed=3) as model,
        FakeOpenAI(latency_s=0, answer=grader, models=["judge"]) as judge,
    ):
        settings = judge_settings(tmp_path, judge.base_url)
        for attempt in range(2):
            plan = await prepare(settings, suite=str(suite), base_url=model.base_url, model="fake", fresh=True)
            async with sending(plan):
                for i in range(len(plan.shards())):
                    await run_shard(plan.id, i)
            rows = plan.store.results(plan.run_id)
            assert len(rows) == 12
            # The judge agrees with exact match on every sample: it compared answer and reference.
            assert all(r.scores["judge_rubric"] == r.scores["exact_match"] for r in rows)
            assert {r.scores["judge_rubric"] for r in rows} == {0.0, 1.0}
            assert all(r.explanations["judge_rubric"] in ("judge: yes", "judge: no") for r in rows)
            if attempt == 0:
                assert judge.requests == 12
        assert judge.requests == 12  # the second, fresh run read every verdict from the store


async def test_an_unparseable_judge_reply_is_nan_with_its_reason(tmp_path: Path) -> None:
    suite = judged_suite(tmp_path, extra=", rubric: garble")
    async with (
        FakeOpenAI(latency_s=0) as model,
        FakeOpenAI(latency_s=0, answer=grader, models=["judge"]) as judge,
    ):
        settings = judge_settings(tmp_path, judge.base_url)
        plan = await prepare(settings, suite=str(suite), base_url=model.base_url, model="fake")
        async with sending(plan):
            await run_shard(plan.id, 0)
    rows = plan.store.results(plan.run_id)
    assert rows and all(math.isnan(r.scores["judge_rubric"]) for r in rows)
    assert all(r.explanations["judge_rubric"].startswith("unparseable judge reply") for r in rows)
    assert all(r.scores["exact_match"] == 1.0 for r in rows)  # the model's answers stay scored


async def test_an_unknown_judge_endpoint_is_refused_naming_the_field(tmp_path: Path) -> None:
    suite = judged_suite(tmp_path, judge="fakejudg")
    settings = judge_settings(tmp_path, "http://127.0.0.1:9/v1")
    with pytest.raises(InputError) as info:
        await prepare(settings, suite=str(suite), base_url="http://127.0.0.1:9/v1", model="fake")
    message = str(info.value)
    assert "suite.yaml" in message and "evaluators[1].options.judge" in message
    assert "did you mean: fakejudge" in message


async def test_a_rationale_is_asked_for_before_the_verdict_and_becomes_the_explanation(tmp_path: Path) -> None:
    suite = judged_suite(tmp_path, extra=", rubric: reason first, rationale: true")
    async with (
        FakeOpenAI(latency_s=0, wrong_rate=0.5, seed=3) as model,
        FakeOpenAI(latency_s=0, answer=grader, models=["judge"]) as judge,
    ):
        settings = judge_settings(tmp_path, judge.base_url)
        plan = await prepare(settings, suite=str(suite), base_url=model.base_url, model="fake")
        async with sending(plan):
            await run_shard(plan.id, 0)
        schema = judge.last_body["response_format"]["json_schema"]["schema"]
    assert list(schema["properties"]) == ["rationale", "verdict"] and schema["required"] == ["rationale", "verdict"]
    rows = plan.store.results(plan.run_id)
    assert len(rows) == 12 and all(r.scores["judge_rubric"] == r.scores["exact_match"] for r in rows)
    for r in rows:
        verdict = "yes" if r.scores["exact_match"] == 1.0 else "no"
        assert re.fullmatch(rf"judge: {verdict} \(\S+ vs \S+\)", r.explanations["judge_rubric"])


def test_judge_rubric_options_are_checked_when_the_suite_loads() -> None:
    import evaluators

    with pytest.raises(InputError, match="labels"):
        evaluators.bind("judge_rubric", {"judge": "j", "labels": ["yes", "yes"]})
    with pytest.raises(InputError, match="scale_max"):
        evaluators.bind("judge_rubric", {"judge": "j", "scale_min": 5, "scale_max": 1})
    with pytest.raises(InputError, match="template"):
        evaluators.bind("judge_rubric", {"judge": "j", "template": "{answr}"})
    with pytest.raises(InputError, match="judge"):
        evaluators.bind("judge_rubric", {})
