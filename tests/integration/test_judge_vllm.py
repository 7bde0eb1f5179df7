"""The tiny local judge (infra/build_models.py) served by a real vLLM: structured verdicts (a rationale,
then the verdict) through ``judge_rubric`` in a real offline run, their cache in the store, ``aire
judge calibrate`` of it (it decides: kappa well above 0.6 on labels it never saw), and the judged ragas
metrics' own code against it (poor values there, but every sample gets a number or a NaN with its
reason).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aire.cli.app import main
from aire.core.settings import Settings, get_settings
from aire.store import Store
from tests.conftest import MODELS_DIR, REPO, VLLM_VENV, mlflow_runs, run_ids, write_config

pytestmark = pytest.mark.integration

LABELS = REPO / "datasets" / "arith-judged" / "labels.jsonl"


def manifest(name: str) -> dict[str, str]:
    data = json.loads((MODELS_DIR / name / "aire-model.json").read_text())
    return {"weights_digest": data["weights_sha256"], "tokenizer_digest": data["tokenizer_sha256"]}


@pytest.fixture(scope="module")
def judge_body(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """The judge on its own vLLM server for this module (long context: ragas's prompts fit)."""
    from aire.client.config import EndpointConfig, LocalServe
    from aire.ops import vllm as serving
    from aire.ops.processes import free_port

    if not (MODELS_DIR / "judge" / "aire-model.json").exists():
        pytest.fail("the judge model is not built: run `make test` (it runs `aire models build`)")
    settings = Settings(home=tmp_path_factory.mktemp("judge-home"), models=MODELS_DIR, vllm_venv=VLLM_VENV)
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    endpoint = EndpointConfig(
        name="judge",
        base_url=url,
        model="judge",
        serve=LocalServe(model_path=MODELS_DIR / "judge", port=port, cpu_cores="1", max_model_len=8192),
    )
    try:
        serving.start_servers(settings, [endpoint])
        yield {"base_url": url, "model": "judge", **manifest("judge")}
    finally:
        serving.stop_servers(settings)


@pytest.fixture
def config(
    aire_env: Path, tmp_path: Path, vllm_endpoints: dict[str, dict[str, object]], judge_body: dict[str, object]
) -> Path:
    bodies = {name: {**body, "version": "test", **manifest(name)} for name, body in vllm_endpoints.items()}
    return write_config(tmp_path / "aire.yaml", {**bodies, "judge": judge_body})


def results() -> list[dict[str, Any]]:
    """The newest offline run's rows: scores by key, and the explanations."""
    store = Store(get_settings().resolved_store_url)
    try:
        newest = run_ids(store, "offline")[-1]
        return [{"sample": r.sample_id, **r.scores, "why": r.explanations} for r in store.results(newest)]
    finally:
        store.close()


def test_the_judge_agrees_with_exact_match_and_is_cached(config: Path, aire_env: Path, prefect_api: str) -> None:
    assert main(["run", "offline", "--suite", "arith-judged", "--endpoint", "challenger-worse"]) in (0, 1)
    rows = results()
    assert len(rows) == 200
    assert all(not math.isnan(r["judge_correct"]) for r in rows)  # structured output: every reply parses
    assert {r["judge_correct"] for r in rows} <= {0.0, 1.0}
    assert all(re.fullmatch(r"judge: (yes|no) \(\d\d vs \d+\)", r["why"]["judge_correct"]) for r in rows)
    agree = sum(r["judge_correct"] == r["exact_match"] for r in rows) / len(rows)
    print(f"\nthe tiny judge vs exact match on challenger-worse's 200 answers: {agree:.1%} agree")
    # It was trained on challenger-worse's wrong answers among others: it finds them (and the right ones).
    assert agree >= 0.95
    store = Store(get_settings().resolved_store_url)
    calls = store.count_judge_calls()
    store.close()
    assert calls == 200
    # A fresh run of the same answers asks the judge nothing: every verdict is in the store's cache.
    assert main(["run", "offline", "--suite", "arith-judged", "--endpoint", "challenger-worse", "--fresh"]) in (0, 1)
    store = Store(get_settings().resolved_store_url)
    assert store.count_judge_calls() == calls
    store.close()
    (first, second) = sorted(
        mlflow_runs(aire_env, "attributes.run_name = 'arith-judged@challenger-worse'"), key=lambda r: r.info.start_time
    )
    assert first.data.metrics["judge_correct/mean"] == second.data.metrics["judge_correct/mean"]


def test_calibrating_the_real_judge(config: Path, aire_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["judge", "calibrate", "--labels", str(LABELS)]) == 0
    out = capsys.readouterr().out
    (run,) = mlflow_runs(aire_env, "tags.`aire.kind` = 'judge-calibration'")
    kappa = run.data.metrics.get("judge/kappa", math.nan)  # NaN (not logged): one label only
    accuracy = run.data.metrics["judge/accuracy"]
    print(f"\nthe tiny judge on the shipped labels: kappa {kappa:.3f}, accuracy {accuracy:.3f}\n{out}")
    assert "kappa" in out and run.data.metrics["judge/n_unscored"] == 0
    # The labels' wrong answers are not its training table's: it generalises (39 of 40 in the builder).
    assert kappa >= 0.8 and accuracy >= 0.9


def test_judged_ragas_metrics_run_against_the_real_judge(config: Path, aire_env: Path, prefect_api: str) -> None:
    # The answering model needs room for the passages: the judge's server (8,192 positions) answers
    # too; the champion's 64 would refuse the prompts.
    main(["run", "offline", "--suite", "rag", "--endpoint", "judge", "--limit", "4"])
    rows = results()
    assert len(rows) == 4
    assert all(not r["why"].get("token_f1", "").startswith("request failed") for r in rows)
    judged = ["ragas_faithfulness", "ragas_answer_relevancy", "ragas_context_precision", "ragas_context_recall"]
    judged.append("ragas_factual_correctness")
    tally: dict[str, list[str]] = {}
    for row in rows:
        for key in judged:
            value = row[key]
            if math.isnan(value):
                assert row["why"].get(key), f"{key} of {row['sample']} is NaN without a reason"
                assert not row["why"][key].startswith("request failed")  # the judge was asked
                tally.setdefault(key, []).append(row["why"][key][:60])
            else:
                assert 0.0 <= value <= 1.0
    print(f"\nNaN reasons from the tiny judge: {tally}")
