"""The gate report: what a reviewer reads must match the decision and the evidence, and never leak secrets."""

from __future__ import annotations

import math
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from aire.core.formatting import fmt
from aire.gate.evidence import Comparison, PairedData, compare
from aire.gate.policy import (
    Counts,
    Decision,
    FloorRule,
    Interval,
    LatencyRelativeRule,
    NonInferiorityRule,
    Policy,
    Verdict,
    decide,
)
from aire.gate.report import plot_latency, render_markdown, write_report
from aire.stats.sequential import Look, SequentialInfo

N = 200
EM = "exact_match/mean"
RULES = [
    NonInferiorityRule(metric=EM, margin=0.03),
    FloorRule(metric=EM, threshold=0.9, critical=False),
    LatencyRelativeRule(metric="latency/ttft_ms/p95", max_increase=0.2, higher_is_better=False),
]


def _latency() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    out = {}
    for sli, scale in (("ttft_ms", 80.0), ("tpot_ms", 12.0), ("e2e_ms", 900.0)):
        a = rng.lognormal(math.log(scale), 0.3, N)
        out[sli] = (a, a * rng.normal(1.0, 0.02, N))
    return out


@pytest.fixture(scope="module")
def case() -> tuple[Comparison, Decision, dict[str, tuple[np.ndarray, np.ndarray]]]:
    # Champion 0.80, challenger 0.85: ten champion misses become hits, so delta is exactly +0.05.
    champion = np.array([1.0] * 160 + [0.0] * 40)
    challenger = champion.copy()
    challenger[160:170] = 1.0
    latency = _latency()
    data = PairedData(
        ids=[str(i) for i in range(N)],
        quality={EM: (champion, challenger, True)},
        latency=latency,
        counts=Counts(n_pairs=N, n_errors=3),
    )
    policy = Policy(rules=RULES)
    comparison = compare(data, alpha=policy.alpha, fail_alpha=policy.fail_alpha)
    decision = decide(policy, comparison.evidence({r.metric for r in RULES}), comparison.counts)
    return comparison, decision, latency


def _md(comparison: Comparison, decision: Decision, **kw: object) -> str:
    args: dict[str, object] = {"latency": {}, "provenance": {}, "champion_name": "old", "challenger_name": "new"}
    return render_markdown(title="new vs old", decision=decision, comparison=comparison, **(args | kw))  # type: ignore[arg-type]


def _row(md: str, metric: str, kind: str) -> str:
    return next(line for line in md.splitlines() if line.startswith(f"| `{metric}` | {kind} |"))


def test_verdict_rules_and_numbers(case: tuple[Comparison, Decision, dict]) -> None:
    comparison, decision, _ = case
    # The floor at 0.9 fails (CI wholly below), but it is not critical: the gate pauses instead of failing.
    assert decision.verdict is Verdict.INCONCLUSIVE
    md = _md(comparison, decision)
    assert md.startswith("# new vs old\n")
    assert "**Verdict: INCONCLUSIVE** (exit 2)" in md
    assert all(f"- {r}" in md for r in decision.reasons)

    ni = _row(md, EM, "non_inferiority")
    assert "0.800 [" in ni and "0.850 [" in ni and "| 0.050 [" in ni
    assert "Δ > -0.030" in ni and ni.endswith("| yes | PASS |")
    floor = _row(md, EM, "floor")
    assert "≥ 0.900" in floor and floor.endswith("| no | FAIL |")
    lat = _row(md, "latency/ttft_ms/p95", "latency_relative")
    p95 = float(np.quantile(case[2]["ttft_ms"][0], 0.95))
    assert f"Δ +20% of champion (≤ +{fmt(0.2 * p95)})" in lat and lat.endswith("| PASS |")
    # The rule reads the ratio of the percentiles: it is shown with its CI, against ×1.2.
    ratio = comparison.metrics["latency/ttft_ms/p95"].evidence.ratio
    assert ratio is not None and f"ratio ×{fmt(ratio.value)} [{fmt(ratio.ci_low)}, {fmt(ratio.ci_high)}]" in lat
    assert "ratio ≤ ×1.200" in lat
    # The levels each side reads, and how the FAIL side is corrected for several critical rules.
    assert "**Levels:** a PASS reads 95% intervals, a FAIL 97.5% intervals" in md
    assert f"**Multiplicity:** {decision.multiplicity}" in md and "Bonferroni over 2 critical rules" in md
    # Order of the sections is the order a reviewer reads them in.
    heads = ["## Rules", "**Counts:** 200 pairs, 3 request errors, 0 unpaired", "## Methods", "## Latency"]
    assert [md.index(h) for h in heads] == sorted(md.index(h) for h in heads)
    assert "## Sequential" not in md and "Warning: unpaired" not in md


def test_methods_and_latency_tables(case: tuple[Comparison, Decision, dict]) -> None:
    comparison, decision, latency = case
    md = _md(comparison, decision, latency=latency, png_name="latency.png")
    assert "| `exact_match/mean` | mcnemar | chosen | 0.050 |" in md
    assert "| `exact_match/mean` | paired_t | check | 0.050 |" in md
    assert "| `exact_match/mean` | paired_bootstrap | check | 0.050 |" in md
    for sli in ("ttft_ms", "tpot_ms", "e2e_ms"):
        for q in ("p50", "p95", "p99"):
            delta = comparison.metrics[f"latency/{sli}/{q}"].evidence.delta
            assert delta is not None
            assert f"| `latency/{sli}/{q}` |" in md
    assert "ttft_ms 200/200" in md
    assert md.index("## Latency") < md.index("![latency distributions](latency.png)")


def test_unbounded_interval_renders_as_dash(case: tuple[Comparison, Decision, dict]) -> None:
    comparison, decision, _ = case
    em = comparison.metrics[EM]
    unbounded = Interval(value=0.05, ci_low=-math.inf, ci_high=math.inf)
    changed = em.model_copy(update={"evidence": em.evidence.model_copy(update={"delta": unbounded})})
    md = _md(comparison.model_copy(update={"metrics": comparison.metrics | {EM: changed}}), decision)
    assert "| 0.050 [—, —] |" in _row(md, EM, "non_inferiority")
    assert re.search(r"\binf\b", md) is None


def test_caveats_are_shown(case: tuple[Comparison, Decision, dict]) -> None:
    comparison, decision, _ = case
    assert "**Caveats**" not in _md(comparison, decision)
    em = comparison.metrics[EM]
    caveat = "only 8 clusters (a cluster-robust interval needs at least 30 to be trusted)"
    changed = em.model_copy(update={"evidence": em.evidence.model_copy(update={"caveat": caveat})})
    md = _md(comparison.model_copy(update={"metrics": comparison.metrics | {EM: changed}}), decision)
    assert f"- `{EM}`: {caveat}" in md and md.index("**Caveats**") < md.index("## Methods")


def test_unpaired_warning_only_when_unpaired(case: tuple[Comparison, Decision, dict]) -> None:
    comparison, decision, _ = case
    assert "unpaired fallback" not in _md(comparison, decision)
    welch = comparison.metrics[EM].model_copy(update={"paired": False, "method": "welch"})
    md = _md(comparison.model_copy(update={"metrics": comparison.metrics | {EM: welch}}), decision)
    assert "Warning: unpaired fallback (Welch / Mann-Whitney) used for `exact_match/mean`" in md


def test_provenance_flattened_and_secrets_redacted(case: tuple[Comparison, Decision, dict]) -> None:
    comparison, decision, _ = case
    provenance = {
        "suite": "qa-smoke",
        "api_key": "sk-123",
        "hfToken": "hf_abc",
        "champion": {"endpoint": "http://a:8000", "tokenizer_digest": "sha256:tok", "auth": {"password": "hunter2"}},
        "credentials": {"secrets": {"x": "s3cr3t"}},
        "notes": ["plain", {"access_token": "tk-9"}],
    }
    md = _md(comparison, decision, provenance=provenance)
    for secret in ("sk-123", "hf_abc", "hunter2", "s3cr3t", "tk-9"):
        assert secret not in md
    assert "| api_key | `***` |" in md and "| champion.auth.password | `***` |" in md
    assert "| champion.endpoint | `http://a:8000` |" in md and "| notes.0 | `plain` |" in md
    # A tokenizer digest is provenance, not a secret: it must stay readable.
    assert "| champion.tokenizer_digest | `sha256:tok` |" in md
    assert md.index("## Provenance") > md.index("## Latency")


def test_sequential_section(case: tuple[Comparison, Decision, dict]) -> None:
    comparison, decision, _ = case
    looks = [Look(n=50, verdict=Verdict.INCONCLUSIVE), Look(n=100, verdict=Verdict.INCONCLUSIVE)]
    seq = SequentialInfo(
        batch=50, cap=1000, n_used=150, looks=[*looks, Look(n=150, verdict=Verdict.PASS)], fixed_n_plan=600
    )
    md = _md(comparison, decision, sequential=seq.model_copy(update={"plan_basis": "baseline 0.80, margin 0.03"}))
    section = md[md.index("## Sequential") : md.index("## Provenance")]
    assert "samples used: 150 of cap 1000" in section
    assert "fixed-n plan: 600 pairs; used 0.25 of it (25%)" in section
    assert "plan basis: baseline 0.80, margin 0.03" in section
    assert "looks: 50 → INCONCLUSIVE, 100 → INCONCLUSIVE, 150 → PASS" in section
    no_plan = _md(comparison, decision, sequential=seq.model_copy(update={"fixed_n_plan": None}))
    assert "fixed-n plan: none" in no_plan


def _png_width(path: Path) -> int:
    head = path.read_bytes()[:24]
    assert head[:4] == b"\x89PNG"
    return struct.unpack(">I", head[16:20])[0]


def test_write_report_files(case: tuple[Comparison, Decision, dict], tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    comparison, decision, latency = case
    figures = plt.get_fignums()
    paths = write_report(
        tmp_path / "out",
        title="t",
        decision=decision,
        comparison=comparison,
        latency=latency,
        provenance={"token": "abc-secret"},
    )
    assert plt.get_fignums() == figures
    assert set(paths) == {"report.md", "latency.png"}
    md = paths["report.md"].read_text(encoding="utf-8")
    assert "![latency distributions](latency.png)" in md and "abc-secret" not in md
    full = _png_width(paths["latency.png"])
    # An SLI with no finite value on one side is skipped: one panel fewer, a narrower image.
    partial = dict(latency, tpot_ms=(latency["tpot_ms"][0], np.full(N, np.nan)))
    assert _png_width(plot_latency(partial, tmp_path / "partial.png", "old", "new")) < full


def test_no_latency_data_still_writes_png(tmp_path: Path) -> None:
    nan = np.full(5, np.nan)
    path = plot_latency({"ttft_ms": (nan, np.ones(5))}, tmp_path / "none.png", "old", "new")
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert _png_width(plot_latency({}, tmp_path / "empty.png", "old", "new")) > 0
