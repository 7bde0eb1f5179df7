"""`aire gate --challenger A --challenger B ...`: each challenger against the champion on the same inputs,
at alpha / k (aire.gate.tournament), then the standings and at most one winner."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aire.core.types import Verdict


def run_tournament(
    flow: Callable[..., Any], champion: str, challengers: list[str], out: Path, args: dict[str, Any]
) -> int:
    """Run the k comparisons (one shadow-comparison flow each), write the standings; the exit code."""
    from rich.table import Table

    from aire.cli.console import console
    from aire.core.settings import get_settings
    from aire.gate import tournament
    from aire.gate.policy import load_policy

    k = len(challengers)
    policy = load_policy(Path(args["policy"]))[0]
    results: dict[str, tuple[Verdict, Path]] = {}
    for name in challengers:
        console.print(f"[bold]{name}[/] vs {champion}: alpha {policy.alpha:g} / {k}")
        result = asyncio.run(flow(champion=champion, challenger=name, out_dir=str(out / name), family=k, **args))
        results[name] = (result.verdict, Path(result.out_dir))
        console.print(f"  {result.verdict.value} on {result.n_pairs} pairs: {'; '.join(result.reasons)[:300]}")
    rows = tournament.standings(policy, results)
    tournament.write(out, rows, policy, champion)
    table = Table(title=f"tournament vs {champion} (each at alpha {policy.alpha / k:.4g})", title_justify="left")
    for col in ("rank", "challenger", "verdict", f"{rows[0].metric or '-'} delta [CI]"):
        table.add_column(col)
    for i, r in enumerate(rows, 1):
        delta = "-" if r.delta is None else f"{r.delta:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}]"
        table.add_row(str(i), r.challenger, r.verdict.value, delta)
    console.print(table)
    best = tournament.winner(rows)
    console.print(f"Winner: {best or 'none'}   standings: {out}/tournament.md", soft_wrap=True)
    if best is not None:
        console.print(
            f"Promote it with: aire promote --decision {out}/decision.json --alias production", soft_wrap=True
        )
    console.print(f"MLflow: {get_settings().resolved_tracking_uri}", soft_wrap=True)
    return tournament.exit_code(rows)
