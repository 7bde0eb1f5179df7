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

import pytest

from aire.cli import main
from aire.processes import free_port
from aire.settings import get_settings
from tests.conftest import REPO, stop_process, wait_http, write_config

pytestmark = pytest.mark.integration
AIRE = str(Path(sys.executable).parent / "aire")
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
    from aire.registry import current

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
    assert production() == v1  # rolled back

    from aire.incidents import list_incidents
    from aire.registry import history
    from aire.store import Store

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
    assert report["canary"]["verdict"] == "FAIL"

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


def test_scheduled_run_executes_the_flow(deployed: dict[str, object], aire_env: Path, prefect_api: str) -> None:
    # The runner polls for due runs every 10 s by default; 1 s keeps the test short.
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    proc = subprocess.Popen(
        [AIRE, "schedule", "--interval", "5", "--no-embeddings", "--canary-size", "20", "--name", "test-monitor"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
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
    from aire.store import Store

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

    from aire.incidents import list_incidents
    from aire.registry import history
    from aire.store import Store

    store = Store(get_settings().resolved_store_url)
    assert len(list_incidents(store, MODEL)) == 1
    assert [m.verdict for m in history(store, MODEL)].count("ROLLBACK") == 1
    assert production() == deployed["v1"]
