"""Confidence from token logprobs: asked for only when an evaluator needs them, parsed from streams and
bodies (completions and chat), scored by the confidence evaluator, and calibrated against correctness
(ECE, selective accuracy, reliability bins), exactly on small cases, by simulation for the intervals,
and end to end through an offline run, its MLflow record, a re-score and the gate's report."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aire.client.config import EndpointConfig
from aire.client.endpoints import EndpointClient, payload
from aire.core.errors import SuiteError
from aire.core.settings import Settings
from aire.core.types import ChatMessage, Completion, GenerationParams, Sample
from aire.data.suites import load_suite
from aire.run import finalise, prepare, run_shard, sending
from aire.run.rescore import rescore
from aire.stats.calibration import calibration_metrics, expected_calibration_error, reliability, selective_accuracy
from aire.testing.fake_openai import FakeOpenAI
from evaluators.confidence import confidence
from tests.conftest import fake_gate, mlflow_client

ROOT = Path(__file__).resolve().parents[2]
SURE, UNSURE = 0.95, 0.45  # the fake's token probability for right and for wrong answers (off bin edges)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", datasets_dir=ROOT / "datasets", max_attempts=1, shard_size=50)


def test_logprobs_are_asked_for_only_when_told() -> None:
    text, chat = Sample(id="a", prompt="p"), Sample(id="b", prompt=[ChatMessage(role="user", content="p")])
    assert "logprobs" not in payload(text, GenerationParams())[1]  # old requests keep their fingerprint
    assert payload(text, GenerationParams(logprobs=True))[1]["logprobs"] == 1
    assert payload(chat, GenerationParams(logprobs=True))[1]["logprobs"] is True


@pytest.mark.parametrize("chat", [False, True], ids=["completions", "chat"])
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "body"])
async def test_each_output_tokens_logprob_comes_back(chat: bool, stream: bool) -> None:
    prompt: Any = [ChatMessage(role="user", content="Q: 3+4=\nA:")] if chat else "Q: 3+4=\nA:"
    sample = Sample(id="a", prompt=prompt)
    async with FakeOpenAI(latency_s=0, honor_stream=stream, token_probs=(0.8, 0.5)) as s:
        client = EndpointClient(EndpointConfig(name="f", base_url=s.base_url, model="fake"))
        async with client:
            asked = await client.generate(sample, GenerationParams(max_tokens=4, stop=["\n"], logprobs=True))
            plain = await client.generate(sample, GenerationParams(max_tokens=4, stop=["\n"]))
    assert asked.text == " 7" and asked.logprobs == [(" ", math.log(0.8)), ("7", math.log(0.8))]
    assert plain.text == " 7" and plain.logprobs is None


def test_the_confidence_evaluator_reads_the_first_real_token_or_the_mean() -> None:
    s = Sample(id="a", prompt="p")
    c = Completion(text=" 42", logprobs=[(" ", math.log(0.99)), ("4", math.log(0.5)), ("2", math.log(0.8))])
    assert confidence(s, c, method="first_token").value == pytest.approx(0.5)
    assert confidence(s, c).value == pytest.approx((0.99 * 0.5 * 0.8) ** (1 / 3))
    assert math.isnan(confidence(s, Completion(text="x")).value)  # no logprobs: not scored, never 0
    assert "whitespace" in (confidence(s, Completion(logprobs=[(" ", -0.1)]), method="first_token").explanation or "")


def test_ece_selective_accuracy_and_bins_on_a_case_worked_by_hand() -> None:
    conf = np.array([0.95, 0.95, 0.95, 0.95, 0.55, 0.55, 0.15, 0.15])
    right = np.array([1, 1, 1, 0, 1, 0, 0, 0], dtype=float)
    # Bin [0.9, 1]: 4 at 0.95, accuracy 0.75 -> 0.2; bin [0.5, 0.6): 2 at 0.55, accuracy 0.5 -> 0.05;
    # bin [0.1, 0.2): 2 at 0.15, accuracy 0 -> 0.15. ECE = (4 * 0.2 + 2 * 0.05 + 2 * 0.15) / 8 = 0.15.
    assert expected_calibration_error(conf, right) == pytest.approx(0.15)
    bins = [(b.low, b.n, b.accuracy) for b in reliability(conf, right)]
    assert bins == [(0.1, 2, 0.0), (0.5, 2, 0.5), (0.9, 4, 0.75)]
    # The surest half: the four at 0.95, three right; at full coverage, plain accuracy.
    assert selective_accuracy(conf, right, 0.5) == 0.75 and selective_accuracy(conf, right, 1.0) == 0.5
    # Confidence 1.0 falls in the last bin, not an eleventh.
    assert expected_calibration_error(np.array([1.0, 1.0]), np.array([1.0, 0.0])) == pytest.approx(0.5)


def test_calibration_metrics_at_the_edges() -> None:
    # Too few samples: the values without an interval; nothing scored: NaN, never 0.
    few, _ = calibration_metrics("c", np.full(5, 0.9), np.ones(5), coverage=0.8)
    assert few["c/ece"].value == pytest.approx(0.1) and few["c/ece"].ci_low is None
    none, bins = calibration_metrics("c", np.full(3, np.nan), np.ones(3), coverage=0.8)
    assert math.isnan(none["c/ece"].value) and none["c/ece"].n_errors == 3 and bins == []
    # Clustered (a sample's repeats): the interval counts samples, so it is wider.
    rng = np.random.default_rng(1)
    own = rng.random(40) < 0.7
    conf, right = np.repeat(np.where(own, 0.9, 0.6), 5), np.repeat(own.astype(float), 5)
    rows, _ = calibration_metrics("c", conf, right, coverage=0.8)
    samples, _ = calibration_metrics("c", conf, right, coverage=0.8, clusters=np.repeat(np.arange(40), 5))
    width = lambda e: e.ci_high - e.ci_low  # noqa: E731
    assert rows["c/ece"].value == samples["c/ece"].value
    assert width(samples["c/ece"]) > 1.5 * width(rows["c/ece"])


def test_the_intervals_cover_a_real_miscalibration_and_often_a_perfect_calibration() -> None:
    """Simulated: confidence uniform on [0.5, 1], the model right with probability confidence - shift,
    so the true (binned) ECE is exactly ``shift`` and the accuracy of the surest 80% is 0.8 - shift.
    Measured in benchmarks-style runs of 300 a cell (n 100 / 300 / 1,000): see the README; here 80
    runs at n = 300. ECE's plug-in estimate is biased upwards: BCa never held a true ECE of 0, the
    basic bootstrap does most of the time."""
    rng = np.random.default_rng(7)
    hits: dict[float, list[int]] = {}
    for shift in (0.15, 0.0):
        ece = sel = 0
        for r in range(80):
            conf = rng.uniform(0.5, 1, 300)
            right = (rng.random(300) < conf - shift).astype(float)
            m, _ = calibration_metrics("c", conf, right, coverage=0.8, seed=r)
            ece += m["c/ece"].ci_low <= shift <= m["c/ece"].ci_high
            acc = m["c/accuracy_at_coverage_0.8"]
            sel += acc.ci_low <= 0.8 - shift <= acc.ci_high
        hits[shift] = [ece, sel]
    assert hits[0.15][0] >= 0.85 * 80 and hits[0.0][0] >= 0.6 * 80, hits
    assert all(sel >= 0.88 * 80 for _, sel in hits.values()), hits


def test_a_calibration_naming_no_metric_of_the_suite_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "samples.jsonl").write_text('{"id": "1", "question": "1+1", "answer": "2"}\n')
    (folder / "suite.yaml").write_text(
        "name: bad\nprompt: {template: '{question}'}\nreference_field: answer\n"
        "evaluators: [{name: exact_match}, {name: confidence}]\n"
        "calibration: [{confidence: confidance, correct: exact_match}]\n"
    )
    with pytest.raises(SuiteError, match="calibration") as err:
        load_suite(str(folder), tmp_path)
    assert "'confidance' is not a metric of this suite" in str(err.value) and "did you mean" in str(err.value)
    assert err.value.exit_code == 3


async def test_an_offline_run_reports_calibration_and_a_rescore_reproduces_it(settings: Settings) -> None:
    async with FakeOpenAI(latency_s=0, wrong_rate=0.3, seed=5, token_probs=(SURE, UNSURE)) as s:
        kw: dict[str, Any] = {"suite": "arith-confidence", "base_url": s.base_url, "model": "fake"}
        plan = await prepare(settings, **kw)
        async with sending(plan):
            for i in range(len(plan.shards())):
                await run_shard(plan.id, i)
        assert s.last_body["logprobs"] == 1  # asked because the suite's confidence evaluator needs them
        result = finalise(plan.id)
        rows = plan.store.results(plan.run_id)
        assert all(r.logprobs and len(r.logprobs) == r.output_tokens for r in rows)
        wrong = 1 - result.summary.metrics["exact_match/mean"].value
        assert 0.2 < wrong < 0.4
        m = result.summary.metrics
        # Right answers sit at 0.95 (accuracy 1), wrong ones at 0.45 (accuracy 0).
        assert m["confidence/ece"].value == pytest.approx((1 - wrong) * (1 - SURE) + wrong * UNSURE)
        assert m["confidence/ece"].ci_low < m["confidence/ece"].value < m["confidence/ece"].ci_high
        # The surest 80% (160 of 200) hold every right answer first: accuracy right / 160.
        assert m["confidence/accuracy_at_coverage_0.8"].value == pytest.approx(min(1.0, (1 - wrong) * 200 / 160))
        assert [b.low for b in result.summary.reliability["confidence"]] == [0.4, 0.9]

        mc = mlflow_client(settings.home)
        assert {"reliability.png", "report.md"} <= {a.path for a in mc.list_artifacts(result.mlflow_run_id)}
        report = Path(mc.download_artifacts(result.mlflow_run_id, "report.md")).read_text()
        assert "## Calibration" in report and "`confidence/ece`" in report
        logged = mc.get_run(result.mlflow_run_id).data.metrics
        assert logged["confidence/ece"] == pytest.approx(m["confidence/ece"].value)

        sent = s.requests
        again = await rescore(settings, plan.run_id)
        assert s.requests == sent  # the logprobs came from the store
        assert again.summary.metrics["confidence/ece"].value == m["confidence/ece"].value


async def test_the_gate_report_shows_both_arms_reliability(tmp_path: Path, settings: Settings) -> None:
    async with (
        FakeOpenAI(latency_s=0, token_probs=(SURE, UNSURE)) as a,
        FakeOpenAI(latency_s=0, wrong_rate=0.3, seed=2, token_probs=(0.75, 0.75)) as b,
    ):
        await fake_gate(settings, tmp_path, {"champion": a, "challenger": b}, "arith-confidence")
    report = (tmp_path / "out" / "report.md").read_text()
    assert (tmp_path / "out" / "reliability.png").stat().st_size > 0
    assert "## Calibration" in report
    assert "| champion | `confidence/ece` | 0.050 |" in report  # all right, all at 0.95
    assert "| challenger: confidence | [0.7, 0.8) |" in report
