"""Local infrastructure and facts about aire: `aire serve` (vLLM servers), `aire models build`, `aire ui` (MLflow and
Prefect UIs), `aire evaluators` and `aire version`."""

from __future__ import annotations

from typing import Annotated

import typer

from aire.core.settings import get_settings


def models_build(
    only: Annotated[list[str] | None, typer.Option(help="Build only these models.")] = None,
) -> None:
    """Build the local models infra/build_models.py knows: champion, challengers and the judge (skipped when built)."""
    from aire.ops import vllm as serving

    settings = get_settings()
    serving.ensure_vllm_env(settings, progress=typer.echo)
    for name, digest in serving.build_models(settings, only, progress=typer.echo).items():
        typer.echo(f"{name}: sha256 {digest}")


def serve(
    only: Annotated[list[str] | None, typer.Option(help="Serve only these endpoints.")] = None,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the servers aire started.")] = False,
    status: Annotated[bool, typer.Option("--status", help="Show the servers aire started.")] = False,
) -> None:
    """Start one local vLLM server per endpoint with a `serve:` section in aire.yaml."""
    from aire.client import load_config
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
    # Serves what aire.yaml names, nothing more: a missing model folder is an error that says how to
    # build the local models (`aire models build`), never a build behind the user's back.
    serving.ensure_vllm_env(settings, progress=typer.echo)
    for info in serving.start_servers(settings, wanted, progress=typer.echo):
        typer.echo(str(info))
    typer.echo("Stop them with: aire serve --stop")


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


def list_evaluators() -> None:
    """List the registered evaluators and their options."""
    import evaluators

    for name, spec in sorted(evaluators.registry().items()):
        direction = "higher is better" if spec.higher_is_better else "lower is better"
        typer.echo(f"{name:12s} {direction}; aggregations: {', '.join(spec.aggregations)}")


def version() -> None:
    import aire
    from aire.cli.db_cmds import store_revision_line
    from aire.run import code_version

    typer.echo(f"aire {aire.__version__} ({code_version()})")
    typer.echo(store_revision_line())
