"""Gate rules as a discriminated union on ``kind`` (aire.core.rules): one model per kind with only its
own fields, each judging its own evidence at the interval's edges; and suite floors, which are the same
floor and ceiling rules read from ``metric >= x`` strings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from aire.core.rules import RULE_KINDS, Floor, parse_floor
from aire.gate.policy import (
    CeilingRule,
    FloorRule,
    Interval,
    LatencyRelativeRule,
    LatencySLORule,
    MetricEvidence,
    NonInferiorityRule,
    Policy,
    PolicyError,
    Rule,
    RuleResult,
    SuperiorityRule,
    Verdict,
    judge_rule,
    load_policy,
)

REPO = Path(__file__).resolve().parents[2]
RULE = TypeAdapter(Rule)

# One rule of each kind as a policy file writes it, and the evidence slot that kind reads.
AS_WRITTEN: list[tuple[dict[str, Any], type, str]] = [
    ({"metric": "em/mean", "kind": "floor", "threshold": 0.9}, FloorRule, "challenger"),
    (
        {"metric": "loss/mean", "kind": "ceiling", "threshold": 1.5, "higher_is_better": False},
        CeilingRule,
        "challenger",
    ),
    ({"metric": "em/mean", "kind": "non_inferiority", "margin": 0.03}, NonInferiorityRule, "delta"),
    ({"metric": "em/mean", "kind": "superiority", "margin": 0.01, "critical": False}, SuperiorityRule, "delta"),
    ({"metric": "latency/ttft_ms/p95", "kind": "latency_slo", "threshold": 500}, LatencySLORule, "challenger"),
    ({"metric": "latency/e2e_ms/p95", "kind": "latency_relative", "max_increase": 0.25}, LatencyRelativeRule, "ratio"),
]
IDS = [d["kind"] for d, _, _ in AS_WRITTEN]


def _iv(low: float, high: float, fail: tuple[float, float] | None = None) -> Interval:
    fl, fh = fail if fail else (None, None)
    return Interval(value=(low + high) / 2, ci_low=low, ci_high=high, fail_low=fl, fail_high=fh)


def _bound(rule: Any) -> tuple[float, bool]:
    """(the bound the rule's interval is read against, whether below it is good), in "better" units."""
    match rule:
        case FloorRule():
            return rule.threshold, False
        case CeilingRule() | LatencySLORule():
            return rule.threshold, True
        case LatencyRelativeRule():
            return 1 + rule.max_increase, True
    return rule.bound, False


@pytest.mark.parametrize(("written", "model", "slot"), AS_WRITTEN, ids=IDS)
def test_each_kind_is_its_own_model_and_round_trips(written: dict[str, Any], model: type, slot: str) -> None:
    rule = RULE.validate_python(written)
    assert type(rule) is model and RULE_KINDS[written["kind"]] is model
    assert RULE.validate_python(rule.model_dump()) == rule
    assert RULE.validate_json(RULE.dump_json(rule)) == rule
    assert model(**{k: v for k, v in written.items() if k != "kind"}) == rule  # kind is implied by the class


def test_shipped_policies_load_and_round_trip() -> None:
    for path in sorted((REPO / "gates").glob("*.yaml")):
        policy, _ = load_policy(path)
        assert Policy.model_validate(policy.model_dump()) == policy, path
        assert {type(r) for r in policy.rules} <= set(RULE_KINDS.values())


@pytest.mark.parametrize(
    ("rule", "key", "owners"),
    [
        ("{metric: m, kind: floor, threshold: 0.9, margin: 0.1}", "margin", "non_inferiority, superiority"),
        ("{metric: m, kind: non_inferiority, margin: 0.1, threshold: 0.9}", "threshold", "floor, ceiling, latency_slo"),
        ("{metric: m, kind: latency_slo, threshold: 9, max_increase: 0.1}", "max_increase", "latency_relative"),
        ("{metric: m, kind: latency_slo, threshold: 9, strict: true}", "strict", "floor, ceiling"),
    ],
)
def test_a_key_of_another_kind_is_named_with_its_kinds(tmp_path: Path, rule: str, key: str, owners: str) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text(f"rules:\n  - {{metric: a, kind: floor, threshold: 1}}\n  - {rule}\n")
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert err.value.field == f"rules[1].{key}" and err.value.path == str(path) and err.value.exit_code == 3
    assert f"has no '{key}' (that is a key of {owners} rules)" in str(err.value)


def test_a_foreign_field_in_code_is_a_pydantic_error_naming_it() -> None:
    with pytest.raises(ValidationError) as err:
        FloorRule(metric="m", threshold=0.9, margin=0.1)  # type: ignore[call-arg]
    assert [e["loc"] for e in err.value.errors()] == [("margin",)]
    with pytest.raises(ValidationError) as err:
        LatencyRelativeRule(metric="m")  # type: ignore[call-arg]
    assert [(e["loc"], e["type"]) for e in err.value.errors()] == [(("max_increase",), "missing")]


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ("{metric: m, kind: ceiling}", "rules[0].threshold", "Field required"),
        ("{metric: m, kind: latency_relative}", "rules[0].max_increase", "Field required"),
        ("{metric: m, kind: latency_relative, max_increase: -0.1}", "rules[0].max_increase", "greater than or equal"),
        ("{metric: m, kind: flor, threshold: 1}", "rules[0].kind", "unknown kind 'flor' (did you mean: floor?)"),
        ("{metric: m, threshold: 1}", "rules[0].kind", "a rule needs 'kind'"),
    ],
)
def test_a_missing_field_or_kind_is_named(tmp_path: Path, body: str, field: str, text: str) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text(f"rules: [{body}]\n")
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert err.value.field == field and text in str(err.value)
    assert ".ceiling." not in str(err.value) and ".latency_relative." not in str(err.value)  # no union tag


def _evidence(slot: str, iv: Interval, higher_is_better: bool | None = None) -> MetricEvidence:
    return MetricEvidence(**{slot: iv}, higher_is_better=higher_is_better)


@pytest.mark.parametrize(("written", "model", "slot"), AS_WRITTEN, ids=IDS)
def test_each_judge_reads_the_family_wise_interval_for_fail(written: dict[str, Any], model: type, slot: str) -> None:
    rule = RULE.validate_python({**written, "higher_is_better": None})
    bound, good_below = _bound(rule)
    s = 1 if good_below else -1  # wrong side: above the bound when below is good

    def verdict(iv: Interval) -> Verdict:
        return rule.judge(_evidence(slot, iv), alpha=0.05, fail_alpha=0.025).verdict

    inside = sorted((bound - s * 0.3, bound - s * 0.1))
    beyond_at_95 = sorted((bound + s * 0.1, bound + s * 0.3))
    family_touches = sorted((bound - s * 0.01, bound + s * 0.4))
    family_beyond = sorted((bound + s * 0.01, bound + s * 0.4))
    assert verdict(_iv(*inside)) is Verdict.PASS
    assert verdict(_iv(*beyond_at_95, fail=(family_touches[0], family_touches[1]))) is Verdict.INCONCLUSIVE
    assert verdict(_iv(*beyond_at_95, fail=(family_beyond[0], family_beyond[1]))) is Verdict.FAIL
    assert verdict(_iv(*sorted((bound - 0.2, bound + 0.2)))) is Verdict.INCONCLUSIVE  # straddles
    caveat = MetricEvidence(**{slot: _iv(*inside)}, caveat="too few clusters")
    assert rule.judge(caveat).verdict is Verdict.INCONCLUSIVE
    assert rule.judge(None).verdict is Verdict.ERROR
    missing = rule.judge(MetricEvidence())
    assert missing.verdict is Verdict.ERROR and missing.reason.startswith(f"{rule.metric} {rule.kind}: no ")
    assert judge_rule(rule, _evidence(slot, _iv(*inside))) == rule.judge(_evidence(slot, _iv(*inside)))


@pytest.mark.parametrize(
    ("rule", "slot", "edge", "verdict"),
    [
        # The gate's floor is strict (the whole interval above), its ceiling inclusive, as before the union.
        (FloorRule(metric="m", threshold=0.9), "challenger", (0.9, 0.95), Verdict.INCONCLUSIVE),
        (FloorRule(metric="m", threshold=0.9, strict=False), "challenger", (0.9, 0.95), Verdict.PASS),
        (CeilingRule(metric="m", threshold=0.9), "challenger", (0.8, 0.9), Verdict.PASS),
        (CeilingRule(metric="m", threshold=0.9, strict=True), "challenger", (0.8, 0.9), Verdict.INCONCLUSIVE),
        (LatencySLORule(metric="m", threshold=500), "challenger", (400, 500), Verdict.PASS),
        (NonInferiorityRule(metric="m", margin=0.03), "delta", (-0.03, 0.01), Verdict.INCONCLUSIVE),
        (SuperiorityRule(metric="m", margin=0.01), "delta", (0.01, 0.05), Verdict.INCONCLUSIVE),
        (LatencyRelativeRule(metric="m", max_increase=0.2), "ratio", (1.0, 1.2), Verdict.PASS),
    ],
    ids=["floor", "floor-inclusive", "ceiling", "ceiling-strict", "latency_slo", "ni", "superiority", "relative"],
)
def test_bound_exactly_at_the_interval_end(rule: Any, slot: str, edge: tuple[float, float], verdict: Verdict) -> None:
    result = rule.judge(_evidence(slot, _iv(*edge), higher_is_better=rule.higher_is_better))
    assert result.verdict is verdict, result.reason


def test_a_lower_is_better_difference_is_judged_in_better_units() -> None:
    ni = NonInferiorityRule(metric="loss/mean", margin=0.03)
    worse = MetricEvidence(delta=_iv(0.05, 0.08), higher_is_better=False)  # the challenger's loss is higher
    better = MetricEvidence(delta=_iv(-0.08, -0.05), higher_is_better=False)
    assert ni.judge(worse).verdict is Verdict.FAIL and ni.judge(better).verdict is Verdict.PASS
    assert ni.judge(worse).rule.higher_is_better is False  # the result shows the direction resolved
    sup = SuperiorityRule(metric="loss/mean", margin=0.03)
    assert sup.judge(better).verdict is Verdict.PASS and sup.judge(worse).verdict is Verdict.FAIL


@pytest.mark.parametrize(
    ("text", "model", "strict"),
    [
        ("m/mean >= 0.9", FloorRule, False),
        ("m/mean > 0.9", FloorRule, True),
        ("m/mean <= 0.9", CeilingRule, False),
        ("m/mean < 0.9", CeilingRule, True),
    ],
)
def test_a_suite_floor_is_the_gates_rule_and_agrees_on_a_point(text: str, model: type, strict: bool) -> None:
    floor = parse_floor(text)
    gate_rule = model(metric="m/mean", threshold=0.9, strict=strict)
    assert floor == gate_rule and type(floor) is model and isinstance(floor, Floor)
    assert str(floor) == text  # what MLflow params and reports show, unchanged
    assert RULE.validate_python(floor.model_dump()) == floor  # it is a gate rule as the policy reads it
    for value in (0.89, 0.9, 0.91):
        judged = gate_rule.judge(MetricEvidence(challenger=_iv(value, value))).verdict
        assert floor.holds(value) is (judged is Verdict.PASS), (text, value, judged)
        if value != 0.9:  # off the bound, a point that does not hold is a FAIL
            assert judged is (Verdict.PASS if floor.holds(value) else Verdict.FAIL)
    assert not floor.holds(float("nan"))


def test_a_decision_written_before_the_union_reads_back() -> None:
    """decision.json of the single Rule model carried every kind's fields, null where unused."""
    old = {
        "rule": {"metric": "em/mean", "kind": "non_inferiority", "threshold": None, "margin": 0.03}
        | {"max_increase": None, "higher_is_better": True, "critical": True},
        "verdict": "PASS",
        "reason": "em/mean non_inferiority: ...",
    }
    read = RuleResult.model_validate(old)
    assert read.rule == NonInferiorityRule(metric="em/mean", margin=0.03, higher_is_better=True)
    floor = RuleResult.model_validate({**old, "rule": {**old["rule"], "kind": "floor", "threshold": 0.9}})
    assert floor.rule == FloorRule(metric="em/mean", threshold=0.9, higher_is_better=True)  # strict, as it was


def test_offline_floors_check_the_point_estimate_and_print_as_written() -> None:
    from aire.core.types import Estimate, Summary
    from aire.run.offline import evaluate_floors

    summary = Summary(
        n_samples=10,
        n_errors=0,
        metrics={"em/mean": Estimate(value=0.9, n=10), "f1/mean": Estimate(value=float("nan"), n=10)},
        latency={"latency/ttft_ms/p95": Estimate(value=250.0, n=10)},
    )
    texts = ["em/mean >= 0.9", "em/mean > 0.9", "latency/ttft_ms/p95 < 250", "f1/mean >= 0", "bleu/mean <= 1"]
    got = [(r.floor, r.value, r.passed) for r in evaluate_floors([parse_floor(t) for t in texts], summary)]
    assert got == [
        ("em/mean >= 0.9", 0.9, True),
        ("em/mean > 0.9", 0.9, False),
        ("latency/ttft_ms/p95 < 250", 250.0, False),
        ("f1/mean >= 0", None, False),  # NaN: no evidence is not a pass
        ("bleu/mean <= 1", None, False),  # missing
    ]
