"""SLO burn-rate alerts on synthetic logs whose bad fractions, and so burn rates, are known in advance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from pydantic import ValidationError

from aire.monitor.slo import DEFAULT_SLOS, DEFAULT_WINDOWS, SLO, burn_rates, evaluate_slos, events

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
STEP = timedelta(seconds=10)  # 30 requests per 5 minutes: the shortest window has enough events
AVAILABILITY = SLO(name="availability", kind="error_rate", objective=0.99)


def logs(error_at=lambda age, i: False, days: float = 3, step: timedelta = STEP, **cols) -> pd.DataFrame:
    """One request per ``step`` over the last ``days`` (the newest exactly at NOW), with ISO ``ts`` strings as
    read_logs gives them; ``error_at(age, index)`` says which requests failed."""
    n = int(timedelta(days=days) / step)
    ages = [i * step for i in range(n)]
    status = ["error" if error_at(age, i) else "ok" for i, age in enumerate(ages)]
    frame = pd.DataFrame(
        {
            "id": [f"req-{i}" for i in range(n)],
            "ts": [(NOW - age).isoformat() for age in ages],
            "endpoint": "champion",
            "model": "champion",
            "status": status,
            "error_type": [None if s == "ok" else "http" for s in status],
            "ttft_ms": 100.0,
            "tpot_ms": 10.0,
            "e2e_ms": 200.0,
        }
    )
    for name, value in cols.items():
        frame[name] = value
    return frame


def by_pair(alerts):
    return {f"{a.long_window}/{a.short_window}": a for a in alerts}


def test_burst_in_the_last_hour_pages() -> None:
    # Half of the last hour's requests fail: burn 0.5 / 0.01 = 50 in the 1h, 5m and 30m windows,
    # 50/6 in 6h, 50/24 in 1d, 50/72 in 3d.
    frame = logs(lambda age, i: age < timedelta(hours=1) and i % 2 == 0)
    report = evaluate_slos(frame, [AVAILABILITY], NOW)
    alerts = by_pair(report.alerts)
    assert alerts["1h/5m"].burn_long == pytest.approx(50.0)
    assert alerts["1h/5m"].burn_short == pytest.approx(50.0)
    assert alerts["6h/30m"].burn_long == pytest.approx(50.0 / 6)
    assert alerts["1d/2h"].burn_long == pytest.approx(50.0 / 24)
    assert alerts["3d/6h"].burn_long == pytest.approx(50.0 / 72)
    assert alerts["1h/5m"].events_long == 360 and alerts["1h/5m"].events_short == 30
    assert [(a.severity, a.long_window) for a in report.firing] == [("page", "1h"), ("page", "6h")]
    assert report.severity == "page"
    md = report.markdown()
    assert "**FIRING**" in md and "Firing (page)" in md


def test_steady_errors_within_budget_fire_nothing() -> None:
    # 0.5% errors against a 1% budget: burn 0.5 everywhere, well below every threshold.
    frame = logs(lambda age, i: i % 200 == 0)
    report = evaluate_slos(frame, [AVAILABILITY], NOW)
    alerts = by_pair(report.alerts)
    assert alerts["3d/6h"].burn_long == pytest.approx(0.5, abs=0.01)
    assert alerts["1d/2h"].burn_long == pytest.approx(0.5, abs=0.02)
    assert report.firing == [] and report.severity is None
    assert "No SLO burn alert is firing." in report.markdown()


def test_a_burst_that_has_ended_stops_paging() -> None:
    # Every request failed from 3h to 2h ago. The long windows still remember it; the short ones show it is
    # over, so the pairs do not fire: the point of the short window.
    frame = logs(lambda age, i: timedelta(hours=2) <= age < timedelta(hours=3))
    alerts = by_pair(burn_rates(events(frame, AVAILABILITY), AVAILABILITY, NOW))
    six = alerts["6h/30m"]
    assert six.burn_long == pytest.approx(100.0 / 6) and six.burn_long > six.threshold
    assert six.burn_short == 0.0 and not six.firing
    day = alerts["1d/2h"]
    assert day.burn_long == pytest.approx(100.0 / 24) and day.burn_long > day.threshold
    assert day.burn_short == 0.0 and not day.firing
    assert not alerts["1h/5m"].firing
    # 3 days at 1x: the 6h short window still holds the burst, so this ticket rightly stays open.
    assert alerts["3d/6h"].firing


def test_latency_events_count_errors_as_bad() -> None:
    slo = SLO(name="ttft-p95", kind="latency", objective=0.95, sli="ttft_ms", threshold_ms=500.0)
    frame = pd.DataFrame(
        {
            "ts": [(NOW - timedelta(seconds=i)).isoformat() for i in range(5)],
            "status": ["ok", "ok", "error", "ok", "ok"],
            "ttft_ms": [100.0, 900.0, 1.0, None, 500.0],
        }
    )
    ev = events(frame, slo)
    # The error is bad however fast it failed; the ok row without a TTFT is not an event; 500 is within.
    assert len(ev) == 4
    assert ev.sort_values("ts", ascending=False)["good"].tolist() == [True, False, False, True]


def test_latency_burn_rate() -> None:
    # One request in ten is slow (and 0.5% fail) against a 5% budget: burn (0.1 + ~0.005) / 0.05 ~ 2.1,
    # above the 3d/6h ticket's 1 and below everything else.
    frame = logs(lambda age, i: i % 200 == 1)
    frame.loc[frame.index % 10 == 0, "ttft_ms"] = 800.0
    report = evaluate_slos(frame, [DEFAULT_SLOS[1]], NOW)
    alerts = by_pair(report.alerts)
    assert alerts["3d/6h"].burn_long == pytest.approx(2.1, abs=0.01)
    assert [a.long_window for a in report.firing] == ["3d"]
    assert report.severity == "ticket"


def test_too_few_events_do_not_fire_but_say_so() -> None:
    frame = logs(lambda age, i: True, days=1, step=timedelta(hours=1))  # 24 requests, all failed
    alerts = by_pair(burn_rates(events(frame, AVAILABILITY), AVAILABILITY, NOW))
    page = alerts["1h/5m"]
    assert page.events_long == 1 and page.events_short == 1
    assert page.burn_long == pytest.approx(100.0) and not page.firing
    assert page.note.startswith("too few events") and "1h has 1" in page.note
    assert not any(a.firing for a in alerts.values())
    report = evaluate_slos(frame, [AVAILABILITY], NOW)
    assert report.firing == [] and "too few events" in report.markdown()


def test_no_events_at_all_is_reported_not_an_error() -> None:
    report = evaluate_slos(logs().iloc[:0], DEFAULT_SLOS, NOW)
    assert len(report.alerts) == len(DEFAULT_SLOS) * len(DEFAULT_WINDOWS)
    assert all(a.events_long == 0 and a.burn_long == 0.0 and not a.firing and a.note for a in report.alerts)


def test_accuracy_events_need_a_score() -> None:
    slo = SLO(name="canary", kind="accuracy", objective=0.9)
    frame = logs(days=1 / 24)
    assert len(events(frame, slo)) == 0  # no score column: no events
    frame["score"] = [1.0 if i % 4 else 0.0 for i in range(len(frame))]
    frame.loc[frame.index[:10], "score"] = None
    ev = events(frame, slo)
    assert len(ev) == len(frame) - 10
    burn = by_pair(burn_rates(ev, slo, NOW))["1h/5m"].burn_long
    assert burn == pytest.approx((1 - ev["good"].mean()) / 0.1)


def test_windows_end_at_now() -> None:
    future = logs(lambda age, i: True, days=1 / 24)
    future["ts"] = [(NOW + timedelta(minutes=1)).isoformat()] * len(future)  # after ``now``: not yet happened
    alerts = burn_rates(events(future, AVAILABILITY), AVAILABILITY, NOW)
    assert all(a.events_long == 0 for a in alerts)


def test_burn_by_window_lists_each_window_once() -> None:
    frame = logs(lambda age, i: i % 50 == 0)
    burn = evaluate_slos(frame, [AVAILABILITY], NOW).burn_by_window()
    assert sorted(w for _, w in burn) == sorted(["5m", "30m", "1h", "2h", "6h", "1d", "3d"])
    assert burn[("availability", "3d")] == pytest.approx(2.0, abs=0.01)


def test_slo_validation() -> None:
    with pytest.raises(ValidationError, match="latency SLO needs"):
        SLO(name="x", kind="latency", objective=0.95)
    with pytest.raises(ValidationError):
        SLO(name="x", kind="error_rate", objective=1.0)
    with pytest.raises(ValueError, match="timezone-aware"):
        burn_rates(events(logs(days=1 / 24), AVAILABILITY), AVAILABILITY, NOW.replace(tzinfo=None))
