"""After promotion: `aire monitor` (one run), `aire schedule` (runs on a schedule), `aire incidents` (what the monitor
opened), `aire metrics` (its SLIs for Prometheus) and `aire traffic` (send logged traffic, as production would)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer

from aire.core.errors import EXIT_FAIL, EXIT_PASS
from aire.core.settings import get_settings

LiveSuite = Annotated[
    str | None,
    typer.Option(
        help="Score production's logged answers with this suite's reference-free evaluators (an LLM judge), "
        "current vs reference window; a severe FAIL rolls back."
    ),
]
LiveMetric = Annotated[
    list[str] | None, typer.Option(help="Only this evaluator (metric key) of --live-suite; repeatable.")
]
LiveSample = Annotated[int, typer.Option(min=10, help="At most this many answers judged per window.")]
Canary = Annotated[
    bool, typer.Option(help="Send the golden canary to production; --no-canary: judge it by its traffic only.")
]


def monitor_cmd(
    model: Annotated[str | None, typer.Option(help="Registered model. [default: AIRE_REGISTERED_MODEL]")] = None,
    suite: Annotated[
        str | None, typer.Option(help="Golden suite for the canary. [default: the suite production was gated on]")
    ] = None,
    canary_size: Annotated[
        int | None,
        typer.Option(
            min=1, help="Inputs per canary run (rotating through the suite). [default: AIRE_CANARY_SIZE, 300]"
        ),
    ] = None,
    logs: Annotated[
        Path | None,
        typer.Option(
            help="Folder of production JSONL logs, or 'store': the gateway's traffic log. [default: <home>/logs]"
        ),
    ] = None,
    window: Annotated[float, typer.Option(min=1, help="Current window, seconds.")] = 3600.0,
    reference: Annotated[float, typer.Option(min=1, help="Reference window before it, seconds.")] = 86400.0,
    since: Annotated[
        str | None, typer.Option(help="Current window starts here (ISO time with offset), e.g. the deploy.")
    ] = None,
    embeddings: Annotated[bool, typer.Option(help="Embedding drift with the bundled MiniLM.")] = True,
    live_suite: LiveSuite = None,
    live_metric: LiveMetric = None,
    live_sample: LiveSample = 200,
    canary: Canary = True,
) -> None:
    """One monitor run on the version holding `production`: exit 0 healthy, 1 breach (incident + rollback)."""
    from aire.cli.console import console

    settings = get_settings()
    since = _iso(since)  # a typo is exit 3 before the seconds of importing prefect
    from flows.monitor import monitor

    result = asyncio.run(
        monitor(
            model=model,
            suite=suite,
            canary_size=canary_size,
            logs=None if logs is None else str(logs),
            window_s=window,
            reference_s=reference,
            since=since,
            embeddings=embeddings,
            live_suite=live_suite,
            live_metrics=live_metric or None,
            live_sample=live_sample,
            run_canary=canary,
        )
    )
    console.print(result.report, soft_wrap=True, markup=False)
    console.print(f"MLflow run: {result.mlflow_run_id}", soft_wrap=True)
    if result.incident_id is not None:
        console.print(f"Incident #{result.incident_id}: aire incidents   (store {settings.resolved_store_url})")
    raise typer.Exit(EXIT_FAIL if result.breach else EXIT_PASS)


def schedule_cmd(
    interval: Annotated[float | None, typer.Option(min=5, help="Run the monitor every N seconds.")] = None,
    cron: Annotated[str | None, typer.Option(help="Or on a cron schedule, e.g. '*/15 * * * *'.")] = None,
    model: Annotated[str | None, typer.Option(help="Registered model. [default: AIRE_REGISTERED_MODEL]")] = None,
    suite: Annotated[
        str | None, typer.Option(help="Golden suite for the canary. [default: the suite production was gated on]")
    ] = None,
    canary_size: Annotated[int | None, typer.Option(min=1, help="[default: AIRE_CANARY_SIZE, 300]")] = None,
    window: Annotated[float, typer.Option(min=1, help="Current window, seconds.")] = 3600.0,
    reference: Annotated[float, typer.Option(min=1, help="Reference window, seconds.")] = 86400.0,
    since: Annotated[str | None, typer.Option(help="Current window starts here (ISO time with offset).")] = None,
    embeddings: Annotated[bool, typer.Option()] = True,
    name: Annotated[str, typer.Option(help="Deployment name.")] = "aire-monitor",
    logs: Annotated[
        str | None, typer.Option(help="JSONL log folder, or 'store' (the gateway's log). [default: <home>/logs]")
    ] = None,
    live_suite: LiveSuite = None,
    live_metric: LiveMetric = None,
    live_sample: LiveSample = 200,
    canary: Canary = True,
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
    since = _iso(since)
    from flows.monitor import monitor

    params = {
        "model": model,
        "suite": suite,
        "canary_size": canary_size,
        "window_s": window,
        "reference_s": reference,
        "since": since,
        "embeddings": embeddings,
        "logs": logs,
        "live_suite": live_suite,
        "live_metrics": live_metric or None,
        "live_sample": live_sample,
        "run_canary": canary,
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
    from aire.release import list_incidents
    from aire.store import Store

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


def incidents_clear(
    incident_id: Annotated[int, typer.Argument(help="Incident id.")],
    reason: Annotated[str, typer.Option(help="Why it is safe again (recorded).")] = "",
) -> None:
    """Close an incident: its version may be promoted again (the circuit breaker resets)."""
    from aire.release import clear
    from aire.store import Store

    incident = clear(Store(get_settings().resolved_store_url), incident_id, reason)
    typer.echo(f"incident #{incident.id} cleared: v{incident.version} of {incident.model} may be promoted again")


def traffic_cmd(
    file: Annotated[Path, typer.Option(help="Traffic JSONL (prompt or messages per line).")],
    endpoint: Annotated[str | None, typer.Option(help="Endpoint (aire.yaml) to send to.")] = None,
    base_url: Annotated[str | None, typer.Option(help="Or any OpenAI-compatible URL (the gateway's).")] = None,
    model: Annotated[str | None, typer.Option(help="With --base-url: the model name to send.")] = None,
    log: Annotated[Path | None, typer.Option(help="Append logs here. [default: <home>/logs/<endpoint>.jsonl]")] = None,
    limit: Annotated[int | None, typer.Option(min=1)] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=256)] = 8,
) -> None:
    """Send a traffic file to an endpoint (127.0.0.1 or your own) and log it like a production gateway."""
    from aire.run import replay, resolve_endpoint

    settings = get_settings()
    ep = resolve_endpoint(settings, endpoint or model, base_url, model)
    path = log or settings.resolved_home() / "logs" / f"{ep.name}.jsonl"
    n = asyncio.run(replay(settings, ep, file, path, limit=limit, concurrency=concurrency))
    typer.echo(f"logged {n} requests to {path}")


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
    from aire.monitor import textfile_registry

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
