"""Live quality: production's own answers, read from the traffic log (the gateway's in the store, or JSONL),
scored by a suite's reference-free evaluators (an LLM judge reads the question and the answer) and
compared with the answers of the reference window before it.

Live traffic has no references, so exact match cannot score it; a calibrated judge can. The two windows
hold different requests, so the comparison is for independent samples (aire.stats.independent), judged
by the policy's non-inferiority rule for the metric (the promise the version was gated on) at the
policy's alpha and again at its ``canary_severe_alpha``: a FAIL at the severe level is a breach (incident
and rollback), a FAIL at the policy's alpha only suspect. A judge-based metric whose judge identity is
not calibrated to the policy's ``min_kappa`` (0.6 where it sets none: a rollback is an action) is ERROR,
never evidence.

Each window is sampled (at most ``sample`` rows, chosen by a hash of the request id, so the next run
picks the same rows again and finds their verdicts in the store's judge cache).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from aire.core.errors import InputError
from aire.core.rules import Interval, MetricEvidence, NonInferiorityRule, RuleResult
from aire.core.settings import Settings
from aire.core.types import Completion, Sample, Score, Verdict
from aire.gate.policy import Policy
from aire.monitor.results import LiveMetric, LiveResult

# Used when the policy has no non-inferiority rule for the metric: a 5-point drop is tolerated.
DEFAULT_MARGIN = 0.05
MIN_SCORED = 10  # per window: fewer proves nothing either way
# A judge may roll production back only once calibrated: the policy's min_kappa, else this.
DEFAULT_MIN_KAPPA = 0.6


def answered(frame: Any, endpoint: str | None) -> Any:
    """Rows of the window that production answered (status ok, a response), of one endpoint."""
    if len(frame) == 0:
        return frame
    ok = frame[(frame["status"] == "ok") & frame["response"].notna()]
    if endpoint is not None and "endpoint" in ok:
        ok = ok[ok["endpoint"] == endpoint]
    return ok


def sampled(frame: Any, size: int) -> list[dict[str, Any]]:
    """At most ``size`` rows, the same ones on every run over the same window (hash of the request id)."""
    rows = frame.to_dict("records") if len(frame) else []
    rows.sort(key=lambda r: hashlib.sha256(str(r["id"]).encode()).hexdigest())
    return rows[:size]


def rule_for(policy: Policy, key: str) -> NonInferiorityRule:
    """The policy's non-inferiority rule on ``<key>/mean``, else one with DEFAULT_MARGIN."""
    for rule in policy.rules:
        if isinstance(rule, NonInferiorityRule) and rule.metric == f"{key}/mean":
            return rule
    return NonInferiorityRule(metric=f"{key}/mean", margin=DEFAULT_MARGIN)


async def score_rows(bound: dict[str, Any], rows: list[dict[str, Any]], concurrency: int = 16) -> dict[str, np.ndarray]:
    """Every evaluator's score of every row (NaN: could not score), in row order. A repeated (prompt,
    answer) is scored once: production traffic repeats itself, and concurrent asks of one prompt would
    each miss the judge cache."""
    from aire.core.progress import reporter

    distinct = list(dict.fromkeys((str(r["prompt"]), str(r["response"])) for r in rows))
    sem = asyncio.Semaphore(concurrency)
    progress = reporter()
    progress.start(total=len(distinct), description="judging live traffic")

    async def one(i: int, prompt: str, answer: str) -> dict[str, Score]:
        sample, completion = Sample(id=f"live-{i}", prompt=prompt), Completion(text=answer)
        async with sem:
            scores = {key: await ev.score(sample, completion) for key, ev in bound.items()}
        progress.advance(failed=not all(s.scored for s in scores.values()))
        return scores

    try:
        scored = await asyncio.gather(*(one(i, p, a) for i, (p, a) in enumerate(distinct)))
    finally:
        progress.stop()
    by_pair = dict(zip(distinct, scored, strict=True))
    pairs = [(str(r["prompt"]), str(r["response"])) for r in rows]
    return {key: np.array([by_pair[p][key].value for p in pairs], dtype=float) for key in bound}


def judge_metric(
    key: str,
    ref: np.ndarray,
    cur: np.ndarray,
    *,
    policy: Policy,
    higher_is_better: bool | None,
    calibration: str | None,
) -> LiveMetric:
    """One metric's verdicts, at the policy's alpha and at its severe level. ``calibration``: why a
    judge-based metric may not be read (uncalibrated judge), else None."""
    from aire.stats.independent import independent_difference

    rule = rule_for(policy, key)
    n_ref, n_cur = int((~np.isnan(ref)).sum()), int((~np.isnan(cur)).sum())
    base = LiveMetric(
        metric=key,
        margin=rule.margin,
        n_reference=n_ref,
        n_current=n_cur,
        unscored=int(len(ref) - n_ref + len(cur) - n_cur),
        reference_mean=float(np.nanmean(ref)) if n_ref else math.nan,
        current_mean=float(np.nanmean(cur)) if n_cur else math.nan,
        verdict=Verdict.ERROR,
        severe_verdict=Verdict.ERROR,
        reason="",
    )
    if calibration is not None:
        return base.model_copy(update={"reason": calibration})
    if min(n_ref, n_cur) < MIN_SCORED:
        return base.model_copy(update={"reason": f"{n_ref} vs {n_cur} scored answers: fewer than {MIN_SCORED}"})

    def read(alpha: float) -> tuple[RuleResult, tuple[float, float, float]]:
        d = independent_difference(ref, cur, alpha=alpha)
        evidence = MetricEvidence(
            delta=Interval(value=d.delta, ci_low=d.ci_low, ci_high=d.ci_high), higher_is_better=higher_is_better
        )
        return rule.judge(evidence, alpha=alpha), (d.delta, d.ci_low, d.ci_high)

    normal, (delta, low, high) = read(policy.alpha)
    severe, (_, severe_low, severe_high) = read(policy.canary_severe_alpha)
    return base.model_copy(
        update={
            "delta": delta,
            "ci_low": low,
            "ci_high": high,
            "severe_ci": (severe_low, severe_high),
            "verdict": normal.verdict,
            "severe_verdict": severe.verdict,
            "reason": f"live {normal.reason}",
        }
    )


async def live_quality(
    settings: Settings,
    *,
    log_dir: Path | str,
    now: datetime,
    window: timedelta,
    reference: timedelta,
    endpoint: str | None,
    suite: str,
    metrics: list[str] | None,
    policy_path: Path,
    sample: int = 200,
) -> LiveResult | None:
    """Score both windows' answers with ``suite``'s evaluators named in ``metrics`` (default: all) and
    compare; None when there are no logs at all."""
    from aire.gate.policy import load_policy
    from aire.judges import judging
    from aire.monitor.traffic import log_reader
    from aire.run.judge_checks import judge_checks
    from aire.run.setup import load_suite_with_evaluators
    from aire.store.store import Store

    read_logs = log_reader(log_dir, settings.resolved_store_url)
    if read_logs is None:
        return None
    policy = load_policy(policy_path)[0]
    loaded, bound = load_suite_with_evaluators(settings, suite)
    unknown = sorted(set(metrics or ()) - set(bound))
    if unknown:
        known = sorted(bound)
        raise InputError(f"suite {loaded.name} has no evaluator {unknown[0]!r} (it has {known})", field="live_metric")
    bound = {k: v for k, v in bound.items() if not metrics or k in metrics}
    cur = sampled(answered(read_logs(since=now - window, until=now).frame, endpoint), sample)
    ref = sampled(answered(read_logs(since=now - window - reference, until=now - window).frame, endpoint), sample)
    store = Store(settings.resolved_store_url)
    try:
        checks = judge_checks(settings, store, bound)
        async with judging(settings, store):
            scores = await score_rows(bound, ref + cur)
    finally:
        store.close()
    out = []
    for key, values in scores.items():
        why = None
        check, floor = checks.get(key), policy.min_kappa if policy.min_kappa is not None else DEFAULT_MIN_KAPPA
        if check is not None and floor is not None and (check.kappa is None or check.kappa < floor):
            kappa = "never calibrated" if check.kappa is None else f"kappa {check.kappa:.3f}"
            why = f"judge {check.judge} {kappa} (< min_kappa {floor}): `aire judge calibrate` first"
        hib = bound[key].spec.higher_is_better
        out.append(
            judge_metric(
                key, values[: len(ref)], values[len(ref) :], policy=policy, higher_is_better=hib, calibration=why
            )
        )
    return LiveResult(suite=loaded.name, sample=sample, metrics=out, severe_alpha=policy.canary_severe_alpha)
