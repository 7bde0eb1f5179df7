"""The promotion gate's human-readable report: report.md (verdict, rules, methods, latency, calibration,
provenance), latency.png (champion vs challenger latency distributions) and, when the suite calibrates
a confidence metric, reliability.png; written next to decision.json.

The report explains a decision already taken by ``aire.gate.decide``; it computes nothing the gate reads.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from aire.core.formatting import fmt
from aire.core.types import Summary
from aire.gate import reliability
from aire.gate.evidence import Comparison
from aire.gate.policy import (
    CeilingRule,
    Decision,
    DisparityRule,
    FloorRule,
    Interval,
    LatencyRelativeRule,
    LatencySLORule,
    RateCeilingRule,
    Rule,
    level_text,
)
from aire.stats.sequential import SequentialInfo

_SECRET_WORDS = ("key", "token", "secret", "password", "passwd")


def _num(value: float | None) -> str:
    # fmt prints "inf"; an unbounded side means "no interval", which reads better as a dash.
    return "—" if value is None or not math.isfinite(value) else fmt(value)


def _iv(iv: Interval | None) -> str:
    return "—" if iv is None else f"{_num(iv.value)} [{_num(iv.ci_low)}, {_num(iv.ci_high)}]"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _is_secret(key: str) -> bool:
    # Word-wise, not substring: "tokenizer_digest" is provenance, "hf_token" and "apiKey" are secrets.
    words = re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key).lower())
    return any(w.endswith(s) or w == s + "s" for w in words for s in _SECRET_WORDS)


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict | list | tuple) and not (prefix and _is_secret(prefix)):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        return [row for k, v in items for row in _flatten(v, f"{prefix}.{k}" if prefix else str(k))]
    return [(prefix, "***" if _is_secret(prefix) else value)]


def _ratio(iv: Interval | None) -> str:
    return "—" if iv is None else f"×{_num(iv.value)} [{_num(iv.ci_low)}, {_num(iv.ci_high)}]"


def _bound(rule: Rule, champion: Interval | None) -> str:
    sign = 1 if rule.higher_is_better else -1
    match rule:
        case FloorRule():
            return f"≥ {fmt(rule.threshold)}"
        case CeilingRule() | LatencySLORule():
            return f"≤ {fmt(rule.threshold)}"
        case RateCeilingRule():
            return f"rate < {fmt(rule.max_rate)} (exact upper limit)"
        case DisparityRule():
            return f"{'widening' if rule.paired else 'gap'} < {fmt(rule.max_gap)} (slices n >= {rule.min_n})"
        case LatencyRelativeRule():
            extra = f" (≤ +{fmt(champion.value * rule.max_increase)})" if champion else ""
            # Judged on the ratio challenger / champion of the percentile, from the same paired resamples.
            return f"ratio ≤ ×{fmt(1 + rule.max_increase)}: Δ +{rule.max_increase * 100:g}% of champion{extra}"
    # Margins are in "better" units; shown in raw delta units so they compare with the delta column.
    bound = sign * rule.bound
    return f"Δ {'>' if sign > 0 else '<'} {'+' if bound >= 0 else '-'}{fmt(abs(bound))}"


def render_markdown(
    *,
    title: str,
    decision: Decision,
    comparison: Comparison,
    latency: dict[str, tuple[np.ndarray, np.ndarray]],
    provenance: dict[str, Any],
    sequential: SequentialInfo | None = None,
    champion_name: str = "champion",
    challenger_name: str = "challenger",
    png_name: str | None = "latency.png",
    summaries: Mapping[str, Summary] | None = None,
) -> str:
    """The report's markdown; ``png_name`` None leaves out the latency figure; ``summaries`` (each
    arm's, by endpoint name) add the calibration section when the suite calibrates a confidence."""
    v = decision.verdict
    out = [f"# {title}", "", f"**Verdict: {v.value}** (exit {v.exit_code})", ""]
    out += [f"- {_cell(r)}" for r in decision.reasons]
    out += [
        "",
        f"Policy `{decision.policy_name}`"
        + (f" (sha256 `{decision.policy_sha256}`)" if decision.policy_sha256 else ""),
        "",
        f"**Levels:** a PASS reads {level_text(decision.alpha)} intervals, a FAIL "
        f"{level_text(decision.fail_alpha)} intervals (alpha {decision.alpha:g}, fail_alpha {decision.fail_alpha:.3g})",
    ]
    if decision.multiplicity:
        out += ["", f"**Multiplicity:** {_cell(decision.multiplicity)}"]

    out += [
        "",
        "## Rules",
        "",
        f"| metric | rule | {_cell(champion_name)} [CI] | {_cell(challenger_name)} [CI] |"
        " Δ challenger − champion [CI] | bound | critical | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for res in decision.rules:
        mc = comparison.metrics.get(res.rule.metric) or comparison.gaps.get(res.rule.metric)
        ev = mc.evidence if mc else None
        cells = [_iv(ev.champion), _iv(ev.challenger), _iv(ev.delta)] if ev else ["—"] * 3
        if ev and isinstance(res.rule, LatencyRelativeRule):  # the rule reads the ratio: show it beside the Δ
            cells[2] += f"; ratio {_ratio(ev.ratio)}"
        crit = "yes" if res.rule.critical else "no"
        bound = _bound(res.rule, ev.champion if ev else None)
        out.append(
            f"| `{res.rule.metric}` | {res.rule.kind} | {' | '.join(cells)} | {bound} | {crit} | {res.verdict} |"
        )

    c = comparison.counts
    out += ["", f"**Counts:** {c.n_pairs} pairs, {c.n_errors} request errors, {c.n_unpaired} unpaired"]
    ruled = {r.rule.metric for r in decision.rules}
    caveats = [(k, m.evidence.caveat) for k, m in comparison.metrics.items() if k in ruled and m.evidence.caveat]
    if caveats:
        out += ["", "**Caveats** (a rule on such a metric cannot PASS; it is INCONCLUSIVE instead):", ""]
        out += [f"- `{k}`: {_cell(text)}" for k, text in caveats]
    unpaired = [m for m in comparison.metrics.values() if m.kind == "quality" and not m.paired]
    if unpaired:
        names = ", ".join(f"`{m.metric}`" for m in unpaired)
        out += [
            "",
            f"> **Warning: unpaired fallback (Welch / Mann-Whitney) used for {names}.** Too few items were "
            "answered by both arms to pair them, so the interval ignores the correlation a shared input creates: "
            "it is wider and less able to detect a difference than a paired one.",
        ]

    out += [
        "",
        "## Methods",
        "",
        "| metric | method | role | estimate | CI | p | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in comparison.metrics.values():
        if m.kind == "latency":
            continue
        # Agreement has no champion side: its chosen interval is the challenger's rate itself.
        est = m.evidence.delta if m.kind == "quality" else m.evidence.challenger
        ci = f"[{_num(est.ci_low)}, {_num(est.ci_high)}]" if est else "—"
        p = "—" if m.p_value is None else f"{m.p_value:.3g}"
        out.append(
            f"| `{m.metric}` | {m.method} | chosen | {_num(est.value if est else None)} | {ci} | {p} "
            f"| {_cell(m.note)} |"
        )
        for d in m.supplementary:
            p = "—" if d.p_value is None else f"{d.p_value:.3g}"
            out.append(
                f"| `{m.metric}` | {d.method} | check | {_num(d.delta)} | [{_num(d.ci_low)}, {_num(d.ci_high)}] "
                f"| {p} | {_cell(d.note)} |"
            )

    out += [
        "",
        "## Latency",
        "",
        f"| metric | {_cell(champion_name)} (ms) | {_cell(challenger_name)} (ms) | Δ (ms) [CI] | ratio [CI] |",
        "|---|---|---|---|---|",
    ]
    for m in comparison.metrics.values():
        if m.kind == "latency":
            ev = m.evidence
            champ, chall = (_num(i.value) if i else "—" for i in (ev.champion, ev.challenger))
            out.append(f"| `{m.metric}` | {champ} | {chall} | {_iv(ev.delta)} | {_ratio(ev.ratio)} |")
    finite = [f"{sli} {np.isfinite(a).sum()}/{np.isfinite(b).sum()}" for sli, (a, b) in latency.items()]
    if finite:
        out += ["", f"Finite values ({champion_name}/{challenger_name}): " + ", ".join(finite)]
    if png_name:
        out += ["", f"![latency distributions]({png_name})"]

    if sequential is not None:
        s = sequential
        out += ["", "## Sequential", "", f"- samples used: {s.n_used} of cap {s.cap} (looks every {s.batch})"]
        ratio = s.fraction_of_plan
        if ratio is None:
            out.append("- fixed-n plan: none (no non-inferiority rule)")
        else:
            out.append(f"- fixed-n plan: {s.fixed_n_plan} pairs; used {ratio:.2f} of it ({ratio:.0%})")
        if s.plan_basis:
            out.append(f"- plan basis: {_cell(s.plan_basis)}")
        out.append("- looks: " + (", ".join(f"{lk.n} → {lk.verdict}" for lk in s.looks) or "none"))

    calibration = reliability.markdown(summaries or {})
    if calibration:
        out += ["", *calibration]
    out += ["", "## Provenance", "", "| key | value |", "|---|---|"]
    out += [f"| {_cell(k)} | `{_cell(val)}` |" for k, val in _flatten(provenance)]
    return "\n".join(out) + "\n"


def plot_latency(
    latency: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, champion_name: str, challenger_name: str
) -> Path:
    """Overlaid empirical CDFs per SLI, each arm's p95 dashed; a placeholder image when there is no data."""
    # The Agg canvas on a bare Figure: headless, and nothing registered with pyplot, so no figure can leak
    # and the caller's backend is left alone.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    arms: list[tuple[str, list[np.ndarray]]] = []
    for sli, pair in latency.items():
        values = [np.asarray(x, dtype=float) for x in pair]
        values = [x[np.isfinite(x)] for x in values]
        if all(len(x) for x in values):
            arms.append((sli, values))
    fig = Figure(figsize=(4.5 * max(1, len(arms)), 3.4), dpi=100)
    FigureCanvasAgg(fig)
    if not arms:
        fig.set_size_inches(4, 1.5)
        fig.text(0.5, 0.5, "no latency data", ha="center", va="center")
    for ax, (sli, values) in zip(np.atleast_1d(fig.subplots(1, len(arms))) if arms else [], arms, strict=True):
        for x, name, color in zip(values, (champion_name, challenger_name), ("tab:blue", "tab:orange"), strict=True):
            x = np.sort(x)
            ax.step(x, np.arange(1, len(x) + 1) / len(x), where="post", color=color, label=name)
            ax.axvline(float(np.percentile(x, 95)), color=color, linestyle="--", linewidth=1)
        ax.set(title=f"{sli} (dashed: p95)", xlabel="ms", ylabel="fraction ≤ x", ylim=(0, 1.02))
        ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def write_report(
    out_dir: Path,
    *,
    title: str,
    decision: Decision,
    comparison: Comparison,
    latency: dict[str, tuple[np.ndarray, np.ndarray]],
    provenance: dict[str, Any],
    sequential: SequentialInfo | None = None,
    champion_name: str = "champion",
    challenger_name: str = "challenger",
    summaries: Mapping[str, Summary] | None = None,
) -> dict[str, Path]:
    """Writes out_dir/report.md, out_dir/latency.png and, when a summary has reliability curves,
    out_dir/reliability.png; returns them by file name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    png = plot_latency(latency, out_dir / "latency.png", champion_name, challenger_name)
    files = {"latency.png": png}
    curves = reliability.curves_of(summaries or {})
    (out_dir / reliability.PNG).unlink(missing_ok=True)  # an earlier gate's in this folder
    if curves:
        files[reliability.PNG] = reliability.plot(curves, out_dir / reliability.PNG)
    md = out_dir / "report.md"
    text = render_markdown(
        title=title,
        decision=decision,
        comparison=comparison,
        latency=latency,
        provenance=provenance,
        sequential=sequential,
        champion_name=champion_name,
        challenger_name=challenger_name,
        png_name=png.name,
        summaries=summaries,
    )
    md.write_text(text, encoding="utf-8")
    return {"report.md": md, **files}
