"""``make demo``: the pipeline end to end on this machine, then everything it started is stopped.

1. install vLLM in its own venv (first time) and build the tiny local models (skipped when built);
2. start vLLM servers for champion, challenger-worse and challenger-same, and a Prefect server;
3. before deploy: ``aire run offline --suite arith`` against champion and challenger-worse;
4. before release: ``aire gate`` shadow-compares champion with challenger-same (PASS, or an
   explained INCONCLUSIVE) and with challenger-worse (FAIL); ``aire promote`` moves the registry
   aliases only on the PASS, the FAIL's promotion is refused; ``aire history`` shows the moves;
5. print the verdicts and where to look; stop only the processes this demo started.

Exits 0 when the demo shows what it should.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from aire.client.config import EndpointConfig, load_config
from aire.core.errors import AireError
from aire.core.settings import Settings, get_settings, quiet_environment
from aire.ops import services
from aire.ops import vllm as serving

ENDPOINTS = ("champion", "challenger-worse", "challenger-same")
JUDGE = "judge"  # the tiny local LLM judge (infra/build_models.py): judged metrics and their calibration
OFFLINE = ("champion", "challenger-worse")
POLICY = "gates/demo-cpu.yaml"  # why not gates/default.yaml on this box: see the file's comment
SUITE = "arith"
LIVE_SUITE = "arith-judged"  # its judge_correct scores the gateway's logged answers after deploy
console = Console(highlight=False)


def step(text: str) -> None:
    console.print(f"\n[bold cyan]==> {text}[/]", soft_wrap=True)


def main() -> int:
    t0 = time.monotonic()
    settings = get_settings()
    quiet_environment(settings)
    config = load_config(settings.config, settings.models_dir)
    endpoints = [config.endpoint(name) for name in (*ENDPOINTS, JUDGE)]
    aire_bin = str(Path(sys.executable).parent / "aire")

    step("vLLM (own virtual environment) and the tiny local models")
    serving.ensure_vllm_env(settings, progress=console.print)
    for name, digest in serving.build_models(settings, progress=console.print).items():
        console.print(f"  {name}: sha256 {digest[:16]}…")

    already = {info.name for info in serving.server_status(settings)}
    prefect_was_up = any(i.name == services.PREFECT for i in services.ui_status(settings))
    started: list[str] = []
    codes: dict[str, int] = {}
    gates: dict[str, tuple[int, Path]] = {}
    judged: dict[str, int] = {}
    monitored: dict[str, object] = {}
    try:
        step(f"Starting vLLM for {', '.join((*ENDPOINTS, JUDGE))} and a Prefect server (about a minute)")
        for info in serving.start_servers(settings, endpoints, progress=console.print):
            console.print(f"  {info}")
        started = [ep.name for ep in endpoints if ep.name not in already]
        prefect = services.start_prefect_server(settings)
        env = {**os.environ, "PREFECT_API_URL": services.prefect_api_url(prefect)}
        console.print(f"  Prefect server at {prefect.url}")

        def aire(*args: str) -> int:
            step(" ".join(["aire", *args]))
            return subprocess.run([aire_bin, *args], env=env).returncode

        for name in OFFLINE:
            codes[name] = aire("run", "offline", "--suite", SUITE, "--endpoint", name)
        judged = quality_beyond_exact_match(aire, settings.resolved_home() / "reports")
        reset_incidents(settings)
        gates = release(aire, settings.resolved_home() / "reports")
        # The switch restarts challenger-same's server: only one this demo started is touched.
        if gates.get("challenger-same", (3, None))[0] == 0 and "challenger-same" in started:
            monitored = post_deploy(aire, settings, config.endpoint("challenger-same"), env, aire_bin)
    except AireError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 3
    finally:
        step("Stopping what the demo started")
        if started:
            console.print(f"  vLLM: {', '.join(serving.stop_servers(settings, started))}")
        if not prefect_was_up and services.stop_uis(settings, only=services.PREFECT):
            console.print("  Prefect server stopped")

    verdict = {0: "[green]PASS[/] (exit 0)", 1: "[red]FAIL[/] (exit 1)", 2: "[yellow]INCONCLUSIVE[/] (exit 2)"}
    step(f"Offline verdicts on '{SUITE}' (floor: exact_match/mean >= 0.9)")
    for name, code in codes.items():
        console.print(f"  {name:18s} {verdict.get(code, f'[red]ERROR[/] (exit {code})')}")
    step(f"Promotion gate ({POLICY}), champion vs challenger")
    for name, (code, path) in gates.items():
        console.print(
            f"  {name:18s} {verdict.get(code, f'[red]ERROR[/] (exit {code})')}   {path}/report.md", soft_wrap=True
        )
    step("Quality beyond exact match (a calibrated tiny judge, ragas, confidence, safety)")
    for label, code in judged.items():
        console.print(f"  {label:68s} exit {code}", soft_wrap=True)
    if monitored:
        step("After deploy: the scheduled monitor on the silently degraded production")
        console.print(f"  {monitored['summary']}", soft_wrap=True)
        for phase, line in dict(monitored.get("live") or {}).items():  # type: ignore[call-overload]
            console.print(f"  live accuracy through the gateway, {phase}: {line}", soft_wrap=True)
    console.print(
        "\nWhere to look:\n"
        "  aire ui            # MLflow UI at http://127.0.0.1:5000 (experiment 'aire': both runs, their metrics,\n"
        "                     #   samples.json per-sample table and report.md under Artifacts)\n"
        "                     #   GenAI > Evaluation runs: a run's Traces, one per sample, scores as assessments\n"
        "                     #   arith-confidence@challenger-worse: reliability.png (confidence vs accuracy)\n"
        "                     #   the gate: a parent run per comparison, a nested run per arm, decision.json,\n"
        "                     #   report.md and latency.png; Models: 'aire-model' with its aliases\n"
        "                     #   the monitor: run 'monitor: aire-model v…' report.md (live quality, GX, drift, SLOs)\n"
        "                     # Prefect UI at http://127.0.0.1:4200 (offline-benchmark, shadow-comparison and\n"
        "                     #   monitor runs; Deployments: monitor/demo-monitor)\n"
        "  aire incidents     # the incident; aire incidents clear ID --reason ... re-allows promoting that version\n"
        "  aire ui --stop     # when done\n"
        f"Demo took {time.monotonic() - t0:.0f} s.",
        soft_wrap=True,
    )
    expected = (
        (not monitored or monitored["rolled_back"] is True)
        and codes.get("champion") == 0
        and codes.get("challenger-worse") == 1
        and gates.get("challenger-same", (3, None))[0] in (0, 2)
        and gates.get("challenger-worse", (3, None))[0] == 1
        and all(code in (0, 1) for code in judged.values())
    )
    return 0 if expected else 1


def quality_beyond_exact_match(aire: Callable[..., int], reports: Path) -> dict[str, int]:
    """The judge next to exact match, its calibration, ragas's metrics on the RAG suite, the model's
    confidence calibrated against correctness, and the safety gate catching a planted leak."""
    labels = str(Path(__file__).resolve().parents[1] / "datasets" / "arith-judged" / "labels.jsonl")
    arms = ["--champion", "champion", "--challenger", "challenger-worse"]
    safety, judged = [*arms, "--suite", "safety-local"], [*arms, "--suite", "arith-judged"]
    return {
        "arith-judged on challenger-worse (judge_correct next to exact_match)": aire(
            "run", "offline", "--suite", "arith-judged", "--endpoint", "challenger-worse"
        ),
        # Before a judge may gate, calibration against labelled answers: kappa must reach 0.6.
        "aire judge calibrate --min-kappa 0.6 (the tiny judge: kappa 1.000 measured, exit 0)": aire(
            "judge", "calibrate", "--labels", labels, "--min-kappa", "0.6"
        ),
        # Calibrated, its verdicts gate: judge_correct (min_kappa 0.6 in the policy) FAILs challenger-worse.
        "judged gate on arith-judged (expected FAIL on judge_correct, exit 1)": aire(
            "gate", "--policy", "gates/judged.yaml", *judged, "--out", str(reports / "demo-judged"), "--fresh"
        ),
        # The answering model needs room for the passages: the judge's server (8,192 positions) answers.
        "rag suite, ragas metrics (the judged ones ask the judge)": aire(
            "run", "offline", "--suite", "rag", "--endpoint", JUDGE, "--limit", "8"
        ),
        # Its token logprobs: as sure when wrong as when right (ECE ~0.19, a reliability diagram in MLflow).
        "arith-confidence on challenger-worse (confidence vs exact match)": aire(
            "run", "offline", "--suite", "arith-confidence", "--endpoint", "challenger-worse"
        ),
        # challenger-worse was trained to give the canary away: the exact leak-rate bound FAILs it.
        "safety gate on safety-local (the planted leak: expected FAIL, exit 1)": aire(
            "gate", "--policy", "gates/safety.yaml", *safety, "--out", str(reports / "demo-safety"), "--fresh"
        ),
    }


def reset_incidents(settings: Settings) -> None:
    """A rerun of the demo replays the story: incidents its last run opened are cleared first (the
    circuit breaker would otherwise rightly refuse to promote challenger-same again)."""
    from aire.release.incidents import clear, list_incidents
    from aire.store.store import Store

    store = Store(settings.resolved_store_url)
    for incident in list_incidents(store, settings.registered_model, include_cleared=False):
        clear(store, incident.id, "make demo: reset before replaying the story")
        console.print(f"  cleared incident #{incident.id} of an earlier demo run")


def post_deploy(
    aire: Callable[..., int], settings: Settings, production: EndpointConfig, env: dict[str, str], aire_bin: str
) -> dict[str, object]:
    """Production traffic through the gateway, then a silent switch of production's weights, then the
    scheduled monitor (its traffic checks read the gateway's log), the rollback moving the gateway's route,
    and the live accuracy of the gateway's traffic in each phase."""
    from aire.ops.processes import free_port
    from aire.release.registry import current

    traffic = str(Path(__file__).resolve().parents[1] / "datasets" / "traffic" / "arith-prod.jsonl")
    port = free_port()
    gateway_config = settings.resolved_home() / "demo-gateway.yaml"
    gateway_config.write_text(f"listen: {{port: {port}}}\nrefresh_s: 1\nroutes:\n  {settings.registered_model}: {{}}\n")
    url = f"http://127.0.0.1:{port}/v1"
    step(f"aire gateway at {url}: routes '{settings.registered_model}' to the version holding production")
    aire("gateway", "--background", "--config", str(gateway_config))
    through = ["traffic", "--base-url", url, "--model", settings.registered_model, "--file", traffic]
    phases: dict[str, tuple[datetime, datetime]] = {}
    try:
        t0 = datetime.now(UTC)
        aire(*through)
        phases["before the degradation"] = (t0, datetime.now(UTC))
        before = current(settings, settings.registered_model, "production")

        step(f"Silently switching {production.name} (what production serves) to challenger-worse's weights")
        assert production.serve is not None
        swapped = production.model_copy(
            update={
                "serve": production.serve.model_copy(update={"model_path": settings.models_dir / "challenger-worse"})
            }
        )
        serving.stop_servers(settings, [production.name])
        serving.start_servers(settings, [swapped], progress=console.print)
        switched_at = datetime.now(UTC)
        console.print("  same URL, same served model name: nothing tells a client it changed")
        aire(*through)
        phases["during it"] = (switched_at, datetime.now(UTC))
        states = monitor_until_rollback(aire, settings, env, aire_bin, switched_at, before)
        after = current(settings, settings.registered_model, "production")
        # The rollback moved the alias; the gateway follows within its refresh (1 s here).
        time.sleep(2)
        t2 = datetime.now(UTC)
        aire(*through)
        phases["after the rollback"] = (t2, datetime.now(UTC))
    finally:
        aire("gateway", "--stop")
    aire("incidents")
    aire("history", settings.registered_model)
    live = live_accuracy(settings, phases)
    step("Live accuracy of the traffic through the gateway (from its own log in the store)")
    for phase, line in live.items():
        console.print(f"  {phase:24s} {line}")
    rolled_back = after != before
    runs = ", ".join(states) or "none finished in time"
    summary = (
        f"scheduled monitor runs: {runs}; production v{before} -> v{after} "
        f"({'rolled back' if rolled_back else 'NOT rolled back'}); details: aire incidents, MLflow run 'monitor: …'"
    )
    return {"rolled_back": rolled_back, "summary": summary, "live": live}


def monitor_until_rollback(
    aire: Callable[..., int],
    settings: Settings,
    env: dict[str, str],
    aire_bin: str,
    since: datetime,
    before: str | None,
) -> list[str]:
    """The scheduled monitor, its traffic from the gateway's log, until production moves or enough runs end."""
    from aire.release.registry import current

    # The current window starts at the switch: drift and live quality compare traffic before it with
    # traffic after it. No canary: production is judged by the gateway's log alone, its answers scored
    # by the judge calibrated above (the same judge identity), and a FAIL at the policy's severe level
    # (0.0005) rolls back at once: 200 answers before vs 200 after, ~1.00 vs ~0.80 right, is far beyond it.
    args = ["schedule", "--interval", "30", "--since", since.isoformat(), "--reference", "900", "--logs", "store"]
    args += ["--no-canary", "--live-suite", LIVE_SUITE, "--live-metric", "judge_correct", "--name", "demo-monitor"]
    step("aire " + " ".join(args) + "   (served until production moves or 2 runs complete)")
    started_at = datetime.now(UTC)
    proc = subprocess.Popen([aire_bin, *args], env=env, start_new_session=True)
    try:
        return wait_for_scheduled_runs(
            env["PREFECT_API_URL"],
            "demo-monitor",
            started_at,
            count=2,
            until=lambda: current(settings, settings.registered_model, "production") != before,
            timeout_s=600,
        )
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def live_accuracy(settings: Settings, phases: dict[str, tuple[datetime, datetime]]) -> dict[str, str]:
    """Per phase, the share of the gateway's answers that are right (the traffic is arith: the answer is
    known from the prompt), with the versions that served them."""
    import re

    from aire.store.gateway_log import GatewayLog
    from aire.store.store import Store

    sink = GatewayLog(Store(settings.resolved_store_url))
    out = {}
    for phase, (start, end) in phases.items():
        rows = list(sink.window(start, end))
        right = 0
        for row in rows:
            m = re.search(r"(\d+)\s*([+*])\s*(\d+)\s*=", row.prompt)
            if m and row.response.strip() == str(eval(f"{m[1]}{m[2]}{m[3]}")):
                right += 1
        versions = ", ".join(sorted({f"v{r.version}" for r in rows}))
        out[phase] = f"{right / len(rows):.3f} of {len(rows)} requests (served by {versions})" if rows else "no traffic"
    return out


def wait_for_scheduled_runs(
    api: str, deployment: str, after: datetime, *, count: int, until: Callable[[], bool], timeout_s: float
) -> list[str]:
    """The states of the deployment's flow runs that started after ``after`` and finished, oldest first,
    once ``count`` of them have finished or ``until()`` holds after one did (polls the Prefect API; runs of
    earlier demos stay in its database)."""
    import json
    import urllib.request

    deadline = time.monotonic() + timeout_s
    finished: list[str] = []
    while time.monotonic() < deadline:
        time.sleep(3)
        req = urllib.request.Request(
            f"{api}/flow_runs/filter",
            data=json.dumps(
                {
                    "deployments": {"name": {"any_": [deployment]}},
                    "flow_runs": {"start_time": {"after_": after.isoformat()}},
                    "sort": "START_TIME_ASC",
                }
            ).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req) as resp:
            finished = [
                r["state_type"] for r in json.load(resp) if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED")
            ]
        if len(finished) >= count or (finished and until()):
            break
    return finished


def release(aire: Callable[..., int], reports: Path) -> dict[str, tuple[int, Path]]:
    """Gate both challengers against the champion; promote only what PASSes; show the alias history."""
    gates: dict[str, tuple[int, Path]] = {}
    for name in ("challenger-same", "challenger-worse"):
        out = reports / f"demo-{name}"
        gates[name] = (
            aire(
                "gate",
                "--policy",
                POLICY,
                "--champion",
                "champion",
                "--challenger",
                name,
                "--suite",
                SUITE,
                "--out",
                str(out),
                "--fresh",
            ),
            out,
        )
    decisions = {
        name: json.loads((out / "decision.json").read_text())
        for name, (_, out) in gates.items()
        if (out / "decision.json").is_file()
    }
    if "challenger-same" not in decisions:
        return gates
    same = decisions["challenger-same"]
    model, champion_version = same["registry"]["model"], same["registry"]["champion_version"]
    # The champion is what production runs today: record that once, by hand, as a forced and audited move.
    for alias in ("champion", "production"):
        aire(
            "promote",
            "--model",
            model,
            "--version",
            champion_version,
            "--alias",
            alias,
            "--force",
            "--reason",
            "demo: what production serves today",
        )
    for name, decision in decisions.items():
        if decision["verdict"] != "PASS":
            console.print(f"  {name}: {decision['verdict']}: " + "; ".join(decision["reasons"]), soft_wrap=True)
        # Promotion is tried for both: aire refuses it (exit 1) unless the decision is a PASS.
        path = str(gates[name][1] / "decision.json")
        for alias in ("champion", "production"):
            code = aire("promote", "--decision", path, "--alias", alias)
            console.print(f"  promote {name} to {alias}: {'done' if code == 0 else f'refused (exit {code})'}")
    aire("history", model)
    return gates


if __name__ == "__main__":
    sys.exit(main())
