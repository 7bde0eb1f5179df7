"""Live quality (aire.monitor.live): production's answers in the gateway's traffic log, judged without
references by a (fake, arith-exact) judge, the current window against the reference window: a 30% drop
FAILs at the severe level and is a breach; an unchanged version is not; an uncalibrated judge is ERROR,
never evidence; other endpoints' rows, failed requests and mirrored copies are not read; the same rows
are sampled on every run, so a second run asks the judge nothing; a bad metric name exits 3."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aire.core.errors import InputError
from aire.core.settings import Settings
from aire.core.types import Verdict
from aire.monitor.live import live_quality
from aire.monitor.respond import breaches, suspicions
from aire.run.judge_checks import judge_checks
from aire.run.setup import load_suite_with_evaluators
from aire.store import Store
from aire.store.gateway_log import GatewayLog
from aire.testing.fake_openai import FakeOpenAI, arithmetic_answer
from aire.testing.fake_openai.answers import arith_verdict
from tests.conftest import REPO
from tests.unit.test_judges import judge_settings

POLICY = REPO / "gates" / "judged.yaml"  # judge_correct non-inferiority, margin 0.03; min_kappa 0.6
NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def live_suite(tmp_path: Path) -> str:
    folder = tmp_path / "datasets" / "live"
    folder.mkdir(parents=True)
    (folder / "samples.jsonl").write_text('{"id": "1", "question": "1+1", "answer": "2"}\n')
    (folder / "suite.yaml").write_text(
        "name: live\n"
        'prompt: {mode: completion, template: "Q: {question}=\\nA:"}\n'
        "reference_field: answer\n"
        "evaluators:\n"
        "  - name: exact_match\n"
        "  - name: judge_rubric\n"
        "    as: judge_correct\n"
        "    options: {judge: fakejudge, template: \"{question}{answer}\\nCorrect?\", labels: ['no', 'yes'],"
        " rationale: true}\n"
    )
    return str(folder)


def rows(start: datetime, n: int, wrong_every: int | None, *, prefix: str, endpoint: str = "prod") -> list[dict]:
    """n served requests from ``start`` one second apart; every ``wrong_every``-th answer is off by one."""
    out = []
    for i in range(n):
        a, b = i % 10, (i // 10) % 10
        truth = int(arithmetic_answer(f"Q: {a}+{b}=\nA:"))
        answer = truth + 1 if wrong_every and i % wrong_every == 0 else truth
        out.append(
            {
                "request_id": f"{prefix}-{i}",
                "kind": "served",
                "at": start + timedelta(seconds=i),
                "route": "aire-model",
                "version": "1",
                "endpoint": endpoint,
                "api": "completions",
                "status": 200,
                "prompt": f"Q: {a}+{b}=\nA:",
                "response": f" {answer}",
            }
        )
    return out


def calibrate(settings: Settings, suite: str, kappa: float) -> None:
    store = Store(settings.resolved_store_url)
    try:
        _, bound = load_suite_with_evaluators(settings, suite)
        check = judge_checks(settings, store, bound)["judge_correct"]
        record = {"judge_id": check.judge_id, "judge": check.judge, "evaluator": "judge_correct", "suite": "live"}
        store.put_calibration({**record, "n_scored": 40, "kappa": kappa, "accuracy": kappa})
    finally:
        store.close()


async def judged(settings: Settings, suite: str, **kw: object):
    args = {"log_dir": "store", "now": NOW, "window": HOUR, "reference": HOUR, "endpoint": "prod", "suite": suite}
    args |= {"metrics": ["judge_correct"], "policy_path": POLICY, **kw}
    return await live_quality(settings, **args)  # type: ignore[arg-type]


@pytest.fixture
def logged(tmp_path: Path):
    def write(settings: Settings, ref: list[dict], cur: list[dict]) -> None:
        store = Store(settings.resolved_store_url)
        try:
            GatewayLog(store).insert(ref + cur)
        finally:
            store.close()

    return write


async def test_a_drop_in_live_quality_is_a_breach_and_a_second_run_asks_nothing(tmp_path: Path, logged) -> None:
    suite = live_suite(tmp_path)
    async with FakeOpenAI(latency_s=0, answer=arith_verdict, models=["judge"]) as judge:
        settings = judge_settings(tmp_path, judge.base_url)
        ref = rows(NOW - 2 * HOUR, 150, None, prefix="ref")
        cur = rows(NOW - HOUR, 150, 3, prefix="cur")  # 50 of 150 wrong
        noise = rows(NOW - HOUR, 20, None, prefix="other", endpoint="canary")  # another endpoint's traffic
        failed = [{**r, "request_id": f"x{i}", "status": 503, "response": ""} for i, r in enumerate(cur[:20])]
        mirrored = [{**r, "kind": "mirrored", "response": " 99"} for r in cur[:20]]
        logged(settings, ref, cur + noise + failed + mirrored)
        calibrate(settings, suite, kappa=1.0)
        live = await judged(settings, suite)
        assert live is not None
        (m,) = live.metrics
        assert (m.n_reference, m.n_current, m.unscored) == (150, 150, 0)
        assert m.reference_mean == 1.0 and m.current_mean == pytest.approx(100 / 150)
        assert m.verdict is Verdict.FAIL and m.severe_verdict is Verdict.FAIL
        assert m.severe_ci is not None and m.severe_ci[1] < -0.03 and m.ci_high is not None
        assert m.severe_ci[1] > m.ci_high  # the severe interval is the wider one
        # One judge request per distinct (question, answer): repeated ones are answered by the store's cache.
        distinct = len({(r["prompt"], r["response"]) for r in ref + cur})
        assert judge.requests == distinct and distinct < 300
        assert breaches(None, None, live) == [f"live quality FAIL at the severe level: {m.reason}"]
        assert suspicions(None, live) == []
        assert "| `judge_correct` | 1.000 (n=150) | 0.667 (n=150) |" in live.markdown()

        again = await judged(settings, suite)
        assert judge.requests == distinct  # the same rows, their verdicts from the store's judge cache
        assert again is not None and again.metrics == live.metrics

        sampled = await judged(settings, suite, sample=50)
        assert sampled is not None and (sampled.metrics[0].n_reference, sampled.metrics[0].n_current) == (50, 50)


async def test_an_unchanged_version_is_no_breach_and_an_uncalibrated_judge_is_no_evidence(
    tmp_path: Path, logged
) -> None:
    suite = live_suite(tmp_path)
    async with FakeOpenAI(latency_s=0, answer=arith_verdict, models=["judge"]) as judge:
        settings = judge_settings(tmp_path, judge.base_url)
        logged(settings, rows(NOW - 2 * HOUR, 200, 25, prefix="ref"), rows(NOW - HOUR, 200, 25, prefix="cur"))
        uncalibrated = await judged(settings, suite)
        assert uncalibrated is not None
        (m,) = uncalibrated.metrics
        assert m.verdict is Verdict.ERROR and "never calibrated" in m.reason
        calibrate(settings, suite, kappa=0.4)
        assert "kappa 0.400 (< min_kappa 0.6)" in (await judged(settings, suite)).metrics[0].reason  # type: ignore[union-attr]
        calibrate(settings, suite, kappa=0.9)
        live = await judged(settings, suite)
        assert live is not None
        (m,) = live.metrics
        assert m.current_mean == m.reference_mean == 0.96
        assert m.verdict is Verdict.INCONCLUSIVE and m.severe_verdict is Verdict.INCONCLUSIVE  # n=200 vs 0.03
        assert breaches(None, None, live) == [] and suspicions(None, live) == []


async def test_too_few_answers_are_error_and_a_bad_metric_exits_3(tmp_path: Path, logged) -> None:
    suite = live_suite(tmp_path)
    async with FakeOpenAI(latency_s=0, answer=arith_verdict, models=["judge"]) as judge:
        settings = judge_settings(tmp_path, judge.base_url)
        logged(settings, rows(NOW - 2 * HOUR, 100, None, prefix="ref"), rows(NOW - HOUR, 9, 1, prefix="cur"))
        calibrate(settings, suite, kappa=1.0)
        live = await judged(settings, suite)
        assert live is not None and live.metrics[0].verdict is Verdict.ERROR
        assert live.metrics[0].reason == "100 vs 9 scored answers: fewer than 10"
        with pytest.raises(InputError) as err:
            await judged(settings, suite, metrics=["judge_corect"])
        assert err.value.field == "live_metric" and "'judge_corect'" in str(err.value)
        empty = Settings(home=tmp_path / "elsewhere", config=settings.config, datasets_dir=settings.datasets_dir)
        assert json.dumps((await judged(empty, suite, log_dir=tmp_path / "no-logs")) is None) == "true"
