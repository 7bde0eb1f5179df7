"""Repeated judgements and the judge's biases in calibration, against scripted fake judges: a judge
that flips its verdict on every second repeat scores each sample with the mean of its repeats and
shows a self-agreement of exactly 1/3; its repeats are cached one by one (a second run asks nothing);
a pairwise judge that always answers "A" is calibrated with a position-bias rate of 1.0 (store, MLflow
and the printed report), a fair one with 0 and a kappa of 1; a bad ``judge_repeats`` exits 3 naming
the field."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aire.cli.app import main
from aire.core.settings import Settings
from aire.judges.calibrate import PAIRWISE_CATEGORIES, calibrate, verdict_of
from aire.judges.repeats import explain_repeats, repeat_verdicts, self_agreement
from aire.run import prepare, run_shard, sending
from aire.run.judge_checks import judge_checks
from aire.run.setup import bind_evaluator, load_suite_with_evaluators
from aire.store import Store
from aire.testing.fake_openai import FakeOpenAI, arithmetic_answer
from aire.testing.fake_openai.answers import arith_verdict
from tests.conftest import REPO, fake_process, mlflow_runs, server_stats, stop_process, write_config
from tests.unit.test_judge_calibrate import calibrations
from tests.unit.test_judges import grader, judge_settings, judged_suite
from tests.unit.test_pairwise import fair_judge

LABELS = REPO / "datasets" / "arith-judged" / "labels.jsonl"
FLIP = {"yes": "no", "no": "yes"}


def flip_flop(answer: Callable[[str], str]) -> Callable[[str], str]:
    """A judge that gives ``answer``'s verdict on the 1st, 3rd, ... asking of a prompt and the other one
    on the 2nd, 4th, ...: over 3 repeats every item gets [v, not v, v], whatever order they arrive in."""
    asked: dict[str, int] = {}

    def judge(prompt: str) -> str:
        asked[prompt] = asked.get(prompt, 0) + 1
        reply = json.loads(answer(prompt))
        if not asked[prompt] % 2:
            reply["verdict"] = FLIP[reply["verdict"]]
        return json.dumps(reply)

    return judge


# ------------------------------------------------------------------------------------- the pieces
def test_self_agreement_is_the_share_of_agreeing_pairs_of_repeats() -> None:
    got = self_agreement([["yes", "no", "yes"], ["no", "no", "no"], ["yes"], []])
    assert got.rate == pytest.approx((1 / 3 + 1) / 2)  # the items with one verdict or none cannot disagree
    assert (got.n_items, got.n_split) == (2, 1)
    assert math.isnan(self_agreement([["yes"]]).rate)


def test_repeat_verdicts_read_back_what_was_explained() -> None:
    text = explain_repeats(["yes", None, "no, really"], "unparseable judge reply (x)")
    assert text.startswith('judge repeats: ["yes", null, "no, really"]; 1 of 3 without a verdict')
    assert repeat_verdicts(text) == ["yes", None, "no, really"]
    assert repeat_verdicts(explain_repeats([4, 5], None)) == ["4", "5"]
    assert repeat_verdicts("judge: yes") is None and repeat_verdicts(None) is None


@pytest.mark.parametrize(
    ("value", "categories", "verdict"),
    [
        (2 / 3, ["no", "yes"], "yes"),  # the majority of three
        (1 / 3, ["no", "yes"], "no"),
        (0.5, ["no", "yes"], "no"),  # an even split on two labels: the lower one
        (0.25, PAIRWISE_CATEGORIES, "tie"),  # a pairwise split goes to the middle, for either answer
        (0.75, PAIRWISE_CATEGORIES, "tie"),
        (0.625, ["1", "2", "3", "4", "5"], "3"),  # 3.5 of 1..5: towards the middle
        (0.875, ["1", "2", "3", "4", "5"], "4"),
        (0.7, ["1", "2", "3", "4", "5"], "4"),
    ],
)
def test_a_mean_verdict_is_the_nearest_category_and_splits_go_to_the_middle(
    value: float, categories: list[str], verdict: str
) -> None:
    assert verdict_of(value, categories) == verdict


# ------------------------------------------------------------------------------- through a real run
async def test_repeats_score_the_mean_and_are_cached_one_by_one(tmp_path: Path) -> None:
    suite = judged_suite(tmp_path, extra=", judge_repeats: 3")
    async with (
        FakeOpenAI(latency_s=0, wrong_rate=0.5, seed=3) as model,
        FakeOpenAI(latency_s=0, answer=flip_flop(grader), models=["judge"]) as judge,
    ):
        settings = judge_settings(tmp_path, judge.base_url)
        for attempt in range(2):
            plan = await prepare(settings, suite=str(suite), base_url=model.base_url, model="fake", fresh=True)
            async with sending(plan):
                for i in range(len(plan.shards())):
                    await run_shard(plan.id, i)
            rows = plan.store.results(plan.run_id)
            assert len(rows) == 12
            for r in rows:
                # [right, wrong, right] about each answer: 2/3 for a right answer, 1/3 for a wrong one.
                assert r.scores["judge_rubric"] == pytest.approx((1 + r.scores["exact_match"]) / 3)
                verdicts = repeat_verdicts(r.explanations["judge_rubric"])
                assert verdicts is not None and sorted(verdicts) in (["no", "no", "yes"], ["no", "yes", "yes"])
            assert {r.scores["exact_match"] for r in rows} == {0.0, 1.0}
            if attempt == 0:
                assert judge.requests == 36  # three repeats of each of 12 samples, none served another's reply
                sent = judge.last_body
                assert sent["temperature"] == 1.0 and sent["seed"] in (0, 1, 2)
        assert judge.requests == 36  # the second, fresh run read all 36 repeats from the store


async def test_an_unparseable_repeat_is_left_out_and_all_unparseable_is_nan(tmp_path: Path) -> None:
    asked: dict[str, int] = {}

    def second_garbled(prompt: str) -> str:  # every second asking of a prompt gets prose, not JSON
        asked[prompt] = asked.get(prompt, 0) + 1
        return "hmm" if asked[prompt] % 2 == 0 else grader(prompt)

    for answer, expect_nan in ((second_garbled, False), (lambda p: "hmm", True)):
        folder = tmp_path / ("nan" if expect_nan else "some")
        suite = judged_suite(folder, extra=", judge_repeats: 3")
        async with (
            FakeOpenAI(latency_s=0) as model,
            FakeOpenAI(latency_s=0, answer=answer, models=["judge"]) as judge,
        ):
            settings = judge_settings(folder, judge.base_url)
            plan = await prepare(settings, suite=str(suite), base_url=model.base_url, model="fake")
            async with sending(plan):
                await run_shard(plan.id, 0)
        rows = plan.store.results(plan.run_id)
        assert rows
        for r in rows:
            why = r.explanations["judge_rubric"]
            if expect_nan:
                assert math.isnan(r.scores["judge_rubric"]) and "3 of 3 without a verdict" in why
            else:
                # The model is always right: the two parsed repeats say yes, the garbled one is left out.
                assert r.scores["judge_rubric"] == 1.0 and "1 of 3 without a verdict" in why
                verdicts = repeat_verdicts(why) or []
                assert verdicts.count("yes") == 2 and verdicts.count(None) == 1
            assert "unparseable judge reply" in why


# ------------------------------------------------------------------------------------- calibration
def repeated_suite(tmp_path: Path, repeats: object) -> Path:
    """arith-judged with judge_repeats on its judge."""
    folder = tmp_path / "arith-repeats"
    folder.mkdir(parents=True, exist_ok=True)
    text = (REPO / "datasets" / "arith-judged" / "suite.yaml").read_text()
    text = text.replace("path: ../arith/samples.jsonl", f"path: {REPO / 'datasets' / 'arith' / 'samples.jsonl'}")
    text = text.replace('      labels: ["no", "yes"]', f'      labels: ["no", "yes"]\n      judge_repeats: {repeats}')
    assert "judge_repeats" in text
    (folder / "suite.yaml").write_text(text)
    return folder


async def test_calibration_with_repeats_reports_self_agreement_and_kappa_of_the_majority(tmp_path: Path) -> None:
    suite_dir = repeated_suite(tmp_path, 3)
    store = Store(f"sqlite:///{tmp_path / 'aire.db'}")
    async with FakeOpenAI(latency_s=0, answer=flip_flop(arith_verdict), models=["judge"]) as srv:
        config = write_config(tmp_path / "aire.yaml", {"judge": {"base_url": srv.base_url, "model": "judge"}})
        settings = Settings(home=tmp_path / "home", config=config, max_attempts=1)
        loaded, bound = load_suite_with_evaluators(settings, str(suite_dir))
        result = await calibrate(settings, store, loaded, "judge_correct", bound["judge_correct"], LABELS)
        assert srv.requests == 3 * result.n_labelled
        again = await calibrate(settings, store, loaded, "judge_correct", bound["judge_correct"], LABELS)
        assert srv.requests == 3 * result.n_labelled  # every repeat from the cache
    store.close()
    # Every item got [v, not v, v]: one agreeing pair of three, and the majority is the exact judge's
    # verdict, which the shipped labels agree with everywhere.
    assert result.judge_repeats == 3 and result.n_scored == result.n_labelled == 40
    assert result.self_agreement == pytest.approx(1 / 3)
    assert result.n_self_agreement == 40 and result.n_split == 40
    assert result.kappa == pytest.approx(1.0) and result.accuracy == 1.0
    assert result.position_bias is None  # a pointwise judge has no positions
    assert again.kappa == result.kappa and again.self_agreement == result.self_agreement


def pairwise_labels(tmp_path: Path) -> tuple[Path, Path]:
    """A suite with a pairwise judge and labelled pairs: right/wrong (A), wrong/right (B), right/right (tie)."""
    folder = tmp_path / "datasets" / "paired"
    folder.mkdir(parents=True)
    rows = [json.loads(x) for x in (REPO / "datasets" / "arith" / "samples.jsonl").read_text().splitlines()[:30]]
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "suite.yaml").write_text(
        "name: paired\n"
        'prompt: {mode: completion, template: "Q: {question}=\\nA:"}\n'
        "reference_field: answer\n"
        "evaluators:\n  - name: exact_match\n"
        "pairwise:\n  - name: judge_pairwise\n    options: {judge: judge}\n"
    )
    labelled = []
    for i, row in enumerate(rows):
        right = arithmetic_answer(f"{row['question']}=").strip()
        wrong = str(int(right) + 1)
        a, b, label = [(right, wrong, "A"), (wrong, right, "B"), (right, right, "tie")][i % 3]
        labelled.append({**row, "response_a": a, "response_b": b, "label": label})
    labels = folder / "pair-labels.jsonl"
    labels.write_text("".join(json.dumps(r) + "\n" for r in labelled))
    return folder, labels


@pytest.fixture
def position_a_judge(aire_env: Path, tmp_path: Path) -> Iterator[str]:
    proc, url = fake_process(0, "--judge", "position-a", "--model", "judge")
    write_config(tmp_path / "aire.yaml", {"judge": {"base_url": url, "model": "judge"}})
    yield url
    stop_process(proc)


def test_a_judge_that_always_answers_a_is_calibrated_with_position_bias_1(
    position_a_judge: str, aire_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite, labels = pairwise_labels(tmp_path)
    assert main(["judge", "calibrate", "--labels", str(labels), "--suite", str(suite)]) == 0
    out = capsys.readouterr().out
    assert "position bias 1.000: the same position in both orders on 30 of 30 pairs" in out, out
    (record,) = calibrations(aire_env)
    assert record["kind"] == "pairwise" and record["evaluator"] == "judge_pairwise"
    assert record["position_bias"] == 1.0 and record["n_position_bias"] == 30
    # Every pair is a tie (the bias cannot pick a winner), so the judge agrees with the labels only on ties.
    assert record["confusion"] == {h: {"A": 0, "tie": 10, "B": 0} for h in PAIRWISE_CATEGORIES}
    assert record["kappa"] == pytest.approx(0.0)
    (run,) = mlflow_runs(aire_env, "tags.`aire.kind` = 'judge-calibration'")
    assert run.data.metrics["judge/position_bias"] == 1.0
    # Both orders of each distinct pair (a right/right pair is one prompt both ways), then nothing new.
    asked = server_stats(position_a_judge)["requests"]
    assert asked == 2 * 20 + 10
    assert main(["judge", "calibrate", "--labels", str(labels), "--suite", str(suite), "--min-kappa", "0.2"]) == 1
    assert server_stats(position_a_judge)["requests"] == asked


async def test_a_fair_pairwise_judge_has_no_position_bias_and_full_agreement(tmp_path: Path) -> None:
    suite_dir, labels = pairwise_labels(tmp_path)
    store = Store(f"sqlite:///{tmp_path / 'aire.db'}")
    async with FakeOpenAI(latency_s=0, answer=fair_judge, models=["judge"]) as srv:
        config = write_config(tmp_path / "aire.yaml", {"judge": {"base_url": srv.base_url, "model": "judge"}})
        settings = Settings(home=tmp_path / "home", config=config, max_attempts=1)
        loaded, _ = load_suite_with_evaluators(settings, str(suite_dir))
        ref = loaded.spec.pairwise[0]
        bound = bind_evaluator(ref, loaded.path / "suite.yaml", "pairwise[0]", settings)
        result = await calibrate(settings, store, loaded, ref.key, bound, labels, pairwise=True)
        # Recorded, it is what a gate's min_kappa finds for the shadow run's pairwise metric.
        store.put_calibration(result.model_dump(mode="json"))
        assert judge_checks(settings, store, {ref.key: bound})[ref.key].kappa == pytest.approx(1.0)
    store.close()
    # A is answer A in the labels and in the judge's first order: a fair judge agrees on every pair.
    assert result.position_bias == 0.0 and result.n_position_bias == 0
    assert result.kappa == pytest.approx(1.0) and result.n_scored == 30
    assert result.self_agreement is None  # one judgement per pair


@pytest.mark.parametrize("bad", ["0", '"3"', "2.5", "true"])
def test_a_bad_judge_repeats_exits_3_naming_the_field(
    aire_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    write_config(tmp_path / "aire.yaml", {"judge": {"base_url": "http://127.0.0.1:9/v1", "model": "judge"}})
    suite = repeated_suite(tmp_path, bad)
    assert main(["judge", "calibrate", "--labels", str(LABELS), "--suite", str(suite)]) == 3
    err = capsys.readouterr().err
    assert "evaluators[1].options.judge_repeats" in err, err
