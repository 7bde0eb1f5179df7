"""Value objects that cross module boundaries: Sample, Completion, Score, Summary.

Everything here is a pydantic model so it validates once at the boundary and serialises to the
store and to MLflow without custom code.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aire.core.errors import EXIT_ERROR, EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_PASS

# What an evaluator may require of a sample beyond prompt and reference, and the suite.yaml setting
# that provides it (``@evaluator(requires=...)``; a suite without the setting is refused at load time).
SAMPLE_EXTRAS: dict[str, str] = {"contexts": "contexts_field", "reference_contexts": "reference_contexts_field"}
# What a requirement needs the suite to set: the extras, and a reference field for metrics that compare with it.
REQUIRED_SETTINGS: dict[str, str] = {**SAMPLE_EXTRAS, "reference": "reference_field"}
# Everything an evaluator may declare it requires: the sample's extras, a judge (an endpoint of
# aire.yaml named by its ``judge`` option, checked when the suite loads), and the answer's token
# log-probabilities (the suite then asks the server for them: ``GenerationParams.logprobs``).
REQUIREMENTS: tuple[str, ...] = (*REQUIRED_SETTINGS, "judge", "logprobs")


class ChatMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class GenerationParams(BaseModel):
    """What the suite asks the server to do with each prompt (OpenAI request fields)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(64, ge=1)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None
    # OpenAI structured output (``{"type": "json_schema", "json_schema": {...}}``), enforced by servers
    # that support it (vLLM does, with xgrammar); the judges send one. Only sent when set.
    response_format: dict[str, Any] | None = None
    # Ask for each output token's log-probability (``Completion.logprobs``). Set by the suite when an
    # evaluator requires it (the confidence evaluator), not by hand; only sent when true.
    logprobs: bool = False


class Sample(BaseModel):
    """One rendered input of a suite, ready to send."""

    model_config = ConfigDict(frozen=True)

    id: str
    # A plain string for /v1/completions, a message list for /v1/chat/completions.
    prompt: str | list[ChatMessage]
    reference: Any = None
    # The raw row from samples.jsonl, for evaluators that need more than the reference.
    fields: dict[str, Any] = Field(default_factory=dict)
    slices: dict[str, str] = Field(default_factory=dict)
    # Retrieval-augmented suites: the passages the retriever returned with this question, and those
    # that hold its answer (``contexts_field`` / ``reference_contexts_field`` in suite.yaml).
    contexts: tuple[str, ...] | None = None
    reference_contexts: tuple[str, ...] | None = None
    # Which of a suite's ``repeats`` this is (1..k, aire.core.repeats); None when the suite has none.
    repeat: int | None = None

    @property
    def is_chat(self) -> bool:
        return not isinstance(self.prompt, str)


class CompletionError(BaseModel):
    """Why a request produced no usable completion. Recorded, never raised."""

    type: str  # "http", "timeout", "connection", "protocol"
    status: int | None = None
    message: str = ""


class Completion(BaseModel):
    """What came back for one sample, with the latency SLIs measured on the stream."""

    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    ttft_s: float | None = None  # request sent -> first content token
    tpot_s: float | None = None  # mean time per output token after the first
    e2e_s: float | None = None  # request sent -> stream closed
    attempts: int = 1
    error: CompletionError | None = None
    # (token, log-probability) of each output token, when the request asked for them.
    logprobs: list[tuple[str, float]] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Score(BaseModel):
    """An evaluator's verdict on one completion. NaN means "could not score", never zero."""

    value: float = math.nan
    explanation: str | None = None

    @property
    def scored(self) -> bool:
        return not math.isnan(self.value)


class Estimate(BaseModel):
    """One aggregate with its sample size and 95% confidence interval."""

    value: float
    n: int
    n_errors: int = 0
    ci_low: float | None = None
    ci_high: float | None = None


class ReliabilityBin(BaseModel):
    """One bin of a reliability diagram: answers whose confidence fell in [low, high)."""

    low: float
    high: float
    n: int
    confidence: float  # their mean confidence
    accuracy: float  # the share of them that was right


class Summary(BaseModel):
    """Aggregates of a run. Keys are metric names: ``evaluator/aggregation[/slice]``."""

    n_samples: int
    n_errors: int
    metrics: dict[str, Estimate]
    # Latency percentiles: ``latency/ttft_s/p95[/slice]`` and the like, also Estimates.
    latency: dict[str, Estimate] = Field(default_factory=dict)
    # Cost SLIs (``aire.stats.summary.cost_slis``): tokens and request time, and with the endpoint's
    # price, dollars per run, per request and per quality point. Empty in records made before them.
    cost: dict[str, float] = Field(default_factory=dict)
    # ``<confidence metric>`` -> its reliability diagram against the suite's correctness metric
    # (``calibration:`` in suite.yaml; ``aire.stats.calibration``).
    reliability: dict[str, list[ReliabilityBin]] = Field(default_factory=dict)

    def flat(self) -> dict[str, float]:
        """Every finite value by metric name, ready for ``mlflow.log_metrics``."""
        out: dict[str, float] = {}
        for key, est in {**self.metrics, **self.latency}.items():
            if math.isfinite(est.value):
                out[key] = est.value
        out.update({k: v for k, v in self.cost.items() if math.isfinite(v)})
        return out


class Verdict(StrEnum):
    """What the gate, a canary or a sequential look says; also the exit code of the command that says it."""

    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"
    ERROR = "ERROR"

    @property
    def exit_code(self) -> int:
        return {"PASS": EXIT_PASS, "FAIL": EXIT_FAIL, "INCONCLUSIVE": EXIT_INCONCLUSIVE}.get(self.value, EXIT_ERROR)
