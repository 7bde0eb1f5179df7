"""Numbers as every report prints them: three decimals, a dash for missing, one decimal from 100 up."""

from __future__ import annotations

import math

from aire.core.types import Estimate


def fmt(value: float | None, digits: int = 3) -> str:
    if value is None or math.isnan(value):
        return "—"
    if abs(value) >= 100:
        return f"{value:.1f}"
    return f"{value:.{digits}f}"


def fmt_ci(est: Estimate) -> str:
    if est.ci_low is None or est.ci_high is None:
        return "—"
    return f"[{fmt(est.ci_low)}, {fmt(est.ci_high)}]"
