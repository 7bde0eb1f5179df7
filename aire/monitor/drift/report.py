"""A drift report: every feature's test between the reference and the current window, for people and JSON."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, computed_field

from aire.monitor.drift.features import Kind

Test = Literal["ks", "chi2", "mmd"]
TESTS: dict[Kind, Test] = {"numeric": "ks", "categorical": "chi2", "embedding": "mmd"}


class FeatureDrift(BaseModel):
    """One feature's test between the reference and the current window."""

    feature: str
    kind: Kind
    test: Test
    statistic: float | None = None  # KS D, chi-square, or MMD²
    p_value: float | None = None
    p_adjusted: float | None = None  # Holm, over every tested feature of the report
    psi: float | None = None
    effect: float | None = None  # Wasserstein distance (numeric) or MMD² (embedding)
    n_reference: int
    n_current: int
    drifted: bool = False
    skipped: str | None = None  # why it was not tested; a skipped feature is neither drift nor no-drift
    detail: str = ""  # what changed, for people: means and medians, the category whose share moved most


class DriftReport(BaseModel):
    """Every feature's test, corrected for multiplicity together."""

    features: list[FeatureDrift]
    alpha: float
    method: Literal["holm"] = "holm"
    n_reference: int  # rows in the window
    n_current: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def drifted(self) -> bool:
        return any(f.drifted for f in self.features)

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    @property
    def skipped_features(self) -> list[str]:
        return [f.feature for f in self.features if f.skipped is not None]

    def summary(self) -> str:
        tested = len(self.features) - len(self.skipped_features)
        level = f"at alpha={self.alpha:g} ({self.method.capitalize()})"
        drifted = self.drifted_features
        text = (
            f"drift in {len(drifted)} of {tested} tested features {level}: {', '.join(drifted)}"
            if drifted
            else f"no drift in {tested} tested features {level}"
        )
        if self.skipped_features:
            text += f"; skipped: {', '.join(self.skipped_features)}"
        return text + f" ({self.n_reference} reference vs {self.n_current} current rows)"

    def markdown(self) -> str:
        lines = [
            "| feature | kind | test | n ref | n cur | statistic | p | p (Holm) | PSI | effect | drift | detail |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        for f in self.features:
            verdict = f"skipped: {f.skipped}" if f.skipped else ("**yes**" if f.drifted else "no")
            cells = [f.feature, f.kind, f.test, str(f.n_reference), str(f.n_current)]
            cells += [_fmt(v) for v in (f.statistic, f.p_value, f.p_adjusted, f.psi, f.effect)]
            cells += [verdict, f.detail.replace("|", "\\|")]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3g}"
