"""The production logs of the current window checked: Great Expectations validation, then drift vs the
reference window (aire.monitor.drift), then SLO burn rates (aire.monitor.slo)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aire.monitor.results import TrafficResult


def now_utc() -> datetime:
    """The monitor's clock: the current window ends now."""
    return datetime.now(UTC)


def check_traffic(
    log_dir: Path | str,
    *,
    now: datetime,
    window: timedelta,
    reference: timedelta,
    endpoint: str | None = None,
    embeddings: bool = True,
    alpha: float = 0.05,
    store_url: str | None = None,
) -> TrafficResult | None:
    """Validate, drift-test and SLO-check the logs; None when there are none at all.

    ``log_dir``: a folder of JSONL logs, or ``"store"``: the gateway's traffic log in ``store_url``.
    """
    from aire.monitor.drift.detect import detect_drift
    from aire.monitor.slo import DEFAULT_SLOS, evaluate_slos
    from aire.monitor.validation import valid_rows, validate_logs

    read_logs = log_reader(log_dir, store_url)
    if read_logs is None:
        return None
    current = read_logs(since=now - window, until=now)
    ref = read_logs(since=now - window - reference, until=now - window)
    report = validate_logs(current)
    cur_ok = valid_rows(current, report)
    ref_ok = valid_rows(ref, validate_logs(ref))
    cur_ok, ref_ok = _for_endpoint(cur_ok, endpoint), _for_endpoint(ref_ok, endpoint)
    drift = detect_drift(ref_ok, cur_ok, alpha=alpha, embeddings=embeddings) if len(ref_ok) and len(cur_ok) else None
    # Burn rates look back up to three days.
    history = read_logs(since=now - timedelta(days=3), until=now)
    hist_ok = valid_rows(history, validate_logs(history))
    hist_ok = _for_endpoint(hist_ok, endpoint)
    slo = evaluate_slos(hist_ok, DEFAULT_SLOS, now) if len(hist_ok) else None
    ok = cur_ok[cur_ok["status"] == "ok"] if len(cur_ok) else cur_ok
    latency = {}
    for sli in ("ttft_ms", "tpot_ms", "e2e_ms") if len(ok) else ():
        values = ok[sli].dropna().astype(float)
        for q in (0.5, 0.95, 0.99):
            if len(values):
                latency[f"{sli}/p{round(q * 100)}"] = float(values.quantile(q))
    parts = ["## Traffic validation (Great Expectations)", "", report.markdown()]
    if drift is not None:
        parts += ["## Drift (reference vs current window)", "", drift.markdown()]
    if slo is not None:
        parts += ["## SLO burn rates", "", slo.markdown()]
    return TrafficResult(
        n_current=len(current.frame),
        n_reference=len(ref.frame),
        validation=report.model_dump(mode="json"),
        drift=None if drift is None else drift.model_dump(mode="json"),
        slo=None if slo is None else slo.model_dump(mode="json"),
        drifted=[] if drift is None else [f.feature for f in drift.features if f.drifted],
        slo_firing=[] if slo is None else [f"{a.slo}/{a.severity}" for a in slo.firing],
        markdown="\n".join(parts),
        bad_fraction=report.bad_fraction(),
        error_ratio=float((cur_ok["status"] == "error").mean()) if len(cur_ok) else None,
        latency_ms=latency,
    )


def log_reader(log_dir: Path | str, store_url: str | None) -> Callable[..., Any] | None:
    """``read(since=, until=) -> LogBatch`` over the source; None when it holds no logs."""
    from aire.data.logs import read_logs
    from aire.monitor.gateway_logs import SOURCE, read_gateway_logs

    if str(log_dir) == SOURCE:
        if store_url is None:
            raise ValueError("the gateway's traffic log needs the store's URL")
        return lambda since, until: read_gateway_logs(store_url, since, until)
    folder = Path(log_dir)
    files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
    return (lambda since, until: read_logs(files, since=since, until=until)) if files else None


def _for_endpoint(frame: Any, endpoint: str | None) -> Any:
    """The rows of one endpoint (an empty window may have no columns at all)."""
    if endpoint is None or len(frame) == 0 or "endpoint" not in frame:
        return frame
    return frame[frame["endpoint"] == endpoint]
