"""The monitor flow for real: registry aliases from a real gate, a production endpoint that silently
starts answering wrongly, canary FAIL -> incident -> rollback, GX on the logs, MLflow, the Prometheus
textfile, and a real scheduled run (flow.serve against a Prefect server).

The endpoints are fake OpenAI server processes; the "silent switch" restarts production's server on
the same port with a 30% wrong-answer rate, which is what a bad weights push looks like from outside.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aire.cli.app import main
from aire.core.settings import get_settings
from aire.ops.processes import free_port
from tests.conftest import AIRE, REPO, fake_process, stop_process, wait_http, write_config

pytestmark = pytest.mark.integration
MODEL = "aire-model"
TRAFFIC = REPO / "datasets" / "traffic" / "arith-prod.jsonl"


class Fake:
    """A fake server on a fixed port that can be restarted with other behaviour on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, *extra: str) -> None:
        self.stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aire.testing.fake_openai", "--port", str(self.port), "--latency-ms", "5", *extra],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_http(f"http://127.0.0.1:{self.port}/health", 20, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


@pytest.fixture
def deployed(aire_env: Path, tmp_path: Path, prefect_api: str) -> Iterator[dict[str, object]]:
    """v1 (prod-a) then v2 (prod-b) promoted to production through a real PASS gate."""
    a, b = Fake(), Fake()
    a.start()
    b.start()
    write_config(
        tmp_path / "aire.yaml",
        {
            "prod-a": {"base_url": a.url, "model": "fake", "version": "1"},
            "prod-b": {"base_url": b.url, "model": "fake", "version": "2"},
        },
    )
    get_settings.cache_clear()
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "n_min: 100\nrules:\n"
        "  - {metric: exact_match/mean, kind: non_inferiority, margin: 0.03}\n"
        "  - {metric: numeric/mean, kind: non_inferiority, margin: 0.03}\n"
    )
    os.environ["AIRE_GATE_POLICY"] = str(policy)
    get_settings.cache_clear()
    out = tmp_path / "gate"
    try:
        assert (
            main(["gate", "--champion", "prod-a", "--challenger", "prod-b", "--suite", "arith", "--out", str(out)]) == 0
        )
        decision = json.loads((out / "decision.json").read_text())
        v1, v2 = decision["registry"]["champion_version"], decision["registry"]["challenger_version"]
        assert (
            main(
                [
                    "promote",
                    "--model",
                    MODEL,
                    "--version",
                    v1,
                    "--alias",
                    "production",
                    "--force",
                    "--reason",
                    "first release",
                ]
            )
            == 0
        )
        assert main(["promote", "--decision", str(out / "decision.json"), "--alias", "production"]) == 0
        yield {"a": a, "b": b, "v1": v1, "v2": v2, "tmp": tmp_path}
    finally:
        os.environ.pop("AIRE_GATE_POLICY", None)
        a.stop()
        b.stop()


def production() -> str | None:
    from aire.release.registry import current

    return current(get_settings(), MODEL, "production")


def test_silent_regression_is_caught_and_rolled_back(
    deployed: dict[str, object], aire_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    b: Fake = deployed["b"]  # type: ignore[assignment]
    v1, v2 = deployed["v1"], deployed["v2"]
    logs = aire_env / "logs"
    # Healthy production traffic, then a log line a broken gateway wrote.
    assert main(["traffic", "--endpoint", "prod-b", "--file", str(TRAFFIC), "--limit", "120"]) == 0
    with (logs / "prod-b.jsonl").open("a") as fh:
        fh.write('{"id": "bad-1", "ts": "yesterday", "endpoint": "prod-b", "model": "fake", "status": "weird"}\n')
        fh.write("{not json\n")
    assert main(["monitor", "--no-embeddings", "--canary-size", "100"]) == 0  # healthy
    capsys.readouterr()

    b.start("--wrong-rate", "0.3", "--seed", "5")  # the silent switch: same URL, same model name
    assert main(["traffic", "--endpoint", "prod-b", "--file", str(TRAFFIC), "--limit", "120"]) == 0
    code = main(["monitor", "--no-embeddings", "--canary-size", "100"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "BREACH" in out and "canary" in out
    # ~30 wrong answers in 100 FAIL even at the severe level: rolled back at once, not after a second run.
    assert "FAIL at the severe level" in out, out
    assert production() == v1  # rolled back

    from aire.release.incidents import list_incidents
    from aire.release.registry import history
    from aire.store.store import Store

    store = Store(get_settings().resolved_store_url)
    (incident,) = list_incidents(store, MODEL)
    assert incident.version == v2 and incident.rolled_back_to == v1 and incident.status == "open"
    assert incident.actuator["kind"] == "dry-run" and incident.mlflow_run_id
    assert history(store, MODEL)[-1].verdict == "ROLLBACK"

    from mlflow import MlflowClient

    run = MlflowClient(tracking_uri=get_settings().resolved_tracking_uri).get_run(incident.mlflow_run_id)
    assert run.data.tags["aire.kind"] == "monitor" and run.data.tags["aire.incident"] == str(incident.id)
    client = MlflowClient(tracking_uri=get_settings().resolved_tracking_uri)
    report = json.loads(Path(client.download_artifacts(run.info.run_id, "monitor.json", str(aire_env))).read_text())
    validation = report["traffic"]["validation"]
    assert validation["n_bad_rows"] >= 1 and validation["unparseable"]  # reported, not a crash
    assert report["traffic"]["bad_fraction"] == validation["n_bad_rows"] / validation["n_rows"]
    assert report["canary"]["verdict"] == "FAIL" and report["canary"]["severe_verdict"] == "FAIL"
    assert report["canary"]["escalation"]["state"] == "ROLLBACK" and report["canary"]["escalation"]["severe"]
    assert run.data.tags["aire.canary_escalation"] == "ROLLBACK"

    prom = (aire_env / "metrics" / f"{MODEL}.prom").read_text()
    assert "aire_incidents_open" in prom and 'outcome="breach"' in prom

    # The failing version cannot be promoted again until the incident is cleared.
    assert (
        main(["promote", "--model", MODEL, "--version", v2, "--alias", "production", "--force", "--reason", "retry"])
        == 1
    )
    # The next run watches v1 (healthy): no second rollback.
    assert main(["monitor", "--no-embeddings", "--canary-size", "100"]) == 0
    assert production() == v1 and len(list_incidents(store, MODEL)) == 1


def test_the_gateways_own_log_catches_a_silent_regression_without_a_canary(
    deployed: dict[str, object], aire_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Production's traffic through a real gateway; the silent switch; then a monitor run with no
    canary at all: a calibrated judge scores the answers in the gateway's log, before vs after, and the
    drop rolls production back. The rollback moves the gateway's route to v1."""
    from datetime import UTC, datetime

    import yaml

    a, b = deployed["a"], deployed["b"]
    tmp: Path = deployed["tmp"]  # type: ignore[assignment]
    judge, judge_url = fake_process(0, "--judge", "exact", "--model", "judge")
    gateway = tmp / "gateway.yaml"
    port = free_port()
    gateway.write_text(yaml.safe_dump({"listen": {"port": port}, "refresh_s": 0.5, "routes": {MODEL: {}}}))
    url = f"http://127.0.0.1:{port}/v1"
    try:
        endpoints = {
            "prod-a": {"base_url": a.url, "model": "fake", "version": "1"},  # type: ignore[attr-defined]
            "prod-b": {"base_url": b.url, "model": "fake", "version": "2"},  # type: ignore[attr-defined]
            "judge": {"base_url": judge_url, "model": "judge"},
        }
        write_config(tmp / "aire.yaml", endpoints)
        get_settings.cache_clear()
        labels = REPO / "datasets" / "arith-judged" / "labels.jsonl"
        assert main(["judge", "calibrate", "--labels", str(labels), "--min-kappa", "0.6"]) == 0
        assert main(["gateway", "--background", "--config", str(gateway)]) == 0
        through = ["traffic", "--base-url", url, "--model", MODEL, "--file", str(TRAFFIC), "--limit", "150"]
        assert main(through) == 0
        since = datetime.now(UTC).isoformat()
        b.start("--wrong-rate", "0.3", "--seed", "5")  # type: ignore[attr-defined]
        assert main(through) == 0
        capsys.readouterr()
        live = ["--live-suite", "arith-judged", "--live-metric", "judge_correct"]
        args = ["monitor", "--logs", "store", "--no-canary", "--no-embeddings", "--since", since, "--reference", "900"]
        code = main([*args, *live])
        out = capsys.readouterr().out
        assert code == 1, out
        assert "live quality FAIL at the severe level: live judge_correct/mean non_inferiority" in out, out
        assert "## Canary" in out and "the canary was off" in out
        assert production() == deployed["v1"]  # rolled back on the gateway's log alone

        from mlflow import MlflowClient

        from aire.store.store import Store

        store = Store(get_settings().resolved_store_url)
        assert store.count_judge_calls() >= 100  # it really asked the judge
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("select count(*) from runs where kind = 'canary'").scalar_one() == 0
        store.close()
        client = MlflowClient(tracking_uri=get_settings().resolved_tracking_uri)
        (run,) = client.search_runs(
            [client.get_experiment_by_name("aire").experiment_id], "tags.`aire.kind` = 'monitor'"
        )
        assert run.data.tags["aire.live_verdict.judge_correct"] == "FAIL"
        assert run.data.metrics["live_reference/judge_correct"] == 1.0
        assert 0.6 <= run.data.metrics["live/judge_correct"] <= 0.8
    finally:
        main(["gateway", "--stop"])
        stop_process(judge)


def test_scheduled_run_executes_the_flow(deployed: dict[str, object], aire_env: Path, prefect_api: str) -> None:
    # The runner polls for due runs every 10 s by default; 1 s keeps the test short.
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    proc = subprocess.Popen(
        [AIRE, "schedule", "--interval", "15", "--no-embeddings", "--canary-size", "20", "--name", "test-monitor"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        # Each due run is a subprocess importing Prefect and MLflow; every 15 s rather than every 5 s,
        # so runs piling up on a loaded 2-core box do not starve the first (it once took over 120 s).
        deadline = time.monotonic() + 240
        states: list[str] = []
        while time.monotonic() < deadline and "COMPLETED" not in states:
            time.sleep(2)
            req = urllib.request.Request(
                f"{prefect_api}/flow_runs/filter",
                data=json.dumps({"deployments": {"name": {"any_": ["test-monitor"]}}}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(req) as resp:
                states = [r["state_type"] for r in json.load(resp)]
        assert "COMPLETED" in states, f"no completed scheduled run; states {states}"
    finally:
        stop_process(proc)
    from aire.store.store import Store

    with Store(get_settings().resolved_store_url).engine.connect() as conn:
        n = conn.exec_driver_sql("select count(*) from runs where kind = 'canary'").scalar_one()
    assert n >= 1  # the scheduled run really probed production


def test_prefect_yaml_deploys_the_scheduled_monitor(prefect_api: str) -> None:
    """infra/prefect.yaml is what the compose stack's worker deploys: it must register for real."""
    prefect = str(Path(sys.executable).parent / "prefect")
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "AIRE_REPO_DIR": str(REPO)}
    subprocess.run(
        [prefect, "work-pool", "create", "aire-process", "--type", "process", "--overwrite"],
        env=env,
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=120,
    )
    proc = subprocess.run(
        [prefect, "--no-prompt", "deploy", "--all", "--prefect-file", "infra/prefect.yaml"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    with urllib.request.urlopen(f"{prefect_api}/deployments/name/monitor/aire-monitor") as resp:
        deployment = json.load(resp)
    assert deployment["entrypoint"] == "flows/monitor.py:monitor"
    assert deployment["work_pool_name"] == "aire-process"
    (schedule,) = deployment["schedules"]
    assert schedule["schedule"]["interval"] == 900 and schedule["active"]


def test_two_concurrent_monitor_runs_roll_back_once(deployed: dict[str, object], aire_env: Path) -> None:
    """Two whole monitor processes see the same breach at the same time: one incident, one rollback."""
    b: Fake = deployed["b"]  # type: ignore[assignment]
    b.start("--wrong-rate", "0.3", "--seed", "5")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}  # each its own temporary server
    cmd = [AIRE, "monitor", "--no-embeddings", "--canary-size", "100"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0].decode() for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes in ([0, 1], [1, 1]), outs  # the later one either sees the same breach or the healthy v1

    from aire.release.incidents import list_incidents
    from aire.release.registry import history
    from aire.store.store import Store

    store = Store(get_settings().resolved_store_url)
    assert len(list_incidents(store, MODEL)) == 1
    assert [m.verdict for m in history(store, MODEL)].count("ROLLBACK") == 1
    assert production() == deployed["v1"]


def canary_runs() -> list[Any]:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from aire.store.store import RunRow, Store

    with Session(Store(get_settings().resolved_store_url).engine) as session:
        return list(session.scalars(select(RunRow).where(RunRow.kind == "canary").order_by(RunRow.created_at)))


def test_a_first_mild_fail_is_suspect_and_the_confirming_one_rolls_back(
    deployed: dict[str, object], aire_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    from aire.release.incidents import list_incidents
    from aire.store.store import Store

    b: Fake = deployed["b"]  # type: ignore[assignment]
    v1, v2 = deployed["v1"], deployed["v2"]
    store = Store(get_settings().resolved_store_url)
    # 14 wrong answers in each half of the suite (seed 8): each canary of 100 FAILs at the policy's
    # level (0.86 vs 1.00 against a 0.03 margin), but not at the severe level.
    b.start("--wrong-rate", "0.12", "--seed", "8")
    assert main(["monitor", "--no-embeddings", "--canary-size", "100"]) == 0  # suspect: nobody paged
    out = capsys.readouterr().out
    assert "**suspect**" in out and "FAIL 1 of 2 needed" in out, out
    assert production() == v2 and list_incidents(store, MODEL) == []
    run_id = out.split("MLflow run: ")[1].split()[0]
    tags = MlflowClient(tracking_uri=get_settings().resolved_tracking_uri).get_run(run_id).data.tags
    assert tags["aire.canary_escalation"] == "SUSPECT" and tags["aire.canary_fails"] == "1 of 2"
    assert tags["aire.breach"] == "false" and "FAIL 1 of 2" in tags["aire.suspect"]
    prom = (aire_env / "metrics" / f"{MODEL}.prom").read_text()
    labels = f'endpoint="prod-b",model="{MODEL}",version="{v2}"'
    assert f"aire_canary_consecutive_fails{{{labels}}} 1.0" in prom, prom
    assert f'aire_canary_escalation{{endpoint="prod-b",model="{MODEL}",state="SUSPECT",version="{v2}"}} 1.0' in prom
    assert 'outcome="suspect"' in prom

    assert main(["monitor", "--no-embeddings", "--canary-size", "100"]) == 1  # the confirming FAIL
    out = capsys.readouterr().out
    assert "BREACH" in out and "FAIL 2 of 2: confirmed" in out, out
    assert production() == v1
    (incident,) = list_incidents(store, MODEL)
    assert incident.version == v2 and incident.rolled_back_to == v1
    # Each canary's verdict is kept with its run (what the next canary of the version reads).
    assert [
        (r.params["offset"], r.params["verdict"], r.params["severe_verdict"], r.params["escalation"])
        for r in canary_runs()
    ] == [(0, "FAIL", "INCONCLUSIVE", "SUSPECT"), (100, "FAIL", "INCONCLUSIVE", "ROLLBACK")]

    # Cleared and promoted again, v2 starts a new run of FAILs: its earlier two do not confirm this one.
    assert main(["incidents", "clear", str(incident.id), "--reason", "fixed the weights (not really)"]) == 0
    assert (
        main(["promote", "--model", MODEL, "--version", v2, "--alias", "production", "--force", "--reason", "again"])
        == 0
    )
    capsys.readouterr()
    assert main(["monitor", "--no-embeddings", "--canary-size", "100"]) == 0
    out = capsys.readouterr().out
    assert "FAIL 1 of 2 needed" in out, out
    assert production() == v2 and canary_runs()[-1].params["escalation"] == "SUSPECT"


def test_rotation_counts_only_finished_canaries_of_this_version(deployed: dict[str, object], aire_env: Path) -> None:
    from aire.store.store import FINISHED, Store

    store = Store(get_settings().resolved_store_url)
    assert main(["monitor", "--no-embeddings", "--canary-size", "50"]) == 0
    (first,) = canary_runs()
    assert first.params["offset"] == 0 and first.status == FINISHED and first.params["version"] == deployed["v2"]
    # An attempt that died before finishing, and a canary of another version behind the same endpoint:
    # neither may shift this version's rotation (a skipped subset would go unprobed for a whole cycle).
    fields = {
        "kind": "canary",
        "suite": first.suite,
        "suite_version": first.suite_version,
        "endpoint": first.endpoint,
        "served_model": first.served_model,
        "n_samples": 50,
    }
    store.create_run(resume_key="crashed", params={**first.params, "offset": 50}, **fields)
    other = store.create_run(resume_key="other", params={**first.params, "version": "999", "offset": 50}, **fields)
    store.set_status(other.id, FINISHED)
    assert main(["monitor", "--no-embeddings", "--canary-size", "50"]) == 0
    assert main(["monitor", "--no-embeddings", "--canary-size", "50"]) == 0
    mine = [r for r in canary_runs() if r.resume_key not in ("crashed", "other")]
    assert [r.params["offset"] for r in mine] == [0, 50, 100]
    assert len({tuple(r.params["sample_ids"]) for r in mine}) == 3  # three different subsets


def test_a_retried_canary_task_reuses_its_run(
    deployed: dict[str, object], aire_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The flow's canary task dies after ~40 samples are stored; Prefect retries it (retries=1): the retry
    finds the run by the flow run's probe id, keeps its subset, and requests only the samples not stored."""
    from aire.client.endpoints import EndpointClient
    from aire.store.store import FINISHED, Store

    store = Store(get_settings().resolved_store_url)
    real = EndpointClient.generate
    done = {"first": 0}
    stored_at_retry: set[str] = set()
    retried: list[str] = []

    async def flaky(self: EndpointClient, sample: Any, params: Any) -> Any:
        if done["first"] >= 40:  # the retry
            if not retried:
                (run,) = canary_runs()
                assert run.status != FINISHED
                stored_at_retry.update(store.completed_ids(run.id))
            retried.append(sample.id)
            return await real(self, sample, params)
        completion = await real(self, sample, params)
        done["first"] += 1
        if done["first"] == 40:
            raise RuntimeError("injected: the canary task dies mid-way")
        return completion

    monkeypatch.setattr(EndpointClient, "generate", flaky)
    assert main(["monitor", "--no-embeddings", "--canary-size", "100"]) == 0
    out = capsys.readouterr().out
    assert "resumed after a retry" in out, out
    (run,) = canary_runs()  # one run for the probe, not one per attempt
    assert run.status == FINISHED and run.resume_key.startswith("canary:") and run.params["offset"] == 0
    assert store.count_results(run.id) == 100 and len(store.completed_ids(run.id)) == 100
    assert 30 <= len(stored_at_retry) < 100, len(stored_at_retry)  # the first attempt's rows were kept
    assert not stored_at_retry & set(retried)  # nothing stored was requested again
    assert stored_at_retry | set(retried) == set(run.params["sample_ids"])
    assert len(retried) == 100 - len(stored_at_retry)
