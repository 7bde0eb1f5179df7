"""A tournament: several challengers, one champion, the same inputs; at most one winner.

Each challenger is gated against the champion as usual, but at ``alpha / k`` for k challengers
(Bonferroni): the chance that *any* challenger no better than the margin PASSes stays at most the
policy's one-sided alpha / 2 whatever the dependence between the comparisons (they share the champion's
answers, so they are dependent; the union bound does not care). Simulated in
tests/unit/test_tournament.py: with three challengers exactly at the margin, uncorrected gates PASS at
least one of them about three times as often.

The standings rank PASSing challengers by the point estimate of the policy's first critical
non-inferiority metric (the difference to the champion), then the INCONCLUSIVE, FAIL and ERROR ones.
The winner is the best PASS; its decision.json is copied to the tournament's folder, so ``aire promote
--decision <out>/decision.json`` promotes it, and every challenger's own decision.json names the winner,
so ``aire promote`` refuses the others.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from pydantic import BaseModel

from aire.core.rules import NonInferiorityRule, SuperiorityRule
from aire.core.types import Verdict
from aire.gate.policy import Policy
from aire.gate.record import TournamentRef, read_decision

ORDER = {Verdict.PASS: 0, Verdict.INCONCLUSIVE: 1, Verdict.FAIL: 2, Verdict.ERROR: 3}


class Standing(BaseModel):
    challenger: str
    verdict: Verdict
    metric: str | None
    delta: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    out_dir: str


def family_policy(policy: Policy, k: int) -> Policy:
    """The policy one of k comparisons runs under: alpha / k (Bonferroni)."""
    return policy if k <= 1 else policy.model_copy(update={"alpha": policy.alpha / k})


def ranking_metric(policy: Policy) -> str | None:
    rule = next((r for r in policy.rules if isinstance(r, NonInferiorityRule | SuperiorityRule) and r.critical), None)
    return None if rule is None else rule.metric


def standings(policy: Policy, results: dict[str, tuple[Verdict, Path]]) -> list[Standing]:
    """Every challenger's verdict and difference on the ranking metric, best first. ``results``:
    challenger -> (verdict, its comparison's folder holding decision.json)."""
    metric = ranking_metric(policy)
    rows = []
    for name, (verdict, out) in results.items():
        row = Standing(challenger=name, verdict=verdict, metric=metric, out_dir=str(out))
        decision = out / "decision.json"
        if metric is not None and decision.is_file():
            ev = read_decision(decision).metrics.get(metric)
            if ev is not None and ev.delta is not None:
                d = ev.delta if ev.higher_is_better is not False else ev.delta.negated()
                row = row.model_copy(update={"delta": d.value, "ci_low": d.ci_low, "ci_high": d.ci_high})
        rows.append(row)
    order = list(results)

    def key(s: Standing) -> tuple[int, float, int]:
        delta = s.delta if s.delta is not None and math.isfinite(s.delta) else -math.inf
        return ORDER[s.verdict], -delta, order.index(s.challenger)

    return sorted(rows, key=key)


def winner(rows: list[Standing]) -> str | None:
    return rows[0].challenger if rows and rows[0].verdict is Verdict.PASS else None


def exit_code(rows: list[Standing]) -> int:
    """0 a winner, 1 every challenger FAILed, 2 otherwise (none proven), 3 when one could not be judged."""
    if winner(rows) is not None:
        return 0
    if any(r.verdict is Verdict.ERROR for r in rows):
        return 3
    return 1 if all(r.verdict is Verdict.FAIL for r in rows) else 2


def markdown(rows: list[Standing], policy: Policy, champion: str) -> str:
    k = len(rows)
    lines = [
        f"# Tournament: {k} challengers vs {champion}",
        "",
        f"Each comparison at alpha {policy.alpha:g} / {k} = {policy.alpha / k:.4g} (Bonferroni over the "
        f"challengers); ranked by `{rows[0].metric if rows else '-'}`, challenger - champion.",
        "",
        f"**Winner: {winner(rows) or 'none'}**",
        "",
        "| rank | challenger | verdict | delta [CI] | report |",
        "|---:|---|---|---|---|",
    ]
    for i, r in enumerate(rows, 1):
        delta = "-" if r.delta is None else f"{r.delta:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}]"
        lines.append(f"| {i} | {r.challenger} | {r.verdict.value} | {delta} | {r.out_dir}/report.md |")
    return "\n".join(lines) + "\n"


def write(out: Path, rows: list[Standing], policy: Policy, champion: str) -> None:
    """tournament.md and tournament.json in ``out``; the winner's decision.json copied there; every
    challenger's decision.json told the outcome (``tournament``)."""
    out.mkdir(parents=True, exist_ok=True)
    ref = TournamentRef(challengers=[r.challenger for r in rows], winner=winner(rows), family_alpha=policy.alpha)
    for r in rows:
        path = Path(r.out_dir) / "decision.json"
        if path.is_file():
            doc = json.loads(path.read_text())
            doc["tournament"] = ref.model_copy(update={"challenger": r.challenger}).model_dump()
            path.write_text(json.dumps(doc, indent=2))
    (out / "tournament.md").write_text(markdown(rows, policy, champion))
    (out / "tournament.json").write_text(
        json.dumps({**ref.model_dump(), "standings": [r.model_dump(mode="json") for r in rows]}, indent=2)
    )
    best = next((r for r in rows if r.challenger == ref.winner), None)
    target = out / "decision.json"
    if best is not None:
        shutil.copyfile(Path(best.out_dir) / "decision.json", target)
    elif target.exists():
        target.unlink()  # an earlier tournament's winner must not stay promotable
