"""The ``aire`` command. Exit codes: 0 pass, 1 fail, 2 inconclusive, 3 error (usage errors included).

Heavy libraries (prefect, mlflow, datasets) are imported inside the commands that use them, so
``aire --help`` and ``aire serve`` start in a fraction of a second.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.exceptions import TyperException

from aire.core.errors import EXIT_ERROR, EXIT_FAIL, EXIT_PASS, AireError
from aire.core.settings import get_settings, quiet_environment

app = typer.Typer(
    name="aire",
    help="Continuous evaluation of LLMs served by vLLM. Exit codes: 0 pass, 1 fail, 2 inconclusive, 3 error.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
run_app = typer.Typer(help="Run an evaluation flow.", no_args_is_help=True)
models_app = typer.Typer(help="Build the tiny local models used by the demo and tests.", no_args_is_help=True)
incidents_app = typer.Typer(help="Incidents opened by the monitor; `clear` re-allows promoting a version.")
app.add_typer(run_app, name="run")
app.add_typer(models_app, name="models")
app.add_typer(incidents_app, name="incidents")


@run_app.command("offline")
def run_offline(
    suite: Annotated[str, typer.Option(help="Suite name (a folder under datasets/) or path.")],
    endpoint: Annotated[str | None, typer.Option(help="Endpoint name from aire.yaml.")] = None,
    base_url: Annotated[str | None, typer.Option(help="Ad hoc endpoint URL, e.g. http://127.0.0.1:8000/v1.")] = None,
    model: Annotated[str | None, typer.Option(help="Served model name for an ad hoc endpoint.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Use only the first N samples.")] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, max=1024, help="Requests in flight.")] = None,
    fresh: Annotated[bool, typer.Option(help="Start a new run instead of resuming an interrupted one.")] = False,
) -> None:
    """Benchmark one endpoint on a suite; the suite's floors decide the exit code (0 pass, 1 fail)."""
    from aire.cli.console import RichReporter, console, floors_lines, summary_table
    from aire.core.progress import set_reporter
    from aire.run.offline import preflight
    from aire.tracking.runs import ui_command

    asyncio.run(preflight(get_settings(), suite=suite, endpoint=endpoint, base_url=base_url, model=model))
    from flows.offline import offline_benchmark  # imports prefect: seconds, so only after the checks

    set_reporter(RichReporter())
    result = asyncio.run(
        offline_benchmark(
            suite=suite,
            endpoint=endpoint,
            base_url=base_url,
            model=model,
            limit=limit,
            concurrency=concurrency,
            fresh=fresh,
        )
    )
    title = f"{result.suite} ({result.suite_version[:12]}) @ {result.endpoint} [{result.served_model}]"
    console.print(summary_table(title, result.summary))
    if result.n_requested:
        rate = result.n_requested / result.execution_s if result.execution_s > 0 else 0.0
        console.print(f"Requested {result.n_requested} samples in {result.execution_s:.1f} s ({rate:.1f}/s).")
    if result.resumed:
        console.print(f"Resumed an interrupted run: requested {result.n_requested} of {result.n_samples} samples.")
    for line in floors_lines([(f.floor, f.value, f.passed) for f in result.floors]):
        console.print(line)
    console.print(f"MLflow run: {result.mlflow_run_id}   (store run {result.run_id})", soft_wrap=True)
    console.print(f"Look at it: [bold]aire ui[/]   or: {ui_command(get_settings())}", soft_wrap=True)
    raise typer.Exit(EXIT_PASS if result.passed else EXIT_FAIL)


@models_app.command("build")
def models_build(
    only: Annotated[list[str] | None, typer.Option(help="Build only these models.")] = None,
) -> None:
    """Build champion, challenger-worse and challenger-same (skipped when already built)."""
    from aire.ops import vllm as serving

    settings = get_settings()
    serving.ensure_vllm_env(settings, progress=typer.echo)
    for name, digest in serving.build_models(settings, only, progress=typer.echo).items():
        typer.echo(f"{name}: sha256 {digest}")


@app.command("serve")
def serve(
    only: Annotated[list[str] | None, typer.Option(help="Serve only these endpoints.")] = None,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the servers aire started.")] = False,
    status: Annotated[bool, typer.Option("--status", help="Show the servers aire started.")] = False,
) -> None:
    """Start one local vLLM server per endpoint with a `serve:` section in aire.yaml."""
    from aire.client.config import load_config
    from aire.ops import vllm as serving

    settings = get_settings()
    if stop:
        stopped = serving.stop_servers(settings, only)
        typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "no aire vLLM server was running")
        return
    if status:
        infos = serving.server_status(settings)
        for info in infos:
            typer.echo(str(info))
        if not infos:
            typer.echo("no aire vLLM server is running")
        return
    config = load_config(settings.config, settings.models_dir)
    wanted = [ep for ep in config.endpoints.values() if ep.serve and (not only or ep.name in only)]
    if only:
        for name in only:
            config.endpoint(name)  # unknown names are an error with "did you mean"
    serving.ensure_vllm_env(settings, progress=typer.echo)
    # Endpoints serving the tiny local models get them built first; other weights are the user's.
    serving.build_models(settings, [ep.name for ep in wanted if ep.name in serving.MODEL_NAMES], progress=typer.echo)
    for info in serving.start_servers(settings, wanted, progress=typer.echo):
        typer.echo(str(info))
    typer.echo("Stop them with: aire serve --stop")


@app.command("ui")
def ui(
    stop: Annotated[bool, typer.Option("--stop", help="Stop the UIs aire started.")] = False,
    only: Annotated[str | None, typer.Option(help="Start only 'mlflow' or 'prefect'.")] = None,
    mlflow_port: Annotated[int, typer.Option(min=1024, max=65535)] = 5000,
    prefect_port: Annotated[int, typer.Option(min=1024, max=65535)] = 4200,
) -> None:
    """Start the MLflow UI and the Prefect server (with its UI) on aire's state, in the background."""
    from aire.ops import services

    settings = get_settings()
    if stop:
        stopped = services.stop_uis(settings)
        typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "no aire UI was running")
        return
    if only not in (None, "mlflow", "prefect"):
        raise typer.BadParameter("expected 'mlflow' or 'prefect'", param_hint="--only")
    if only in (None, "mlflow"):
        info = services.start_mlflow_ui(settings, mlflow_port)
        typer.echo(f"MLflow UI:  {info.url}  (experiment '{settings.mlflow_experiment}'; pid {info.pid})")
    if only in (None, "prefect"):
        info = services.start_prefect_server(settings, prefect_port)
        typer.echo(f"Prefect UI: {info.url}  (pid {info.pid}); to run flows against it:")
        typer.echo(f"  export PREFECT_API_URL={services.prefect_api_url(info)}")
    typer.echo("Stop with: aire ui --stop")


@app.command("plan")
def plan_cmd(
    baseline: Annotated[float, typer.Option(min=0.0, max=1.0, help="Champion's accuracy, e.g. 0.9.")],
    margin: Annotated[float, typer.Option(min=0.0, help="Non-inferiority margin, e.g. 0.03.")],
    alpha: Annotated[
        float,
        typer.Option(min=0.0001, max=0.5, help="The gate policy's alpha (its intervals are two-sided 1 - alpha)."),
    ] = 0.05,
    policy: Annotated[Path | None, typer.Option(help="Take alpha from this gate policy.")] = None,
    power: Annotated[float, typer.Option(min=0.5, max=0.9999)] = 0.8,
    true_delta: Annotated[float, typer.Option(help="Difference to plan for (0: as good).")] = 0.0,
) -> None:
    """Fixed-n sample size of a paired non-inferiority comparison as the gate judges it (one-sided
    alpha/2: the lower end of its two-sided interval); what --sequential is measured against."""
    from aire.core.errors import InputError
    from aire.gate.policy import level_text, load_policy
    from aire.stats.sequential import fixed_n_plan

    if policy is not None:
        alpha = load_policy(policy)[0].alpha
    try:
        n = fixed_n_plan(baseline, margin, alpha=alpha / 2, power=power, true_delta=true_delta)
    except ValueError as exc:
        raise InputError(str(exc), field="true_delta") from None
    typer.echo(
        f"{n} pairs: one-sided alpha {alpha / 2:g} (the gate's two-sided {level_text(alpha)} interval), "
        f"power {power:g}, baseline {baseline:g}, margin {margin:g}, true difference {true_delta:+g}"
    )


@app.command("gate")
def gate_cmd(
    champion: Annotated[str, typer.Option(help="Endpoint serving the current model (aire.yaml).")],
    challenger: Annotated[str, typer.Option(help="Endpoint serving the candidate (aire.yaml).")],
    policy: Annotated[Path | None, typer.Option(help="Gate policy YAML. [default: AIRE_GATE_POLICY]")] = None,
    suite: Annotated[str | None, typer.Option(help="Compare on this suite (references known).")] = None,
    traffic: Annotated[Path | None, typer.Option(help="Or replay these logged prompts (JSONL).")] = None,
    sequential: Annotated[
        bool, typer.Option("--sequential", help="Send batches and stop as soon as the verdict is settled.")
    ] = False,
    batch: Annotated[int, typer.Option(min=1, help="Sequential: inputs per batch between looks.")] = 50,
    max_samples: Annotated[int | None, typer.Option(min=1, help="Sequential: sample cap.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Use only the first N inputs.")] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, max=1024, help="Requests in flight per arm.")] = None,
    seed: Annotated[int, typer.Option(help="Order of inputs and bootstrap resamples.")] = 0,
    fresh: Annotated[bool, typer.Option(help="Start over instead of resuming an interrupted comparison.")] = False,
    out: Annotated[Path | None, typer.Option(help="Folder for report.md, latency.png, decision.json.")] = None,
    registered_model: Annotated[
        str | None, typer.Option(help="MLflow registered model. [default: AIRE_REGISTERED_MODEL]")
    ] = None,
    warmup: Annotated[
        int | None, typer.Option(min=0, help="Unrecorded requests per arm first. [default: 2 x concurrency]")
    ] = None,
) -> None:
    """Shadow-compare champion and challenger and gate the promotion: exit 0 PASS, 1 FAIL, 2 INCONCLUSIVE, 3 ERROR."""
    from aire.cli.console import RichReporter, console, rules_lines
    from aire.core.progress import set_reporter
    from aire.run.shadow import preflight_shadow
    from aire.tracking.runs import ui_command

    settings = get_settings()
    policy = policy or settings.gate_policy
    asyncio.run(
        preflight_shadow(
            settings,
            policy=policy,
            champion=champion,
            challenger=challenger,
            suite=suite,
            traffic=traffic,
            sequential=sequential,
        )
    )
    from flows.shadow import shadow_comparison  # imports prefect: seconds, so only after the checks

    set_reporter(RichReporter())
    result = asyncio.run(
        shadow_comparison(
            champion=champion,
            challenger=challenger,
            policy=str(policy),
            suite=suite,
            traffic=None if traffic is None else str(traffic),
            sequential=sequential,
            batch=batch,
            max_samples=max_samples,
            limit=limit,
            concurrency=concurrency,
            seed=seed,
            fresh=fresh,
            out_dir=None if out is None else str(out),
            registered_model=registered_model,
            warmup=warmup,
        )
    )
    for line in rules_lines(result.rules):
        console.print(line, soft_wrap=True)
    if result.sequential is not None:
        s = result.sequential
        plan = f"; a fixed-n design needs {s.fixed_n_plan} ({s.fraction_of_plan:.0%} of it)" if s.fixed_n_plan else ""
        console.print(f"Sequential: decided after {s.n_used} of at most {s.cap} inputs ({len(s.looks)} looks){plan}.")
    if result.resumed:
        console.print(f"Resumed an interrupted comparison: sent {result.n_requested} requests this time.")
    colour = {"PASS": "green", "FAIL": "red", "INCONCLUSIVE": "yellow"}.get(result.verdict.value, "red")
    console.print(f"[bold {colour}]{result.verdict.value}[/] (exit {result.exit_code}) on {result.n_pairs} pairs")
    for reason in result.reasons:
        console.print(f"  - {reason}", soft_wrap=True)
    reg = result.registry
    console.print(
        f"Registered {reg['model']}: champion v{reg['champion_version']}, challenger v{reg['challenger_version']}",
        soft_wrap=True,
    )
    console.print(f"Report: {result.out_dir}/report.md  decision: {result.out_dir}/decision.json", soft_wrap=True)
    console.print(
        f"MLflow run: {result.mlflow_run_id}   look at it: aire ui  or: {ui_command(settings)}", soft_wrap=True
    )
    raise typer.Exit(result.exit_code)


@app.command("promote")
def promote_cmd(
    alias: Annotated[str, typer.Option(help="champion, challenger or production.")],
    decision: Annotated[Path | None, typer.Option(help="decision.json written by `aire gate`.")] = None,
    model: Annotated[str | None, typer.Option(help="Registered model. [default: from --decision]")] = None,
    version: Annotated[
        str | None, typer.Option(help="Version to point at. [default: the decision's challenger]")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Move without a PASS decision (audited).")] = False,
    reason: Annotated[str, typer.Option(help="Why, for --force (recorded in the history).")] = "",
) -> None:
    """Move a registry alias; only a PASS decision allows it, unless --force --reason."""
    import json

    from aire.core.errors import InputError
    from aire.release import registry
    from aire.store.store import Store

    verdict = None
    if decision is not None:
        try:
            body = json.loads(decision.read_text())
            verdict = body["verdict"]
            registered = body.get("registry") or {}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"cannot read a verdict: {type(exc).__name__}: {exc}", path=decision) from None
        if model is not None and registered.get("model") not in (None, model):
            raise InputError(f"the decision is about {registered.get('model')}, not {model}", path=decision)
        if version is not None and registered.get("challenger_version") not in (None, version):
            raise InputError(
                f"the decision is about v{registered.get('challenger_version')}, not v{version}", path=decision
            )
        model = model or registered.get("model")
        version = version or registered.get("challenger_version")
    if not model or not version:
        raise InputError("give --decision, or --model and --version", field="model")
    settings = get_settings()
    move = registry.promote(
        settings,
        Store(settings.resolved_store_url),
        model=model,
        alias=alias,
        version=version,
        verdict=verdict,
        force=force,
        reason=reason,
    )
    if move is None:
        typer.echo(f"{model}@{alias} already points to v{version}: nothing to do")
    else:
        typer.echo(f"{model}@{alias}: v{move.previous_version or '-'} -> v{move.version} (move {move.seq})")


@app.command("history")
def history_cmd(model: Annotated[str, typer.Argument(help="Registered model name.")]) -> None:
    """The alias history of a registered model, oldest first."""
    from rich.table import Table

    from aire.cli.console import console
    from aire.release import registry
    from aire.store.store import Store

    moves = registry.history(Store(get_settings().resolved_store_url), model)
    table = Table(title=f"alias history of {model}", title_justify="left")
    for col in ("at (UTC)", "alias", "from", "to", "verdict", "forced", "reason", "by"):
        table.add_column(col)
    for m in moves:
        table.add_row(
            m.at.strftime("%Y-%m-%d %H:%M:%S"),
            m.alias,
            m.previous_version or "-",
            m.version,
            m.verdict or "-",
            "yes" if m.forced else "",
            m.reason,
            m.actor,
        )
    console.print(table)


@incidents_app.callback(invoke_without_command=True)
def incidents_cmd(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Only this registered model.")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only open incidents.")] = False,
) -> None:
    """List incidents (newest last)."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from aire.cli.console import console
    from aire.release.incidents import list_incidents
    from aire.store.store import Store

    rows = list_incidents(Store(get_settings().resolved_store_url), model, include_cleared=not open_only)
    table = Table(title="incidents", title_justify="left")
    for col in ("id", "opened (UTC)", "model", "version", "severity", "status", "rolled back to", "summary"):
        table.add_column(col)
    for i in rows:
        table.add_row(
            f"#{i.id}",
            i.opened_at.strftime("%Y-%m-%d %H:%M:%S"),
            i.model,
            i.version,
            i.severity,
            i.status if i.status == "cleared" else f"[red]{i.status}[/]",
            i.rolled_back_to or "-",
            i.summary,
        )
    console.print(table)


@incidents_app.command("clear")
def incidents_clear(
    incident_id: Annotated[int, typer.Argument(help="Incident id.")],
    reason: Annotated[str, typer.Option(help="Why it is safe again (recorded).")] = "",
) -> None:
    """Close an incident: its version may be promoted again (the circuit breaker resets)."""
    from aire.release.incidents import clear
    from aire.store.store import Store

    incident = clear(Store(get_settings().resolved_store_url), incident_id, reason)
    typer.echo(f"incident #{incident.id} cleared: v{incident.version} of {incident.model} may be promoted again")


@app.command("monitor")
def monitor_cmd(
    model: Annotated[str | None, typer.Option(help="Registered model. [default: AIRE_REGISTERED_MODEL]")] = None,
    suite: Annotated[str, typer.Option(help="Golden suite for the canary.")] = "arith",
    canary_size: Annotated[
        int | None,
        typer.Option(
            min=1, help="Inputs per canary run (rotating through the suite). [default: AIRE_CANARY_SIZE, 300]"
        ),
    ] = None,
    logs: Annotated[Path | None, typer.Option(help="Folder of production JSONL logs. [default: <home>/logs]")] = None,
    window: Annotated[float, typer.Option(min=1, help="Current window, seconds.")] = 3600.0,
    reference: Annotated[float, typer.Option(min=1, help="Reference window before it, seconds.")] = 86400.0,
    since: Annotated[
        str | None, typer.Option(help="Current window starts here (ISO time with offset), e.g. the deploy.")
    ] = None,
    embeddings: Annotated[bool, typer.Option(help="Embedding drift with the bundled MiniLM.")] = True,
) -> None:
    """One monitor run on the version holding `production`: exit 0 healthy, 1 breach (incident + rollback)."""
    from aire.cli.console import console

    settings = get_settings()
    from flows.monitor import monitor

    result = asyncio.run(
        monitor(
            model=model,
            suite=suite,
            canary_size=canary_size,
            logs=None if logs is None else str(logs),
            window_s=window,
            reference_s=reference,
            since=_iso(since),
            embeddings=embeddings,
        )
    )
    console.print(result.report, soft_wrap=True, markup=False)
    console.print(f"MLflow run: {result.mlflow_run_id}", soft_wrap=True)
    if result.incident_id is not None:
        console.print(f"Incident #{result.incident_id}: aire incidents   (store {settings.resolved_store_url})")
    raise typer.Exit(EXIT_FAIL if result.breach else EXIT_PASS)


@app.command("schedule")
def schedule_cmd(
    interval: Annotated[float | None, typer.Option(min=5, help="Run the monitor every N seconds.")] = None,
    cron: Annotated[str | None, typer.Option(help="Or on a cron schedule, e.g. '*/15 * * * *'.")] = None,
    model: Annotated[str | None, typer.Option(help="Registered model. [default: AIRE_REGISTERED_MODEL]")] = None,
    suite: Annotated[str, typer.Option(help="Golden suite for the canary.")] = "arith",
    canary_size: Annotated[int | None, typer.Option(min=1, help="[default: AIRE_CANARY_SIZE, 300]")] = None,
    window: Annotated[float, typer.Option(min=1, help="Current window, seconds.")] = 3600.0,
    reference: Annotated[float, typer.Option(min=1, help="Reference window, seconds.")] = 86400.0,
    since: Annotated[str | None, typer.Option(help="Current window starts here (ISO time with offset).")] = None,
    embeddings: Annotated[bool, typer.Option()] = True,
    name: Annotated[str, typer.Option(help="Deployment name.")] = "aire-monitor",
) -> None:
    """Serve the monitor flow on a schedule (flow.serve: no work pool). Needs PREFECT_API_URL (aire ui)."""
    from aire.core.errors import ConfigError

    if (interval is None) == (cron is None):
        raise ConfigError("give exactly one of --interval or --cron", field="interval")
    if not os.environ.get("PREFECT_API_URL"):
        raise ConfigError(
            "schedules need a running Prefect server: start one with `aire ui` and export PREFECT_API_URL "
            "(the temporary server cannot keep a schedule)",
            field="PREFECT_API_URL",
        )
    from flows.monitor import monitor

    params = {
        "model": model,
        "suite": suite,
        "canary_size": canary_size,
        "window_s": window,
        "reference_s": reference,
        "since": _iso(since),
        "embeddings": embeddings,
    }
    typer.echo(
        f"serving deployment 'monitor/{name}' ({'every ' + str(interval) + ' s' if interval else cron}); Ctrl-C stops"
    )
    monitor.serve(name=name, interval=interval, cron=cron, parameters=params)


def _iso(value: str | None) -> str | None:
    """An ISO-8601 time with a UTC offset, checked here so a typo is exit 3, not a failed flow run."""
    if value is None:
        return None
    from datetime import datetime

    from aire.core.errors import InputError

    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"not an ISO-8601 time: {value!r}", field="since") from None
    if parsed.tzinfo is None:
        raise InputError(f"give a UTC offset, e.g. {value}+00:00", field="since")
    return parsed.isoformat()


@app.command("traffic")
def traffic_cmd(
    endpoint: Annotated[str, typer.Option(help="Endpoint (aire.yaml) to send to.")],
    file: Annotated[Path, typer.Option(help="Traffic JSONL (prompt or messages per line).")],
    log: Annotated[Path | None, typer.Option(help="Append logs here. [default: <home>/logs/<endpoint>.jsonl]")] = None,
    limit: Annotated[int | None, typer.Option(min=1)] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=256)] = 8,
) -> None:
    """Send a traffic file to an endpoint (127.0.0.1 or your own) and log it like a production gateway."""
    from aire.run.offline import resolve_endpoint
    from aire.run.replay import replay

    settings = get_settings()
    ep = resolve_endpoint(settings, endpoint, None, None)
    path = log or settings.resolved_home() / "logs" / f"{ep.name}.jsonl"
    n = asyncio.run(replay(settings, ep, file, path, limit=limit, concurrency=concurrency))
    typer.echo(f"logged {n} requests to {path}")


@app.command("metrics")
def metrics_cmd(
    port: Annotated[int, typer.Option(min=1024, max=65535)] = 9108,
    host: Annotated[str, typer.Option(help="Bind address (0.0.0.0 inside the compose network).")] = "127.0.0.1",
) -> None:
    """Serve the monitor's latest SLIs on /metrics for Prometheus: every <home>/metrics/*.prom (one per
    monitored model), merged and read afresh at each scrape. A file that does not parse is left out and
    named on stderr."""
    import signal
    import threading

    from prometheus_client import start_http_server

    from aire.core.errors import ServingError
    from aire.monitor.metrics import textfile_registry

    folder = get_settings().resolved_home() / "metrics"
    try:
        server, thread = start_http_server(port, addr=host, registry=textfile_registry(folder))
    except OSError as exc:
        raise ServingError(f"cannot serve metrics on {host}:{port}: {exc}") from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    typer.echo(f"serving {folder}/*.prom on http://{host}:{port}/metrics; Ctrl-C stops")
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@app.command("evaluators")
def list_evaluators() -> None:
    """List the registered evaluators and their options."""
    import evaluators

    for name, spec in sorted(evaluators.registry().items()):
        direction = "higher is better" if spec.higher_is_better else "lower is better"
        typer.echo(f"{name:12s} {direction}; aggregations: {', '.join(spec.aggregations)}")


@app.command("version")
def version() -> None:
    import aire
    from aire.run.offline import code_version

    typer.echo(f"aire {aire.__version__} ({code_version()})")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and map every outcome to aire's exit codes."""
    settings = get_settings()
    quiet_environment(settings)
    # Flow and task logs still reach the Prefect API (and UI); the terminal shows aire's own output,
    # and an error as one line instead of Prefect's traceback.
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    # MLflow configures its own logger at import and chatters about migrations on a new database.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="aire", standalone_mode=False)
        return int(code or 0)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except TyperException as exc:
        # Click-style CLIs exit 2 on usage errors, but 2 means INCONCLUSIVE to a CI job reading aire's exit code.
        ctx = getattr(exc, "ctx", None)
        hint = f" (try: {ctx.command_path} --help)" if ctx is not None else ""
        print(f"error: {exc.format_message()}{hint}", file=sys.stderr)
        return EXIT_ERROR
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return EXIT_ERROR
    except AireError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:
        if os.environ.get("AIRE_DEBUG"):
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (set AIRE_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
