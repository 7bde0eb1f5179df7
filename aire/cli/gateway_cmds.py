"""`aire gateway`: the OpenAI-compatible gateway in front of the replicas, in the foreground or in the background."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aire.core.settings import get_settings


def gateway_cmd(
    config: Annotated[
        Path | None, typer.Option(help="Gateway config (default: AIRE_GATEWAY_CONFIG, gateway.yaml).")
    ] = None,
    host: Annotated[str | None, typer.Option(help="Listen address (default: the config's listen.host).")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Listen port (default: listen.port).")] = None,
    background: Annotated[bool, typer.Option("--background", help="Run as a managed background process.")] = False,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the background gateway aire started.")] = False,
    status: Annotated[bool, typer.Option("--status", help="Show the background gateway.")] = False,
) -> None:
    """Serve /v1/completions, /v1/chat/completions and /v1/models, routed by the registry's aliases."""
    from aire.client.config import load_config
    from aire.gateway.config import load_gateway_config
    from aire.ops import gateway_process

    settings = get_settings()
    if stop:
        stopped = gateway_process.stop_gateway(settings)
        typer.echo("gateway stopped" if stopped else "no aire gateway was running")
        return
    if status:
        info = gateway_process.gateway_status(settings)
        typer.echo(str(info) if info else "no aire gateway is running")
        return
    path = config or settings.gateway_config
    cfg = load_gateway_config(path, settings.registered_model)  # bad config: exit 3 before anything starts
    listen_host, listen_port = host or cfg.listen.host, port or cfg.listen.port
    if background:
        info = gateway_process.start_gateway(settings, listen_host, listen_port, path.resolve())
        typer.echo(f"gateway at {info.url}/v1 (pid {info.pid}, log {info.log}); stop it with: aire gateway --stop")
        return
    from aire.gateway.server import serve

    endpoints = load_config(settings.config, settings.models_dir)
    serve(settings, cfg, endpoints, listen_host, listen_port)
