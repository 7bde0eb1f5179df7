"""Pairwise judging: every pair of verdicts (exact enumeration of the 3 x 3 outcomes), and a shadow
comparison whose suite has a ``pairwise:`` judge: a fair judge gives the challenger exactly its share
of pairs, a judge biased to position A is all ties and is reported as position bias."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aire.core.settings import Settings
from aire.run import prepare_shadow, sending_pairs
from aire.run.pairs import paired_data, run_pairs
from aire.testing.fake_openai import FakeOpenAI, arithmetic_answer
from evaluators.pairwise import outcome

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("first", "second", "value", "biased"),
    [
        ("B", "A", 1.0, False),  # the challenger wins in both orders
        ("A", "B", 0.0, False),  # the champion wins in both orders
        ("A", "A", 0.5, True),  # position A twice: bias, a tie
        ("B", "B", 0.5, True),
        ("tie", "tie", 0.5, False),
        ("B", "tie", 0.75, False),
        ("tie", "A", 0.75, False),
        ("A", "tie", 0.25, False),
        ("tie", "B", 0.25, False),
    ],
)
def test_every_pair_of_verdicts(first: str, second: str, value: float, biased: bool) -> None:
    got, why = outcome(first, second)
    assert got == value
    assert why.startswith("position bias") is biased


def fair_judge(prompt: str) -> str:
    """Prefers the right answer to the arith question; equally right or wrong is a tie."""
    truth = arithmetic_answer(prompt.split("Answer A:")[0]).strip()
    a = re.search(r"^Answer A: (.*)$", prompt, re.M).group(1).strip()  # type: ignore[union-attr]
    b = re.search(r"^Answer B: (.*)$", prompt, re.M).group(1).strip()  # type: ignore[union-attr]
    winner = "tie" if (a == truth) == (b == truth) else ("A" if a == truth else "B")
    return json.dumps({"winner": winner})


def biased_judge(prompt: str) -> str:
    return json.dumps({"winner": "A"})


def pairwise_suite(tmp_path: Path) -> Path:
    folder = tmp_path / "datasets" / "paired"
    folder.mkdir(parents=True)
    rows = (ROOT / "datasets" / "arith" / "samples.jsonl").read_text().splitlines()[:60]
    (folder / "samples.jsonl").write_text("\n".join(rows) + "\n")
    (folder / "suite.yaml").write_text(
        "name: paired\n"
        'prompt: {mode: completion, template: "Q: {question}=\\nA:"}\n'
        "reference_field: answer\n"
        "generation: {temperature: 0, max_tokens: 4, stop: ['\\n']}\n"
        "evaluators:\n  - name: exact_match\n"
        "pairwise:\n  - name: judge_pairwise\n    options: {judge: judge}\n"
    )
    return folder


async def compare_with(tmp_path: Path, judge_answer: Any) -> tuple[dict[str, Any], Any]:
    suite = pairwise_suite(tmp_path)
    async with (
        FakeOpenAI(latency_s=0) as champion,
        FakeOpenAI(latency_s=0, wrong_rate=0.5, seed=2) as challenger,
        FakeOpenAI(latency_s=0, answer=judge_answer, models=["judge"]) as judge,
    ):
        config = tmp_path / "aire.yaml"
        config.write_text(
            json.dumps(
                {
                    "endpoints": {
                        "champion": {"base_url": champion.base_url, "model": "fake"},
                        "challenger": {"base_url": challenger.base_url, "model": "fake"},
                        "judge": {"base_url": judge.base_url, "model": "judge"},
                    }
                }
            )
        )
        settings = Settings(home=tmp_path / "home", config=config, max_attempts=1)
        plan = await prepare_shadow(
            settings,
            policy=ROOT / "gates" / "default.yaml",
            champion="champion",
            challenger="challenger",
            suite=str(suite),
            out_dir=tmp_path / "out",
        )
        async with sending_pairs(plan):
            await run_pairs(plan, plan.samples)
        data = await paired_data(plan)
        asked = judge.requests
        again = await paired_data(plan)  # a second look asks nothing: the judge cache
        assert judge.requests == asked
        assert np.array_equal(again.agreement["judge_pairwise/mean"], data.agreement["judge_pairwise/mean"])
        rows = {r.sample_id: r for r in plan.store.results(plan.runs["challenger"])}
        same = {r.sample_id: r.text == rows[r.sample_id].text for r in plan.store.results(plan.runs["champion"])}
        return {"rows": rows, "same": same, "asked": asked}, data


async def test_a_fair_pairwise_judge_scores_the_challenger_by_its_wins(tmp_path: Path) -> None:
    facts, data = await compare_with(tmp_path, fair_judge)
    scores = data.agreement["judge_pairwise/mean"]
    right = np.array([facts["rows"][sid].scores["exact_match"] for sid in data.ids])
    # The champion is always right: a right challenger ties (0.5), a wrong one loses (0).
    assert np.array_equal(scores, 0.5 * right)
    assert 0 < right.mean() < 1
    # Both orders, once each; equal answers make one prompt in either order (asked once, cached).
    assert facts["asked"] == sum(1 if facts["same"][sid] else 2 for sid in data.ids)
    assert data.position_bias == {}


async def test_a_judge_biased_to_one_position_is_all_ties_and_reported(tmp_path: Path) -> None:
    _, data = await compare_with(tmp_path, biased_judge)
    assert np.all(data.agreement["judge_pairwise/mean"] == 0.5)
    assert data.position_bias == {"judge_pairwise": 1.0}


async def test_a_pairwise_judge_that_is_not_an_endpoint_is_refused_naming_the_field(tmp_path: Path) -> None:
    from aire.core.errors import InputError

    suite = pairwise_suite(tmp_path)
    config = tmp_path / "aire.yaml"
    endpoints = {
        arm: {"base_url": f"http://127.0.0.1:{port}/v1", "model": "m"}
        for arm, port in (("champion", 9), ("challenger", 7))
    }
    config.write_text(json.dumps({"endpoints": endpoints}))
    settings = Settings(home=tmp_path / "home", config=config)
    with pytest.raises(InputError) as err:
        await prepare_shadow(
            settings,
            policy=ROOT / "gates" / "default.yaml",
            champion="champion",
            challenger="challenger",
            suite=str(suite),
        )
    assert err.value.field == "pairwise[0].options.judge"
    assert "unknown endpoint 'judge'" in err.value.message


def test_a_pairwise_metric_named_like_an_evaluator_is_refused(tmp_path: Path) -> None:
    from aire.core.errors import SuiteError
    from aire.data.suites import load_suite

    suite = pairwise_suite(tmp_path)
    spec = suite / "suite.yaml"
    spec.write_text(
        spec.read_text().replace("  - name: judge_pairwise\n", "  - name: judge_pairwise\n    as: exact_match\n")
    )
    with pytest.raises(SuiteError, match="named twice"):
        load_suite(str(suite), tmp_path)
