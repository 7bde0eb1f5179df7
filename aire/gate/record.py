"""decision.json, typed: what a gate decided, written by the shadow comparison and read by CI and
``aire promote --decision``.

One pydantic model is the file's schema in both directions (model_dump_json / model_validate_json), so
the writer and the readers cannot drift apart. JSON has no infinity: an unbounded interval side is
written as null and read back as ±inf (aire.core.rules.Interval). A file that is not a decision (a
foreign JSON, a truncated write, a wrong type) is an InputError naming the file and the field: exit 3.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from aire.core.errors import InputError, validation_summary
from aire.core.types import Verdict
from aire.gate.policy import Counts, Decision, MetricEvidence, RuleResult
from aire.stats.sequential import SequentialInfo

FILE_NAME = "decision.json"


class RegistryRef(BaseModel):
    """The registered model versions the decision is about (what ``aire promote`` moves)."""

    model: str
    champion_version: str | None = None
    challenger_version: str | None = None


class MlflowRef(BaseModel):
    run_id: str
    tracking_uri: str


class TournamentRef(BaseModel):
    """What a decision.json of a tournament says about it: who else ran and who won."""

    challengers: list[str]
    winner: str | None
    family_alpha: float  # the policy's alpha, shared by the k comparisons (each ran at alpha / k)
    challenger: str | None = None  # whose decision this is (None: the tournament's own record)

    @property
    def promotable(self) -> bool:
        return self.winner is not None and self.challenger in (None, self.winner)


class DecisionRecord(BaseModel):
    # Unknown keys are tolerated (a newer aire may add some); a missing or mistyped one is not.
    model_config = ConfigDict(extra="ignore", ser_json_inf_nan="null")

    verdict: Verdict
    exit_code: int
    reasons: list[str]
    rules: list[RuleResult]
    counts: Counts
    metrics: dict[str, MetricEvidence]
    sequential: SequentialInfo | None = None
    provenance: dict[str, Any]
    registry: RegistryRef
    mlflow: MlflowRef
    tournament: TournamentRef | None = None  # one of several challengers (aire.gate.tournament)

    @classmethod
    def of(
        cls,
        decision: Decision,
        *,
        counts: Counts,
        metrics: dict[str, MetricEvidence],
        sequential: SequentialInfo | None,
        provenance: dict[str, Any],
        registry: RegistryRef,
        mlflow: MlflowRef,
    ) -> DecisionRecord:
        return cls(
            verdict=decision.verdict,
            exit_code=decision.verdict.exit_code,
            reasons=decision.reasons,
            rules=decision.rules,
            counts=counts,
            metrics=metrics,
            sequential=sequential,
            provenance=provenance,
            registry=registry,
            mlflow=mlflow,
        )

    def as_json_dict(self) -> dict[str, Any]:
        """The file's content as plain JSON values (infinities as None), e.g. for MLflow's log_dict."""
        return json.loads(self.model_dump_json())


def write_decision(path: Path, record: DecisionRecord) -> None:
    """Atomically: CI never reads a half-written decision."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(record.model_dump_json(indent=2) + "\n")
    tmp.replace(path)


def read_decision(path: Path) -> DecisionRecord:
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"cannot read the decision: {exc.strerror or exc}", path=path) from None
    try:
        return DecisionRecord.model_validate_json(text)
    except ValidationError as exc:
        if exc.errors()[0]["type"] == "json_invalid":
            raise InputError(f"not JSON: {exc.errors()[0]['msg']}", path=path) from None
        message, field = validation_summary(exc)
        raise InputError(f"not an aire decision: {message}", path=path, field=field) from None
