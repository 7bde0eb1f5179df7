"""`aire gate --mirrored --pairwise SUITE`: the gateway's mirrored pairs judged pairwise (challenger's answer
against the one production gave) by the suite's ``pairwise:`` judge, next to agreement and latency, with
no request to either model; a suite without pairwise evaluators, or --pairwise with --suite, exits 3
naming the field (tests/unit/test_cli_errors.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from aire.core.errors import InputError
from aire.testing.fake_openai import FakeOpenAI
from tests.conftest import REPO
from tests.unit.test_gateway import mirrored_traffic, settings_for
from tests.unit.test_pairwise import fair_judge, pairwise_suite


async def test_mirrored_pairs_are_judged_pairwise_without_sending_a_request(tmp_path: Path) -> None:
    from aire.run import finalise_shadow, prepare_shadow, send_in_looks, sending_pairs

    settings = settings_for(tmp_path).model_copy(update={"datasets_dir": tmp_path / "datasets"})
    suite = pairwise_suite(tmp_path)
    policy = yaml.safe_load((REPO / "gates" / "traffic.yaml").read_text())
    policy["rules"] = [r for r in policy["rules"] if r["kind"] != "latency_relative"]
    # A fair judge ties a right challenger (0.5) and fails a wrong one (0): ~0.35 at 30% wrong.
    policy["rules"].append({"metric": "judge_pairwise/mean", "kind": "floor", "threshold": 0.45})
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    since = datetime.now(UTC) - timedelta(seconds=1)
    async with (
        FakeOpenAI(latency_s=0.02) as v1,
        FakeOpenAI(latency_s=0.02, wrong_rate=0.3, seed=1) as v2,
        FakeOpenAI(latency_s=0, answer=fair_judge, models=["judge"]) as judge,
    ):
        (tmp_path / "aire.yaml").write_text(
            json.dumps({"endpoints": {"judge": {"base_url": judge.base_url, "model": "judge"}}})
        )
        await mirrored_traffic(settings, v1, v2)
        sent = (v1.requests, v2.requests)
        plan = await prepare_shadow(
            settings,
            policy=tmp_path / "policy.yaml",
            mirrored_since=since,
            out_dir=tmp_path / "out",
            pairwise=str(suite),
        )
        assert "judge_pairwise" in plan.agreement and "agreement_exact" in plan.agreement
        async with sending_pairs(plan):
            n_requested, looks = await send_in_looks(plan.id, warmup=0)
        result = await finalise_shadow(plan.id, n_requested=n_requested, looks=looks)
        assert (v1.requests, v2.requests) == sent and n_requested == 0  # the models were asked nothing
        assert judge.requests > 0  # the judge was
    judged = next(r for r in result.rules if r.rule.metric == "judge_pairwise/mean")
    assert judged.verdict.value == "FAIL", judged.reason
    assert result.verdict.value == "FAIL" and result.n_pairs == 150


def test_pairwise_needs_a_suite_with_pairwise_evaluators_and_no_suite_arm(tmp_path: Path) -> None:
    from aire.run.shadow import pairwise_of

    settings = settings_for(tmp_path)
    with pytest.raises(InputError) as err:
        pairwise_of(settings, str(REPO / "datasets" / "arith"))
    assert err.value.field == "pairwise" and "no pairwise: evaluators" in str(err.value)
    assert pairwise_of(settings, None) == ({}, [])
