"""decision.json as one typed record (aire.gate.record): written and read by the same model; a file
that is not a decision is an InputError (exit 3) naming the file and the field."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from aire.cli.app import main
from aire.core.errors import InputError
from aire.core.types import Verdict
from aire.gate.policy import Counts, Interval, MetricEvidence, NonInferiorityRule, Policy, decide
from aire.gate.record import DecisionRecord, MlflowRef, RegistryRef, read_decision, write_decision
from aire.stats.sequential import Look, SequentialInfo

METRIC = "exact_match/mean"


def _record(delta: Interval, sequential: SequentialInfo | None = None) -> DecisionRecord:
    policy = Policy(rules=[NonInferiorityRule(metric=METRIC, margin=0.03)], n_min=10)
    evidence = {METRIC: MetricEvidence(delta=delta, higher_is_better=True)}
    counts = Counts(n_pairs=200)
    return DecisionRecord.of(
        decide(policy, evidence, counts),
        counts=counts,
        metrics=evidence,
        sequential=sequential,
        provenance={"champion": {"registered_version": "1"}, "challenger": {"registered_version": "2"}},
        registry=RegistryRef(model="aire-model", champion_version="1", challenger_version="2"),
        mlflow=MlflowRef(run_id="abc", tracking_uri="sqlite:///x.db"),
    )


def test_round_trip_keeps_every_field_and_unbounded_sides(tmp_path: Path) -> None:
    seq = SequentialInfo(batch=50, cap=400, n_used=100, looks=[Look(n=100, verdict=Verdict.PASS)], fixed_n_plan=400)
    record = _record(Interval(value=0.01, ci_low=-0.01, ci_high=math.inf), seq)
    assert record.verdict is Verdict.PASS and record.exit_code == 0
    path = tmp_path / "decision.json"
    write_decision(path, record)
    raw = json.loads(path.read_text())
    assert raw["metrics"][METRIC]["delta"]["ci_high"] is None  # JSON has no infinity
    assert raw["sequential"]["fraction_of_plan"] == 0.25
    assert raw["registry"] == {"model": "aire-model", "champion_version": "1", "challenger_version": "2"}
    back = read_decision(path)
    assert back.metrics[METRIC].delta is not None and back.metrics[METRIC].delta.ci_high == math.inf
    assert back == record
    assert not list(tmp_path.glob("*.tmp"))  # written atomically


def test_the_keys_ci_reads_are_where_they_were(tmp_path: Path) -> None:
    """infra/ci/promotion-gate.yml reads .verdict, .exit_code and .registry.model with jq."""
    raw = _record(Interval(value=-0.2, ci_low=-0.25, ci_high=-0.15)).as_json_dict()
    assert raw["verdict"] == "FAIL" and raw["exit_code"] == 1 and raw["registry"]["model"] == "aire-model"
    assert list(raw)[:4] == ["verdict", "exit_code", "reasons", "rules"]


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ('{"name": "some other tool", "ok": true}', "verdict", "not an aire decision"),
        ("{not json", None, "not JSON"),
        ("", None, "not JSON"),
    ],
)
def test_a_file_that_is_not_a_decision_names_the_field(tmp_path: Path, body: str, field: str | None, text: str) -> None:
    path = tmp_path / "decision.json"
    path.write_text(body)
    with pytest.raises(InputError) as err:
        read_decision(path)
    assert err.value.field == field and err.value.path == str(path) and text in str(err.value)


def test_a_wrong_type_deep_inside_names_its_path(tmp_path: Path) -> None:
    raw = _record(Interval(value=0.01, ci_low=-0.01, ci_high=0.03)).as_json_dict()
    raw["registry"]["model"] = ["not", "a", "name"]
    path = tmp_path / "decision.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(InputError) as err:
        read_decision(path)
    assert err.value.field == "registry.model"


def test_promote_with_a_foreign_decision_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "decision.json"
    path.write_text('{"result": "ok"}')
    assert main(["promote", "--decision", str(path), "--alias", "production"]) == 3
    err = capsys.readouterr().err
    assert str(path) in err and "verdict" in err
