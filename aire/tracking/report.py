"""Human-readable views of a Summary: the rows the CLI prints and the markdown logged to MLflow."""

from __future__ import annotations

from aire.core.formatting import fmt, fmt_ci
from aire.core.types import Summary
from aire.gate import reliability


def metric_rows(summary: Summary, *, slices: bool = True) -> list[tuple[str, str, str, str, str]]:
    """(metric, value, 95% CI, n, not scored) for quality metrics, then latency SLIs."""
    rows = []
    for group in (summary.metrics, summary.latency):
        for key, est in group.items():
            if not slices and key.count("/") > (2 if key.startswith("latency/") else 1):
                continue
            rows.append((key, fmt(est.value), fmt_ci(est), str(est.n), str(est.n_errors)))
    rows += [(key, fmt(value), "", str(summary.n_samples), "") for key, value in summary.cost.items()]
    return rows


def markdown(title: str, params: dict[str, object], summary: Summary, floors: list[dict[str, object]]) -> str:
    lines = [f"# {title}", ""]
    lines += ["| parameter | value |", "|---|---|"]
    lines += [f"| {k} | `{v}` |" for k, v in params.items() if not isinstance(v, dict | list)]
    lines += ["", f"Samples: {summary.n_samples}, request errors: {summary.n_errors}", ""]
    if floors:
        lines += ["## Floors", "", "| floor | value | result |", "|---|---|---|"]
        for f in floors:
            value = f.get("value")
            verdict = "pass" if f.get("passed") else "**FAIL**"
            lines.append(f"| `{f['floor']}` | {fmt(value if isinstance(value, float) else None)} | {verdict} |")
        lines.append("")
    lines += ["## Metrics", "", "| metric | value | 95% CI | n | not scored |", "|---|---:|---|---:|---:|"]
    lines += [f"| `{m}` | {v} | {ci} | {n} | {e} |" for m, v, ci, n, e in metric_rows(summary)]
    calibration = reliability.markdown({"run": summary})
    if calibration:
        lines += ["", *calibration]
    return "\n".join(lines) + "\n"
