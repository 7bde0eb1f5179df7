"""``make demo``: the offline benchmark end to end on this machine, then everything it started is stopped.

1. install vLLM in its own venv (first time) and build the tiny local models (skipped when built);
2. start vLLM servers for champion and challenger-worse, and a Prefect server;
3. run ``aire run offline --suite arith`` against each, exactly as a user or CI job would;
4. print the verdicts and where to look; stop only the processes this demo started.

Exits 0 when the demo shows what it should: the champion passes the suite's floor, the degraded
challenger fails it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console

from aire import services, serving
from aire.config import load_config
from aire.errors import AireError
from aire.settings import get_settings, quiet_environment

ENDPOINTS = ("champion", "challenger-worse")
SUITE = "arith"
console = Console(highlight=False)


def step(text: str) -> None:
    console.print(f"\n[bold cyan]==> {text}[/]")


def main() -> int:
    t0 = time.monotonic()
    settings = get_settings()
    quiet_environment(settings)
    config = load_config(settings.config, settings.models_dir)
    endpoints = [config.endpoint(name) for name in ENDPOINTS]
    aire_bin = str(Path(sys.executable).parent / "aire")

    step("vLLM (own virtual environment) and the tiny local models")
    serving.ensure_vllm_env(settings, progress=console.print)
    for name, digest in serving.build_models(settings, progress=console.print).items():
        console.print(f"  {name}: sha256 {digest[:16]}…")

    already = {info.name for info in serving.server_status(settings)}
    prefect_was_up = any(i.name == services.PREFECT for i in services.ui_status(settings))
    started: list[str] = []
    codes: dict[str, int] = {}
    try:
        step(f"Starting vLLM for {', '.join(ENDPOINTS)} and a Prefect server (about a minute)")
        for info in serving.start_servers(settings, endpoints, progress=console.print):
            console.print(f"  {info}")
        started = [ep.name for ep in endpoints if ep.name not in already]
        prefect = services.start_prefect_server(settings)
        env = {**os.environ, "PREFECT_API_URL": services.prefect_api_url(prefect)}
        console.print(f"  Prefect server at {prefect.url}")

        for ep in endpoints:
            cmd = ["aire", "run", "offline", "--suite", SUITE, "--endpoint", ep.name]
            step(" ".join(cmd))
            codes[ep.name] = subprocess.run([aire_bin, *cmd[1:]], env=env).returncode
    except AireError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 3
    finally:
        step("Stopping what the demo started")
        if started:
            console.print(f"  vLLM: {', '.join(serving.stop_servers(settings, started))}")
        if not prefect_was_up and services.stop_uis(settings, only=services.PREFECT):
            console.print("  Prefect server stopped")

    verdict = {0: "[green]PASS[/] (exit 0)", 1: "[red]FAIL[/] (exit 1)"}
    step(f"Verdicts on '{SUITE}' (floor: exact_match/mean >= 0.9)")
    for name, code in codes.items():
        console.print(f"  {name:18s} {verdict.get(code, f'[yellow]ERROR[/] (exit {code})')}")
    console.print(
        "\nWhere to look:\n"
        "  aire ui            # MLflow UI at http://127.0.0.1:5000 (experiment 'aire': both runs, their metrics,\n"
        "                     #   samples.json per-sample table and report.md under Artifacts)\n"
        "                     # Prefect UI at http://127.0.0.1:4200 (the offline-benchmark flow runs and tasks)\n"
        "  aire ui --stop     # when done\n"
        f"Demo took {time.monotonic() - t0:.0f} s.",
        soft_wrap=True,
    )
    expected = codes.get("champion") == 0 and codes.get("challenger-worse") == 1
    return 0 if expected else 1


if __name__ == "__main__":
    sys.exit(main())
