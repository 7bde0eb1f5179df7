"""Per-sample MLflow traces (aire.tracking.traces), read back through MLflow's public API from a real
SQLite tracking store after runs against the fake OpenAI server: one trace per sample linked to the
run, its model-call span and assessments, the reference as an expectation, an unscored sample not
logged as 0, both arms of a comparison traced under one sample id, no API key anywhere, the suite as
the run's dataset, and AIRE_TRACE_SAMPLES."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from aire.core.settings import Settings
from aire.run import finalise, prepare, run_shard, sending
from aire.testing.fake_openai import FakeOpenAI
from aire.testing.fake_openai.faults import Fault
from tests.conftest import fake_gate, mlflow_client, write_config

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-aire-test-secret-0123456789"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("AIRE_TEST_KEY", SECRET)
    monkeypatch.delenv("AIRE_TRACE_SAMPLES", raising=False)
    return Settings(home=tmp_path / "home", datasets_dir=ROOT / "datasets", max_attempts=1, shard_size=50)


def _traces(settings: Settings, run_id: str) -> list[Any]:
    mc = mlflow_client(settings.home)
    run = mc.get_run(run_id)
    return mc.search_traces(
        locations=[run.info.experiment_id], filter_string=f"metadata.`mlflow.sourceRun` = '{run_id}'", max_results=500
    )


async def _offline(settings: Settings, tmp_path: Path, fake: FakeOpenAI, limit: int = 30) -> Any:
    cfg = write_config(
        tmp_path / "aire.yaml",
        {"fake-ep": {"base_url": fake.base_url, "model": "fake", "api_key_env": "AIRE_TEST_KEY"}},
    )
    settings = settings.model_copy(update={"config": cfg})
    plan = await prepare(settings, suite="arith", endpoint="fake-ep", limit=limit)
    async with sending(plan):
        for i in range(len(plan.shards())):
            await run_shard(plan.id, i)
    return finalise(plan.id)


async def test_an_offline_run_logs_one_trace_per_sample_with_spans_and_assessments(
    settings: Settings, tmp_path: Path
) -> None:
    # Request 0 fails (400, not retried): its sample has no score, which must not read as 0.
    async with FakeOpenAI(latency_s=0, wrong_rate=0.3, seed=3, faults={0: Fault("status", 400)}) as fake:
        result = await _offline(settings, tmp_path, fake)
    traces = _traces(settings, result.mlflow_run_id)
    assert len(traces) == result.n_samples == 30
    by_sample = {t.info.tags["aire.sample_id"]: t for t in traces}
    assert len(by_sample) == 30

    failed = [t for t in traces if t.info.state.value == "ERROR"]
    assert len(failed) == 1
    for t in traces:
        root, call = sorted(t.data.spans, key=lambda s: s.parent_id is not None)
        assert root.inputs["prompt"].startswith("Q: ") and t.info.request_preview.startswith("Q: ")
        assert call.parent_id == root.span_id and call.span_type == "LLM"
        assert call.attributes["endpoint"] == "fake-ep" and call.attributes["served_model"] == "fake"
        feedback = {a.name: a for a in t.info.assessments if a.feedback is not None}
        expectation = [a for a in t.info.assessments if a.expectation is not None]
        assert len(expectation) == 1 and expectation[0].name == "expected_response"
        if t in failed:
            # Unscored: no value and an error saying why, never a 0.
            assert feedback["exact_match"].value is None and feedback["exact_match"].error is not None
            continue
        assert call.attributes["ttft_ms"] > 0 and call.attributes["e2e_ms"] >= call.attributes["ttft_ms"]
        assert call.attributes["output_tokens"] >= 1 and call.attributes["prompt_tokens"] >= 1
        assert t.info.token_usage is not None, (t.info.trace_metadata, call.attributes)
        assert t.info.token_usage["output_tokens"] == call.attributes["output_tokens"]
        assert root.outputs == t.info.response_preview
        assert feedback["exact_match"].value in (0.0, 1.0)
        assert feedback["exact_match"].value == (1.0 if root.outputs.strip() == str(expectation[0].value) else 0.0)
    # No API key in any trace: spans, tags, metadata, assessments.
    for t in traces:
        assert SECRET not in json.dumps(t.to_dict(), default=str)
        assert "AIRE_TEST_KEY" not in json.dumps(t.to_dict(), default=str)

    mc = mlflow_client(settings.home)
    (ds,) = mc.get_run(result.mlflow_run_id).inputs.dataset_inputs
    assert ds.dataset.name == "arith" and result.suite_version.startswith(ds.dataset.digest)
    assert {t.key: t.value for t in ds.tags}["mlflow.data.context"] == "eval"


async def test_a_comparisons_two_arms_are_traced_under_the_same_sample_ids(settings: Settings, tmp_path: Path) -> None:
    async with FakeOpenAI(latency_s=0) as a, FakeOpenAI(latency_s=0, wrong_rate=0.3, seed=2) as b:
        result = await fake_gate(
            settings, tmp_path, {"champion": a, "challenger": b}, "arith", api_key_env="AIRE_TEST_KEY"
        )
    mc = mlflow_client(settings.home)
    parent = mc.get_run(result.mlflow_run_id)
    arms = mc.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    assert {r.data.tags["aire.kind"] for r in arms} == {"shadow-champion", "shadow-challenger"}
    ids = {}
    for arm in arms:
        traces = _traces(settings, arm.info.run_id)
        ids[arm.data.tags["aire.kind"]] = {t.info.tags["aire.sample_id"] for t in traces}
        assert all(SECRET not in json.dumps(t.to_dict(), default=str) for t in traces)
        assert arm.inputs.dataset_inputs[0].dataset.name == "arith"
    assert ids["shadow-champion"] == ids["shadow-challenger"] and len(ids["shadow-champion"]) > 0


async def test_aire_trace_samples_caps_or_turns_off_tracing(settings: Settings, tmp_path: Path) -> None:
    assert Settings(_env_file=None).trace_samples is None  # unset: every sample is traced
    async with FakeOpenAI(latency_s=0) as fake:
        capped = await _offline(settings.model_copy(update={"trace_samples": 5}), tmp_path, fake, limit=12)
        off = await _offline(settings.model_copy(update={"trace_samples": 0}), tmp_path, fake, limit=12)
    assert len(_traces(settings, capped.mlflow_run_id)) == 5
    assert _traces(settings, off.mlflow_run_id) == []


def test_a_nan_score_is_an_error_feedback_and_a_judge_explanation_its_rationale() -> None:
    from datetime import UTC, datetime

    from aire.core.types import Sample
    from aire.store.schema import ResultRow
    from aire.tracking.traces import build_traces

    row = ResultRow(
        run_id="r",
        sample_id="s1",
        text=" 7",
        e2e_s=0.05,
        attempts=1,
        scores_json={"exact_match": 1.0, "faithfulness": None},
        explanations={"faithfulness": "the judge returned no verdict"},
        created_at=datetime.now(UTC),
    )
    sample = Sample(id="s1", prompt="Q: 3+4=\nA:", reference="7")
    (t,) = build_traces(
        "0", "run", rows=[row], samples={"s1": sample}, score_keys=["exact_match", "faithfulness"], params={}
    )
    fb = {a.name: a for a in t.info.assessments if a.feedback is not None}
    assert fb["exact_match"].value == 1.0 and fb["exact_match"].source.source_type == "CODE"
    assert fb["faithfulness"].value is None and not math.isnan(fb["faithfulness"].value or 0.0)
    assert fb["faithfulness"].error.error_message == "the judge returned no verdict"
    assert fb["faithfulness"].rationale == "the judge returned no verdict"
    assert fb["faithfulness"].source.source_type == "LLM_JUDGE"
