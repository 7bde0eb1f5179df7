"""`aire run offline`, `aire rescore` and `aire plan`: benchmark one endpoint on a suite, score a finished run
again with a suite's current evaluators, and size a comparison before running it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from aire.core.errors import EXIT_FAIL, EXIT_PASS
from aire.core.settings import get_settings


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
    from aire.core import set_reporter
    from aire.run import preflight
    from aire.tracking import start_recorder, ui_command

    start_recorder(get_settings())  # MLflow's import and store set-up overlap the run, on the other core
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


def rescore_cmd(
    run: Annotated[str, typer.Option(help="Store run id of a finished offline run (printed by `aire run offline`).")],
    suite: Annotated[
        str | None, typer.Option(help="Suite whose evaluators score (default: the run's own suite, as it is now).")
    ] = None,
) -> None:
    """Score a finished run's stored completions again, with no new model request; the suite's floors
    decide the exit code. Recorded as a new MLflow run tagged with the one it rescored."""
    from aire.cli.console import RichReporter, console, floors_lines, summary_table
    from aire.core import set_reporter
    from aire.run.rescore import rescore

    set_reporter(RichReporter())
    result = asyncio.run(rescore(get_settings(), run, suite))
    title = f"{result.suite} ({result.suite_version[:12]}) @ {result.endpoint} [{result.served_model}], rescored"
    console.print(summary_table(title, result.summary))
    console.print(f"Rescored {result.n_samples} stored completions of run {run}: no model was asked.", soft_wrap=True)
    for line in floors_lines([(f.floor, f.value, f.passed) for f in result.floors]):
        console.print(line)
    console.print(f"MLflow run: {result.mlflow_run_id}   (store run {result.run_id})", soft_wrap=True)
    raise typer.Exit(EXIT_PASS if result.passed else EXIT_FAIL)


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
    from aire.gate import level_text, load_policy
    from aire.stats import fixed_n_plan

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
