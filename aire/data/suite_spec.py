"""What ``suite.yaml`` may say: the validated models of a suite's spec (aire.data.suites loads them).

Kept apart from the loader so the file format reads in one place.
"""

from __future__ import annotations

import string
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aire.core.errors import did_you_mean
from aire.core.types import GenerationParams


class PromptSpec(BaseModel):
    """How a row becomes a request. Fields of the row are referenced as ``{field}``."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["completion", "chat"] = "completion"
    template: str | None = None  # completion prompt, or the user message in chat mode
    system: str | None = None  # chat mode only

    def fields(self) -> set[str]:
        names: set[str] = set()
        for text in (self.template, self.system):
            if text:
                names |= {f for _, f, _, _ in string.Formatter().parse(text) if f}
        return names


class EvaluatorRef(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    # `as: strict_match` names the metric when one evaluator is used twice with other options.
    alias: str | None = Field(None, alias="as", pattern=r"^[A-Za-z0-9_.\-]+$")

    @property
    def key(self) -> str:
        return self.alias or self.name


class CalibrationSpec(BaseModel):
    """``calibration:`` in suite.yaml: how well a confidence metric predicts a 0/1 correctness metric."""

    model_config = ConfigDict(extra="forbid")

    confidence: str  # a metric of the suite (an evaluator's key), e.g. ``confidence``
    correct: str  # a 0/1 metric of the suite, e.g. ``exact_match``
    coverage: float = Field(0.8, gt=0.0, le=1.0)  # for selective accuracy: answer only the surest share


class DatasetSource(BaseModel):
    """``dataset:`` in suite.yaml: rows from a Hugging Face dataset on disk or a data file, not samples.jsonl."""

    model_config = ConfigDict(extra="forbid")

    # A folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``, or a .parquet,
    # .csv, .json or .jsonl file; relative to the suite folder.
    path: str
    split: str = "train"
    # Suite field -> dataset column, for columns named differently from what the suite reads
    # (e.g. ``{id: question_id, question: problem}``). Unmapped fields are read by their own name.
    fields: dict[str, str] = Field(default_factory=dict)


class SuiteSpec(BaseModel):
    """The validated content of ``suite.yaml``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    version_notes: str = ""
    prompt: PromptSpec
    generation: GenerationParams = Field(default_factory=GenerationParams)
    id_field: str = "id"
    reference_field: str | None = None
    # RAG suites: a field holding the retrieved passages (a list of strings), and optionally one
    # holding the passages that support the reference (for the non-LLM context metrics).
    contexts_field: str | None = None
    reference_contexts_field: str | None = None
    slices: list[str] = Field(default_factory=list)
    # Samples sharing this field's value are not independent (one document, one conversation): the
    # gate's comparison then uses cluster-robust standard errors.
    group_field: str | None = None
    # Sampled generation (temperature > 0): each sample is sent this many times; the repeats of one
    # sample are one cluster for the summary's intervals and the gate (aire.core.repeats).
    repeats: int = Field(1, ge=1, le=100)
    evaluators: list[EvaluatorRef] = Field(min_length=1)
    # Shadow comparisons only: evaluators that score the challenger's answer against the champion's
    # (the agreement path: a pairwise judge such as judge_pairwise), as metrics of their own.
    pairwise: list[EvaluatorRef] = Field(default_factory=list)
    floors: list[str] = Field(default_factory=list)
    dataset: DatasetSource | None = None  # None: the rows are samples.jsonl next to suite.yaml
    calibration: list[CalibrationSpec] = Field(default_factory=list)

    @property
    def calibrated(self) -> list[tuple[str, str, float]]:
        """(confidence, correct, coverage) of each ``calibration:`` entry, as the summary takes them."""
        return [(c.confidence, c.correct, c.coverage) for c in self.calibration]

    @field_validator("evaluators")
    @classmethod
    def _unique_keys(cls, v: list[EvaluatorRef]) -> list[EvaluatorRef]:
        keys = [ref.key for ref in v]
        dup = next((k for k in keys if keys.count(k) > 1), None)
        if dup:
            raise ValueError(f"evaluator '{dup}' is listed twice: give one of them a distinct 'as:' name")
        return v

    @field_validator("pairwise")
    @classmethod
    def _pairwise_keys(cls, v: list[EvaluatorRef], info: Any) -> list[EvaluatorRef]:
        taken = [ref.key for ref in info.data.get("evaluators", [])]
        keys = [ref.key for ref in v]
        dup = next((k for k in keys if k in taken or keys.count(k) > 1), None)
        if dup:
            raise ValueError(f"metric '{dup}' is named twice: give the pairwise evaluator a distinct 'as:' name")
        return v

    @field_validator("calibration")
    @classmethod
    def _calibrated_metrics(cls, v: list[CalibrationSpec], info: Any) -> list[CalibrationSpec]:
        keys = [ref.key for ref in info.data.get("evaluators", [])]
        for i, c in enumerate(v):
            for field in ("confidence", "correct"):
                name = getattr(c, field)
                if name not in keys:
                    raise ValueError(
                        f"[{i}].{field}: '{name}' is not a metric of this suite{did_you_mean(name, keys)} "
                        f"(its evaluators: {', '.join(keys)})"
                    )
        confidences = [c.confidence for c in v]
        dup = next((k for k in confidences if confidences.count(k) > 1), None)
        if dup:
            raise ValueError(f"'{dup}' is calibrated twice: one correctness metric per confidence metric")
        return v

    @field_validator("prompt")
    @classmethod
    def _has_template(cls, v: PromptSpec) -> PromptSpec:
        if not v.template:
            raise ValueError("prompt.template is required")
        return v
