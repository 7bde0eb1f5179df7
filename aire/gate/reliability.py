"""Reliability diagrams of confidence metrics (``calibration:`` in suite.yaml): a markdown section and
a PNG, for the offline run's report and the gate's.

A curve is one run's (or one arm's) ``Summary.reliability[<confidence>]``: accuracy against mean
confidence per bin. On the diagonal a model is as right as it is sure; below it, overconfident.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from aire.core.formatting import fmt, fmt_ci
from aire.core.types import ReliabilityBin, Summary

PNG = "reliability.png"


def curves_of(summaries: Mapping[str, Summary]) -> dict[str, list[ReliabilityBin]]:
    """``"<label>: <confidence>"`` -> bins, for each labelled summary (a run, or the arms of a gate);
    the label is left out when there is only one summary."""
    one = len(summaries) == 1
    return {
        name if one else f"{label}: {name}": bins
        for label, summary in summaries.items()
        for name, bins in summary.reliability.items()
    }


def markdown(summaries: Mapping[str, Summary]) -> list[str]:
    """The report's "Calibration" section: ECE and selective accuracy with intervals, and each bin."""
    curves = curves_of(summaries)
    if not curves:
        return []
    lines = ["## Calibration", ""]
    lines += ["| | metric | value | 95% CI | n |", "|---|---|---:|---|---:|"]
    for label, summary in summaries.items():
        for name in summary.reliability:
            for key, est in summary.metrics.items():
                if key.startswith(f"{name}/ece") or key.startswith(f"{name}/accuracy_at_coverage_"):
                    lines.append(f"| {label} | `{key}` | {fmt(est.value)} | {fmt_ci(est)} | {est.n} |")
    lines += ["", f"![reliability]({PNG})", ""]
    lines += ["| curve | confidence bin | n | mean confidence | accuracy |", "|---|---|---:|---:|---:|"]
    for curve, bins in curves.items():
        lines += [
            f"| {curve} | [{b.low:.1f}, {b.high:.1f}) | {b.n} | {fmt(b.confidence)} | {fmt(b.accuracy)} |" for b in bins
        ]
    lines.append("")
    return lines


def plot(curves: Mapping[str, Sequence[ReliabilityBin]], path: Path) -> Path:
    """Accuracy against mean confidence per bin, one line per curve, marker area by bin size."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.8, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="calibrated")
    for curve, bins in curves.items():
        total = sum(b.n for b in bins) or 1
        xs, ys = [b.confidence for b in bins], [b.accuracy for b in bins]
        (line,) = ax.plot(xs, ys, marker="", label=curve)
        ax.scatter(xs, ys, s=[20 + 400 * b.n / total for b in bins], color=line.get_color(), alpha=0.6)
    ax.set(xlabel="mean confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1.02), title="reliability")
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path
