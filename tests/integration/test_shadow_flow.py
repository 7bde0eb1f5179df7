"""The shadow-comparison flow and `aire gate` for real: Prefect, MLflow (runs, nested runs, registry),
the store; the two arms are fake OpenAI server processes (one right, one wrong on a seeded 30% of
prompts). The same path against real vLLM models is in test_shadow_vllm.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from aire.cli.app import main
from aire.core.settings import get_settings
from aire.store.store import FINISHED, Store
from tests.conftest import (
    AIRE,
    REPO,
    SQLITE_ONLY,
    fake_process,
    mlflow_client,
    mlflow_runs,
    run_ids,
    server_stats,
    stop_process,
    write_config,
)

# Each test runs on both store backends (SQLite, PostgreSQL): aire_store in tests/conftest.py.
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("aire_store")]

# A policy the fake servers can meet: latency rules loose enough for a loaded 2-core CI box.
POLICY = {
    "name": "test",
    "alpha": 0.05,
    "n_min": 100,
    "rules": [
        {"metric": "exact_match/mean", "kind": "non_inferiority", "margin": 0.03},
        {"metric": "numeric/mean", "kind": "non_inferiority", "margin": 0.03},
        {"metric": "latency/ttft_ms/p95", "kind": "latency_slo", "threshold": 2000, "higher_is_better": False},
    ],
}


@pytest.fixture(scope="module")
def arms() -> Iterator[dict[str, str]]:
    """Base URLs of three fake servers: right, right (another process), and 30% wrong."""
    procs = {
        "right": fake_process(10),
        "right-too": fake_process(10),
        "wrong": fake_process(10, "--wrong-rate", "0.3", "--seed", "3"),
    }
    try:
        yield {name: url for name, (_, url) in procs.items()}
    finally:
        for proc, _ in procs.values():
            stop_process(proc)


@pytest.fixture
def gate_env(aire_env: Path, arms: dict[str, str], tmp_path: Path, prefect_api: str) -> Path:
    write_config(
        tmp_path / "aire.yaml",
        {
            "champion": {"base_url": arms["right"], "model": "fake", "version": "1"},
            "challenger-same": {"base_url": arms["right-too"], "model": "fake", "version": "2"},
            "challenger-worse": {"base_url": arms["wrong"], "model": "fake", "version": "3"},
        },
    )
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(POLICY))
    get_settings.cache_clear()
    return tmp_path


def gate(tmp: Path, challenger: str, *extra: str) -> int:
    return main(
        [
            "gate",
            "--policy",
            str(tmp / "policy.yaml"),
            "--champion",
            "champion",
            "--challenger",
            challenger,
            "--out",
            str(tmp / "out"),
            *extra,
        ]
    )


def test_same_model_passes_and_everything_is_recorded(
    gate_env: Path, aire_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = gate(gate_env, "challenger-same", "--suite", "arith")
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASS" in out and "report.md" in out

    decision = json.loads((gate_env / "out" / "decision.json").read_text())
    assert decision["verdict"] == "PASS" and decision["exit_code"] == 0
    assert decision["counts"] == {"n_pairs": 200, "n_errors": 0, "n_unpaired": 0}
    prov = decision["provenance"]
    assert len(prov["suite_sha256"]) == 64 and len(prov["policy_sha256"]) == 64 and prov["code_version"]
    assert prov["champion"]["endpoint"] == "champion" and prov["challenger"]["endpoint"] == "challenger-same"
    assert decision["metrics"]["exact_match/mean"]["delta"]["value"] == 0.0
    report = (gate_env / "out" / "report.md").read_text()
    assert "PASS" in report and "exact_match/mean" in report and "latency.png" in report
    assert (gate_env / "out" / "latency.png").read_bytes()[:4] == b"\x89PNG"

    # One parent run with one nested run per arm, all finished, with the artifacts a reviewer opens.
    by_kind = {r.data.tags["aire.kind"]: r for r in mlflow_runs(aire_env)}
    assert set(by_kind) == {"shadow", "shadow-champion", "shadow-challenger"}
    parent = by_kind["shadow"]
    assert parent.info.run_id == decision["mlflow"]["run_id"]
    assert parent.data.tags["aire.verdict"] == "PASS"
    for arm in ("shadow-champion", "shadow-challenger"):
        assert by_kind[arm].data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert by_kind[arm].info.status == "FINISHED"
        assert by_kind[arm].data.metrics["exact_match/mean"] == 1.0
    client = mlflow_client(aire_env)
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"decision.json", "report.md", "latency.png", "pairs.json"} <= names
    pairs = client.load_table(
        experiment_id=parent.info.experiment_id, run_ids=[parent.info.run_id], artifact_file="pairs.json"
    )
    assert len(pairs) == 200 and {"champion.output", "challenger.output"} <= set(pairs.columns)
    assert parent.data.metrics["delta/exact_match/mean"] == 0.0

    # Both served models are registered versions with their identity as tags.
    reg = decision["registry"]
    versions = {str(mv.version): mv for mv in client.search_model_versions(f"name = '{reg['model']}'")}
    assert versions[reg["challenger_version"]].tags["endpoint"] == "challenger-same"
    assert versions[reg["champion_version"]].tags["served_model"] == "fake"

    # Promotion on this PASS decision, then the history shows it.
    assert main(["promote", "--decision", str(gate_env / "out" / "decision.json"), "--alias", "champion"]) == 0
    assert main(["history", reg["model"]]) == 0
    out = capsys.readouterr().out
    assert f"-> v{reg['challenger_version']}" in out and "PASS" in out


def test_worse_model_fails_and_cannot_be_promoted(
    gate_env: Path, aire_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = gate(gate_env, "challenger-worse", "--suite", "arith")
    out = capsys.readouterr().out
    assert code == 1, out
    decision = json.loads((gate_env / "out" / "decision.json").read_text())
    assert decision["verdict"] == "FAIL"
    delta = decision["metrics"]["exact_match/mean"]["delta"]
    assert -0.45 < delta["value"] < -0.15 and delta["ci_high"] < -0.03
    ni = next(r for r in decision["rules"] if r["rule"]["metric"] == "exact_match/mean")
    assert ni["verdict"] == "FAIL"
    refused = main(["promote", "--decision", str(gate_env / "out" / "decision.json"), "--alias", "champion"])
    assert refused == 1
    assert "refusing" in capsys.readouterr().err


def test_a_tournament_gates_each_challenger_at_alpha_over_k_and_promotes_only_the_winner(
    gate_env: Path, aire_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = gate_env / "tournament"
    args = ["gate", "--policy", str(gate_env / "policy.yaml"), "--champion", "champion", "--suite", "arith"]
    args += ["--challenger", "challenger-worse", "--challenger", "challenger-same", "--out", str(out)]
    code = main(args)
    printed = capsys.readouterr().out
    assert code == 0, printed
    standings = json.loads((out / "tournament.json").read_text())
    assert standings["winner"] == "challenger-same" and standings["family_alpha"] == 0.05
    assert [r["challenger"] for r in standings["standings"]] == ["challenger-same", "challenger-worse"]
    assert [r["verdict"] for r in standings["standings"]] == ["PASS", "FAIL"]
    # Each comparison read its intervals at alpha / 2: the 97.5% level is in its reasons.
    worse = json.loads((out / "challenger-worse" / "decision.json").read_text())
    assert any("97.5% CI" in r for r in worse["reasons"]), worse["reasons"]
    assert worse["tournament"]["challenger"] == "challenger-worse"
    assert (
        "Winner: challenger-same" in printed and "| 1 | challenger-same | PASS |" in (out / "tournament.md").read_text()
    )
    assert main(["promote", "--decision", str(out / "decision.json"), "--alias", "champion"]) == 0
    refused = main(["promote", "--decision", str(out / "challenger-worse" / "decision.json"), "--alias", "champion"])
    assert refused == 1 and "refusing" in capsys.readouterr().err


def test_too_few_samples_is_inconclusive_exit_2(gate_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert gate(gate_env, "challenger-same", "--suite", "arith", "--limit", "40") == 2
    decision = json.loads((gate_env / "out" / "decision.json").read_text())
    assert decision["verdict"] == "INCONCLUSIVE"
    assert any("fewer than n_min=100" in r for r in decision["reasons"])


def test_sequential_stops_early_on_a_clear_regression(gate_env: Path, arms: dict[str, str]) -> None:
    before = server_stats(arms["wrong"])["requests"]
    # --warmup 0: warm-up requests are unrecorded extras; here every request must be a counted one.
    assert gate(gate_env, "challenger-worse", "--suite", "arith", "--sequential", "--batch", "25", "--warmup", "0") == 1
    decision = json.loads((gate_env / "out" / "decision.json").read_text())
    seq = decision["sequential"]
    assert seq["n_used"] < 200 and seq["looks"][-1]["verdict"] == "FAIL"
    assert all(look["verdict"] == "INCONCLUSIVE" for look in seq["looks"][:-1])
    assert seq["n_used"] == seq["looks"][-1]["n"]
    # It really stopped sending: the challenger saw only the inputs of the looks it needed.
    assert server_stats(arms["wrong"])["requests"] - before == seq["n_used"]
    assert seq["fixed_n_plan"] and seq["fraction_of_plan"] == pytest.approx(seq["n_used"] / seq["fixed_n_plan"])


def test_replayed_traffic_compares_agreement_and_latency(gate_env: Path, aire_env: Path) -> None:
    policy = REPO / "gates" / "traffic.yaml"
    traffic = REPO / "datasets" / "traffic" / "arith-prod.jsonl"
    common = ["gate", "--policy", str(policy), "--champion", "champion", "--traffic", str(traffic)]
    assert main([*common, "--challenger", "challenger-same", "--out", str(gate_env / "same")]) in (0, 2)
    same = json.loads((gate_env / "same" / "decision.json").read_text())
    assert same["metrics"]["agreement_exact/mean"]["challenger"]["value"] == 1.0
    assert same["provenance"]["source"] == "traffic" and len(same["provenance"]["traffic_sha256"]) == 64
    rules = {r["rule"]["metric"]: r["verdict"] for r in same["rules"]}
    assert rules["agreement_exact/mean"] == "PASS" and rules["agreement_f1/mean"] == "PASS"

    assert main([*common, "--challenger", "challenger-worse", "--out", str(gate_env / "worse")]) == 1
    worse = json.loads((gate_env / "worse" / "decision.json").read_text())
    agreement = worse["metrics"]["agreement_exact/mean"]["challenger"]["value"]
    assert 0.55 < agreement < 0.85  # the fake is wrong on a seeded ~30% of prompts


@SQLITE_ONLY  # refused before the store is opened
@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--suite", "arith", "--traffic", "x.jsonl"], "exactly one of --suite, --traffic or --mirrored"),
        (["--suite", "nope"], "nope"),
        (["--suite", "arith", "--policy", "missing.yaml"], "missing.yaml: file not found"),
    ],
)
def test_bad_input_exits_3_and_records_nothing(
    gate_env: Path, aire_env: Path, args: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    full = ["gate", "--champion", "champion", "--challenger", "challenger-same", *args]
    if "--policy" not in args:
        full += ["--policy", str(gate_env / "policy.yaml")]
    assert main(full) == 3
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1
    assert mlflow_runs(aire_env) == []
    assert not (gate_env / "out").exists()
    assert not (aire_env / "aire.db").exists()  # refused before the store was opened: SQLITE_ONLY


@SQLITE_ONLY  # refused before the store is opened
def test_bad_policy_key_says_did_you_mean(gate_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = dict(POLICY, rules=[dict(POLICY["rules"][0], margn=0.1)])
    (gate_env / "policy.yaml").write_text(yaml.safe_dump(bad))
    assert gate(gate_env, "challenger-same", "--suite", "arith") == 3
    err = capsys.readouterr().err
    assert "rules[0].margn" in err and "did you mean: margin" in err


@SQLITE_ONLY  # refused before the store is opened
def test_bad_traffic_line_names_the_line(gate_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    traffic = gate_env / "t.jsonl"
    traffic.write_text('{"id": "a", "prompt": "Q: 1+1=\\nA:"}\n{"id": "b", "messages": [{"role": "bot"}]}\n')
    assert gate(gate_env, "challenger-same", "--traffic", str(traffic)) == 3
    err = capsys.readouterr().err
    assert f"{traffic}:2" in err and "messages[0].role" in err


def test_sigkill_mid_comparison_then_resume_sends_only_missing_requests(
    gate_env: Path, aire_env: Path, prefect_api: str
) -> None:
    slow_a, url_a = fake_process(100)
    slow_b, url_b = fake_process(100)
    write_config(
        gate_env / "aire.yaml",
        {"slow-a": {"base_url": url_a, "model": "fake"}, "slow-b": {"base_url": url_b, "model": "fake"}},
    )
    store = Store(get_settings().resolved_store_url)
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    cmd = [AIRE, "gate", "--policy", str(gate_env / "policy.yaml"), "--champion", "slow-a", "--challenger", "slow-b"]
    cmd += ["--suite", "arith", "--concurrency", "4", "--out", str(gate_env / "out"), "--warmup", "0"]
    try:
        victim = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 120
        committed = 0
        while committed < 60 and time.monotonic() < deadline:
            time.sleep(0.2)
            ids = run_ids(store)
            committed = sum(store.count_results(i) for i in ids)
        assert committed >= 60, "the comparison never got going"
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        time.sleep(0.5)

        arm_runs = {kind: run_ids(store, f"shadow-{kind}")[0] for kind in ("champion", "challenger")}
        done = {arm: store.completed_ids(rid) for arm, rid in arm_runs.items()}
        before = {"champion": server_stats(url_a)["requests"], "challenger": server_stats(url_b)["requests"]}
        assert mlflow_runs(aire_env) == []  # nothing half-written recorded
        assert not (gate_env / "out" / "decision.json").exists()

        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "Resumed an interrupted comparison" in proc.stdout
        # Each arm was asked only for what it had not answered; no answered input twice.
        assert server_stats(url_a)["requests"] - before["champion"] == 200 - len(done["champion"])
        assert server_stats(url_b)["requests"] - before["challenger"] == 200 - len(done["challenger"])
        for arm, url in (("champion", url_a), ("challenger", url_b)):
            by_prompt = server_stats(url)["by_prompt"]
            for sample_id in done[arm]:
                op, a, b = sample_id.split("-")
                assert by_prompt[f"Q: {a}{'+' if op == 'add' else '*'}{b}=\nA:"] == 1, f"{arm}: {sample_id} twice"
            assert store.get_run(arm_runs[arm]).status == FINISHED
        assert len(run_ids(store)) == 2  # resumed the same store runs, no new ones
    finally:
        stop_process(slow_a)
        stop_process(slow_b)


@SQLITE_ONLY  # refused before the store is opened
def test_rule_direction_contradicting_its_evaluator_exits_3(
    gate_env: Path, aire_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backwards = dict(POLICY, rules=[dict(POLICY["rules"][0], higher_is_better=False), *POLICY["rules"][1:]])
    (gate_env / "policy.yaml").write_text(yaml.safe_dump(backwards))
    assert gate(gate_env, "challenger-same", "--suite", "arith") == 3
    err = capsys.readouterr().err
    assert "rules[0].higher_is_better" in err and "evaluator says higher is better" in err
    assert len(err.strip().splitlines()) == 1
    assert mlflow_runs(aire_env) == [] and not (gate_env / "out").exists()


@SQLITE_ONLY  # refused before the store is opened
def test_sequential_refuses_clustered_samples(
    gate_env: Path, aire_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = gate_env / "clustered"
    suite.mkdir()
    spec = yaml.safe_load((REPO / "datasets" / "arith" / "suite.yaml").read_text())
    (suite / "suite.yaml").write_text(yaml.safe_dump({**spec, "name": "clustered", "group_field": "doc"}))
    rows = [json.loads(line) for line in (REPO / "datasets" / "arith" / "samples.jsonl").read_text().splitlines()]
    (suite / "samples.jsonl").write_text("".join(json.dumps({**r, "doc": i % 10}) + "\n" for i, r in enumerate(rows)))
    assert gate(gate_env, "challenger-same", "--suite", str(suite), "--sequential") == 3
    err = capsys.readouterr().err
    assert "--sequential cannot account for clustered samples" in err and "'doc'" in err
    assert mlflow_runs(aire_env) == []
