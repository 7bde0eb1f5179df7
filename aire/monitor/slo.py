"""Service level objectives on production logs, and multi-window, multi-burn-rate alerts.

Why burn rates and not "error rate above X": an SLO of 99% grants an error budget of 1% of events over
the SLO period (30 days). The burn rate is how fast that budget is being spent: 1 spends it exactly in
30 days, 14.4 spends 2% of it in one hour. Alerting on burn rate pages for what threatens the objective,
in proportion to the threat, instead of for every blip (Google SRE workbook, "Alerting on SLOs").

Why two windows per alert: the long window (e.g. 1h) says enough budget was burnt to matter; the short
window (e.g. 5m, 1/12 of it) says it is *still* burning. Requiring both keeps the long window's precision
while letting the alert stop soon after the problem does, instead of firing for the rest of the hour.

Why ``min_events``: with a handful of requests one error is a huge fraction; the alerts fail quiet on
too little data, but every alert reports its event counts and a note, so silence is never mistaken for
health.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

Severity = Literal["page", "ticket"]
LatencySLI = Literal["ttft_ms", "tpot_ms", "e2e_ms"]
_SEVERITY_RANK = {"page": 2, "ticket": 1}


class SLO(BaseModel):
    """What fraction of events must be good. Latency SLOs are event-based too: "p95 <= 500 ms" is
    ``objective=0.95, threshold_ms=500`` (95% of requests at or under 500 ms), which, unlike a p95
    gauge, has an error budget and so a burn rate."""

    name: str
    kind: Literal["error_rate", "latency", "accuracy"]
    objective: float = Field(gt=0.0, lt=1.0)  # 1.0 would leave no budget: every burn rate infinite
    sli: LatencySLI | None = None
    threshold_ms: float | None = Field(None, gt=0.0)

    @model_validator(mode="after")
    def _latency_needs(self) -> SLO:
        if self.kind == "latency" and (self.sli is None or self.threshold_ms is None):
            raise ValueError("a latency SLO needs 'sli' and 'threshold_ms'")
        return self

    @property
    def budget(self) -> float:
        """The fraction of events allowed to be bad."""
        return 1.0 - self.objective


class BurnWindow(BaseModel):
    long: timedelta
    short: timedelta
    burn_rate: float = Field(gt=0.0)
    severity: Severity


# The workbook's recommended table for a 30-day budget: (budget spent when it fires) 2%, 5%, 10%, 10%.
DEFAULT_WINDOWS: list[BurnWindow] = [
    BurnWindow(long=timedelta(hours=1), short=timedelta(minutes=5), burn_rate=14.4, severity="page"),
    BurnWindow(long=timedelta(hours=6), short=timedelta(minutes=30), burn_rate=6.0, severity="page"),
    BurnWindow(long=timedelta(days=1), short=timedelta(hours=2), burn_rate=3.0, severity="ticket"),
    BurnWindow(long=timedelta(days=3), short=timedelta(hours=6), burn_rate=1.0, severity="ticket"),
]

DEFAULT_SLOS: list[SLO] = [
    SLO(name="availability", kind="error_rate", objective=0.99),
    SLO(name="ttft-p95", kind="latency", objective=0.95, sli="ttft_ms", threshold_ms=500.0),
    SLO(name="tpot-p95", kind="latency", objective=0.95, sli="tpot_ms", threshold_ms=100.0),
]


class BurnAlert(BaseModel):
    """One SLO against one window pair. ``burn_*`` is 0.0 for a window without events; read
    ``events_*`` (and ``note``) before trusting a quiet alert."""

    slo: str
    severity: Severity
    long_window: str  # Prometheus-style duration ("1h", "5m", "3d"): also the metrics' window label
    short_window: str
    burn_long: float
    burn_short: float
    threshold: float
    firing: bool
    events_long: int
    events_short: int
    bad_long: int = 0
    bad_short: int = 0
    note: str = ""


class SLOReport(BaseModel):
    now: datetime
    slos: list[SLO]
    alerts: list[BurnAlert]
    firing: list[BurnAlert]
    severity: Severity | None  # the worst firing severity; None when nothing fires

    def burn_by_window(self) -> dict[tuple[str, str], float]:
        """(slo, window) -> burn rate over that window, each window once: what
        ``MonitorMetrics.record(burn=...)`` takes, so Prometheus can pair long and short windows itself.
        A window shared by two pairs (6h is the page's long and a ticket's short) has one burn rate."""
        out: dict[tuple[str, str], float] = {}
        for a in self.alerts:
            out[(a.slo, a.long_window)] = a.burn_long
            out[(a.slo, a.short_window)] = a.burn_short
        return out

    def markdown(self) -> str:
        head = "| SLO | severity | windows | burn (long) | burn (short) | threshold | events (long/short) | status |"
        lines = [head, "|---|---|---|---:|---:|---:|---:|---|"]
        for a in self.alerts:
            status = "**FIRING**" if a.firing else (a.note or "ok")
            lines.append(
                f"| {a.slo} | {a.severity} | {a.long_window}/{a.short_window} | {a.burn_long:.2f} | "
                f"{a.burn_short:.2f} | {a.threshold:g} | {a.events_long}/{a.events_short} | {status} |"
            )
        if self.firing:
            summary = f"Firing ({self.severity}): " + ", ".join(
                f"{a.slo} {a.long_window}/{a.short_window}" for a in self.firing
            )
        else:
            summary = "No SLO burn alert is firing."
        return "\n".join([summary, "", *lines])


def duration_label(td: timedelta) -> str:
    """A timedelta as a Prometheus duration, in its largest whole unit (1d, 6h, 30m, 90s)."""
    seconds = int(td.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def events(frame: Any, slo: SLO) -> Any:
    """The SLO's events of a log frame, as a DataFrame ``[ts (UTC datetime), good (bool)]`` sorted by ts.

    error_rate: every request; good when ``status == "ok"``.
    latency: errors are bad events (a request that failed fast must not improve the latency SLI); ok
      requests are good when ``sli <= threshold_ms``, and not events when the SLI is missing (e.g. no
      ``tpot_ms`` for a one-token answer: nothing to judge).
    accuracy: rows with a ``score`` (1 good, anything less bad: partial credit is not success); rows
      without one, or frames without the column, are not events.
    Rows whose ``ts`` cannot be parsed cannot be placed in a window and are dropped.
    """
    import pandas as pd

    empty = pd.DataFrame({"ts": pd.Series([], dtype="datetime64[ns, UTC]"), "good": pd.Series([], dtype=bool)})
    if len(frame) == 0 or "ts" not in frame.columns:
        return empty
    ts = pd.to_datetime(frame["ts"], utc=True, errors="coerce", format="ISO8601")
    ok = frame["status"].eq("ok") if "status" in frame.columns else pd.Series(False, index=frame.index)
    if slo.kind == "error_rate":
        keep = pd.Series(True, index=frame.index)
        good = ok
    elif slo.kind == "latency":
        if slo.sli not in frame.columns:
            return empty
        value = pd.to_numeric(frame[slo.sli], errors="coerce")
        keep = ~ok | value.notna()
        good = ok & (value <= slo.threshold_ms)
    else:
        if "score" not in frame.columns:
            return empty
        score = pd.to_numeric(frame["score"], errors="coerce")
        keep = score.notna()
        good = score >= 1.0
    keep = keep & ts.notna()
    out = pd.DataFrame({"ts": ts[keep], "good": good[keep].astype(bool)})
    return out.sort_values("ts", kind="stable").reset_index(drop=True)


def _window(ev: Any, now: Any, span: timedelta) -> tuple[int, int]:
    """(events, bad events) with ``now - span < ts <= now``."""
    import pandas as pd

    mask = (ev["ts"] > now - pd.Timedelta(span)) & (ev["ts"] <= now)
    n = int(mask.sum())
    return n, int((~ev["good"][mask]).sum())


def _utc(now: datetime) -> Any:
    import pandas as pd

    if now.tzinfo is None:  # log timestamps carry offsets; guessing the clock of ``now`` would shift windows
        raise ValueError("'now' must be timezone-aware")
    return pd.Timestamp(now).tz_convert("UTC")


def burn_rates(
    events: Any,
    slo: SLO,
    now: datetime,
    windows: list[BurnWindow] = DEFAULT_WINDOWS,
    min_events: int = 10,
) -> list[BurnAlert]:
    """One alert per window pair: burn = bad fraction / (1 - objective) over each window; firing when
    both windows burn above the pair's rate and each holds at least ``min_events`` events."""
    ts_now = _utc(now)
    out = []
    for w in windows:
        n_long, bad_long = _window(events, ts_now, w.long)
        n_short, bad_short = _window(events, ts_now, w.short)
        burn_long = (bad_long / n_long) / slo.budget if n_long else 0.0
        burn_short = (bad_short / n_short) / slo.budget if n_short else 0.0
        enough = n_long >= min_events and n_short >= min_events
        note = ""
        if not enough:
            thin = [f"{duration_label(span)} has {n}" for span, n in ((w.long, n_long), (w.short, n_short))]
            note = f"too few events ({', '.join(thin)}; need {min_events} each)"
        out.append(
            BurnAlert(
                slo=slo.name,
                severity=w.severity,
                long_window=duration_label(w.long),
                short_window=duration_label(w.short),
                burn_long=burn_long,
                burn_short=burn_short,
                threshold=w.burn_rate,
                firing=enough and burn_long > w.burn_rate and burn_short > w.burn_rate,
                events_long=n_long,
                events_short=n_short,
                bad_long=bad_long,
                bad_short=bad_short,
                note=note,
            )
        )
    return out


def evaluate_slos(
    frame: Any,
    slos: list[SLO],
    now: datetime,
    windows: list[BurnWindow] = DEFAULT_WINDOWS,
    min_events: int = 10,
) -> SLOReport:
    """Every SLO against every window pair of a log frame (which should reach back the longest window)."""
    alerts = [a for slo in slos for a in burn_rates(events(frame, slo), slo, now, windows, min_events)]
    firing = [a for a in alerts if a.firing]
    worst = max((a.severity for a in firing), key=_SEVERITY_RANK.__getitem__, default=None)
    return SLOReport(now=now, slos=slos, alerts=alerts, firing=firing, severity=worst)
