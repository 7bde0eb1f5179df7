"""`aire rescore`: a finished run's stored completions scored by the suite as it is now, with no new
model request (the fake server's counter), recorded as a new store run and MLflow run linked to the
original; a run that is not in the store, or a suite without the run's samples, exits 3."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from aire.cli.app import main
from aire.core.settings import get_settings
from aire.run import finalise, prepare, run_shard, sending
from aire.store import Store
from tests.conftest import REPO, fake_process, mlflow_runs, server_stats, stop_process


@pytest.fixture
def model(aire_env: Path) -> Iterator[str]:
    proc, url = fake_process(0, "--wrong-rate", "0.3", "--seed", "5")
    yield url
    stop_process(proc)


def suite_copy(tmp_path: Path, n: int = 40) -> Path:
    folder = tmp_path / "suite"
    shutil.copytree(REPO / "datasets" / "arith", folder)
    rows = (folder / "samples.jsonl").read_text().splitlines()[:n]
    (folder / "samples.jsonl").write_text("\n".join(rows) + "\n")
    return folder


async def _finished_run(folder: Path, url: str) -> str:
    plan = await prepare(get_settings(), suite=str(folder), base_url=url, model="fake")
    async with sending(plan):
        for i in range(len(plan.shards())):
            await run_shard(plan.id, i)
    return finalise(plan.id).run_id


def finished_run(folder: Path, url: str) -> str:
    return asyncio.run(_finished_run(folder, url))


def test_rescore_scores_stored_completions_with_the_current_suite_and_asks_no_model(
    model: str, aire_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = suite_copy(tmp_path)
    run_id = finished_run(folder, model)
    asked = server_stats(model)["requests"]
    # The suite changes after the run: a new metric, a floor the old answers cannot meet.
    spec = folder / "suite.yaml"
    text = spec.read_text().replace(
        "floors:", "  - name: numeric\n    as: within_two\n    options: {abs_tol: 2}\nfloors:"
    )
    spec.write_text(text.replace("exact_match/mean >= 0.9", "exact_match/mean >= 0.99"))
    assert main(["rescore", "--run", run_id]) == 1  # 30% wrong answers fail the new floor
    assert server_stats(model)["requests"] == asked  # no model request
    assert "no model was asked" in capsys.readouterr().out

    store = Store(get_settings().resolved_store_url)
    try:
        (new,) = store.runs("rescore")
        old_rows = {r.sample_id: r for r in store.results(run_id)}
        new_rows = {r.sample_id: r for r in store.results(new.id)}
    finally:
        store.close()
    assert new.params["rescored_from"] == run_id
    assert old_rows.keys() == new_rows.keys() and len(new_rows) == 40
    for sid, row in new_rows.items():
        old = old_rows[sid]
        assert (row.text, row.ttft_s, row.fingerprint) == (old.text, old.ttft_s, old.fingerprint)
        assert row.scores["exact_match"] == old.scores["exact_match"]
        assert row.scores["within_two"] >= row.scores["exact_match"]
    (rescored,) = mlflow_runs(aire_env, "tags.`aire.kind` = 'rescore'")
    assert rescored.data.tags["aire.rescored_from"] == run_id
    (original,) = mlflow_runs(aire_env, "tags.`aire.kind` = 'offline'")
    assert rescored.data.tags["aire.rescored_from_mlflow"] == original.info.run_id
    assert "within_two/mean" in rescored.data.metrics and "within_two/mean" not in original.data.metrics


def test_rescore_refuses_an_unknown_run_and_a_suite_without_its_samples(
    model: str, aire_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rescore", "--run", "no-such-run"]) == 3
    assert "field 'run'" in capsys.readouterr().err
    run_id = finished_run(suite_copy(tmp_path), model)
    other = tmp_path / "other"
    shutil.copytree(REPO / "datasets" / "arith", other)
    rows = [json.loads(line) for line in (other / "samples.jsonl").read_text().splitlines()]
    (other / "samples.jsonl").write_text("".join(json.dumps({**r, "id": "x" + r["id"]}) + "\n" for r in rows))
    assert main(["rescore", "--run", run_id, "--suite", str(other)]) == 3
    err = capsys.readouterr().err
    assert "field 'suite'" in err and "40 of the run's samples are not in suite" in err


def test_an_endpoints_price_gives_every_run_its_cost_slis(model: str, aire_env: Path, tmp_path: Path) -> None:
    from tests.conftest import mlflow_client, write_config

    price = {"input_per_1k": 0.5, "output_per_1k": 2.0}
    write_config(tmp_path / "aire.yaml", {"priced": {"base_url": model, "model": "fake", "price": price}})

    async def run() -> str:
        plan = await prepare(get_settings(), suite=str(suite_copy(tmp_path)), endpoint="priced")
        async with sending(plan):
            for i in range(len(plan.shards())):
                await run_shard(plan.id, i)
        return finalise(plan.id).mlflow_run_id

    mlflow_id = asyncio.run(run())
    metrics = mlflow_client(aire_env).get_run(mlflow_id).data.metrics
    tokens_in, tokens_out = metrics["cost/prompt_tokens/total"], metrics["cost/output_tokens/total"]
    assert tokens_in > 0 and tokens_out > 0
    assert metrics["cost/total"] == pytest.approx(tokens_in / 1000 * 0.5 + tokens_out / 1000 * 2.0)
    right = metrics["exact_match/mean"] * 40
    assert metrics["cost/per_point/exact_match"] == pytest.approx(metrics["cost/total"] / right)
