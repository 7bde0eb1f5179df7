"""`aire gate`, `aire promote`, `aire history`: decide a promotion, act on the decision, show the audit trail."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aire.core.settings import get_settings

if TYPE_CHECKING:
    from aire.run import ShadowResult


def gate_cmd(
    champion: Annotated[str, typer.Option(help="Endpoint serving the current model (aire.yaml).")] = "",
    challenger: Annotated[
        list[str] | None,
        typer.Option(help="Endpoint serving the candidate (aire.yaml); repeat it for a tournament of several."),
    ] = None,
    policy: Annotated[Path | None, typer.Option(help="Gate policy YAML. [default: AIRE_GATE_POLICY]")] = None,
    suite: Annotated[str | None, typer.Option(help="Compare on this suite (references known).")] = None,
    traffic: Annotated[Path | None, typer.Option(help="Or replay these logged prompts (JSONL).")] = None,
    mirrored: Annotated[
        bool, typer.Option("--mirrored", help="Or compare the gateway's mirrored pairs (production vs challenger).")
    ] = False,
    since: Annotated[
        str | None, typer.Option(help="--mirrored: pairs logged since this time (ISO 8601) or ago (30m, 2h, 1d).")
    ] = None,
    route: Annotated[str | None, typer.Option(help="--mirrored: only this gateway route.")] = None,
    pairwise: Annotated[
        str | None,
        typer.Option(help="--traffic/--mirrored: also judge each pair with this suite's pairwise: evaluators."),
    ] = None,
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
    from aire.cli.console import RichReporter
    from aire.core import set_reporter
    from aire.run import preflight_shadow

    settings = get_settings()
    policy = policy or settings.gate_policy
    mirrored_since = parse_since(since) if mirrored else None
    challengers = list(dict.fromkeys(challenger or [""]))
    if len(challengers) > 1 and (mirrored or sequential):
        from aire.core.errors import InputError

        raise InputError("a tournament (several --challenger) runs fixed-n on a suite or traffic", field="challenger")
    for name in challengers:
        asyncio.run(
            preflight_shadow(
                settings,
                policy=policy,
                champion=champion,
                challenger=name,
                suite=suite,
                traffic=traffic,
                sequential=sequential,
                mirrored=mirrored,
                pairwise=pairwise,
            )
        )
    from flows.shadow import shadow_comparison  # imports prefect: seconds, so only after the checks

    set_reporter(RichReporter())
    if len(challengers) > 1:
        from aire.cli.tournament import run_tournament

        base = out or settings.resolved_home() / "reports" / f"tournament-{champion}"
        args = {"policy": str(policy), "suite": suite, "traffic": None if traffic is None else str(traffic)}
        args |= {"limit": limit, "concurrency": concurrency, "seed": seed, "fresh": fresh, "warmup": warmup}
        args |= {"registered_model": registered_model, "pairwise": pairwise}
        raise typer.Exit(run_tournament(shadow_comparison, champion, challengers, base, args))
    result = asyncio.run(
        shadow_comparison(
            champion=champion,
            challenger=challengers[0],
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
            mirrored_since=mirrored_since,
            route=route,
            pairwise=pairwise,
        )
    )
    show_decision(result)
    raise typer.Exit(result.exit_code)


def parse_since(since: str | None) -> datetime:
    """``--since``: an ISO 8601 time (UTC when it names no zone) or a duration ago (``30m``, ``2h``, ``1d``)."""
    import re

    from aire.core.errors import InputError

    if not since:
        raise InputError("--mirrored needs --since (an ISO time, or a duration ago such as 30m)", field="since")
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd])", since.strip())
    if m:
        seconds = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        return datetime.now(UTC) - timedelta(seconds=seconds)
    try:
        at = datetime.fromisoformat(since)
    except ValueError:
        why = f"--since {since!r} is neither an ISO 8601 time nor a duration like 30m"
        raise InputError(why, field="since") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def show_decision(result: ShadowResult) -> None:
    """The gate's outcome as a reader scans it: rules, where a sequential run stopped, verdict and reasons, and
    where the evidence is (report, decision.json, MLflow run)."""
    from aire.cli.console import console, rules_lines
    from aire.tracking import ui_command

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
        f"Registered {reg.model}: champion v{reg.champion_version}, challenger v{reg.challenger_version}",
        soft_wrap=True,
    )
    console.print(f"Report: {result.out_dir}/report.md  decision: {result.out_dir}/decision.json", soft_wrap=True)
    console.print(
        f"MLflow run: {result.mlflow_run_id}   look at it: aire ui  or: {ui_command(get_settings())}", soft_wrap=True
    )


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
    from aire import release
    from aire.core.errors import InputError
    from aire.store import Store

    verdict = None
    if decision is not None:
        from aire.gate.record import read_decision

        record = read_decision(decision)
        verdict, registered = record.verdict.value, record.registry
        if model is not None and registered.model != model:
            raise InputError(f"the decision is about {registered.model}, not {model}", path=decision)
        if version is not None and registered.challenger_version not in (None, version):
            raise InputError(f"the decision is about v{registered.challenger_version}, not v{version}", path=decision)
        model = model or registered.model
        version = version or registered.challenger_version
        t = record.tournament
        if t is not None and not t.promotable and not force:
            from aire.core.errors import PromotionRefused

            why = f"the tournament's winner is {t.winner}" if t.winner else "the tournament has no winner"
            raise PromotionRefused(f"refusing to promote {t.challenger}: {why} (of {', '.join(t.challengers)})")
    if not model or not version:
        raise InputError("give --decision, or --model and --version", field="model")
    settings = get_settings()
    move = release.promote(
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


def history_cmd(model: Annotated[str, typer.Argument(help="Registered model name.")]) -> None:
    """The alias history of a registered model, oldest first."""
    from rich.table import Table

    from aire import release
    from aire.cli.console import console
    from aire.store import Store

    moves = release.history(Store(get_settings().resolved_store_url), model)
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
