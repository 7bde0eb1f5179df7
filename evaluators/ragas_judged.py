"""ragas metrics that need a judge: faithfulness, answer relevancy, context precision (with reference),
context recall and factual correctness. The metric code is ragas's own (``ragas.metrics.collections``,
async ``ascore``); only the LLM it talks to is aire's.

The route to the judge: each metric gets :class:`JudgeLLM`, a ``ragas.llms.InstructorBaseRagasLLM``
that asks an endpoint of aire.yaml through ``aire.judges.Judge``. Every ragas step (statement
extraction, NLI verdicts, ...) is then one judge request that carries ragas's response model as a JSON
schema (``response_format: json_schema``: vLLM's structured output can only answer in its shape), is
validated by that model, and is cached in the store by (judge identity, prompt hash), so a resumed or
re-scored run pays once. Not ``ragas.llm_factory``: it drives the endpoint through instructor's JSON
mode (``json_object``, any JSON at all) with its own client and retries; not MLflow's ragas scorers:
they reach the judge through litellm (README, "Quality metrics").

A judge reply that does not validate, or a judge that fails, is NaN with the reason, never a zero.
"""

from __future__ import annotations

import functools
import importlib.metadata
import math
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel

from aire.core.types import ChatMessage, Completion, Sample, Score
from aire.judges import Judge, current_judge
from evaluators._ragas import ragas_env
from evaluators._text import NO_REFERENCE, references
from evaluators.judged import question_text
from evaluators.ragas_text import NO_CONTEXTS, embeddings
from evaluators.registry import evaluator

# ragas's judge outputs (lists of statements with reasons) are longer than a verdict.
DEFAULT_MAX_TOKENS = 1024


def template_id(kind: str) -> str:
    """What stands for the prompt template in the judge's identity: ragas's prompts of this metric and
    version (metadata, not an import: the gate computes it without loading ragas)."""
    return f"ragas {importlib.metadata.version('ragas')} {kind}"


class JudgeFailed(Exception):
    """A ragas step got no valid reply from the judge; the message says why."""


@functools.cache
def _llm_class() -> type:
    """The adapter class, made on first use: ragas is imported only by suites that use it."""
    ragas_env()
    from ragas.llms.base import InstructorBaseRagasLLM

    class JudgeLLM(InstructorBaseRagasLLM):  # type: ignore[misc]
        """ragas's LLM interface answered by an aire judge (structured output, the store's cache)."""

        def __init__(self, judge: Judge, metric: str, max_tokens: int) -> None:
            self.judge = judge
            self.max_tokens = max_tokens
            self.template = template_id(metric)  # the judge's identity covers ragas's prompts

        async def agenerate(self, prompt: str, response_model: type[BaseModel]) -> BaseModel:
            reply = await self.judge.ask(
                [ChatMessage(role="user", content=prompt)],
                response_model,
                template=self.template,
                max_tokens=self.max_tokens,
            )
            if reply.value is None:
                raise JudgeFailed(reply.error or "no reply")
            return reply.value

        def generate(self, prompt: str, response_model: type[BaseModel]) -> BaseModel:
            raise TypeError("aire calls ragas metrics through ascore only")

    return JudgeLLM


async def _metric(kind: str, judge: str, max_tokens: int, **options: Any) -> Any:
    """A ragas metric asking the judge called ``judge`` of the run in progress."""
    from ragas.metrics import collections as rc

    llm = _llm_class()(await current_judge(judge), kind, max_tokens)
    if kind == "faithfulness":
        return rc.Faithfulness(llm=llm)
    if kind == "answer_relevancy":
        return rc.AnswerRelevancy(llm=llm, embeddings=embeddings(), **options)
    if kind == "context_precision":
        return rc.ContextPrecisionWithReference(llm=llm)
    if kind == "context_recall":
        return rc.ContextRecall(llm=llm)
    if kind == "factual_correctness":
        return rc.FactualCorrectness(llm=llm, **options)
    raise ValueError(kind)


async def _judged(call: Callable[[], Awaitable[Any]]) -> Score:
    """One ragas score, or NaN with the reason (a judge that failed, an input ragas refuses, a NaN)."""
    try:
        result = await call()
    except JudgeFailed as exc:
        return Score(explanation=f"judge: {exc}")
    except ValueError as exc:  # ragas's own input checks ("response is missing ...")
        return Score(explanation=f"ragas: {exc}")
    value = float(result.value)
    if math.isnan(value):
        return Score(explanation="ragas returned NaN (the judge found nothing to score)")
    reason = getattr(result, "reason", None)
    return Score(value=min(1.0, max(0.0, value)), explanation=str(reason) if reason else None)


def _reference(sample: Sample) -> str | None:
    refs = references(sample)
    return refs[0] if refs else None


async def _retrieval_score(kind: str, sample: Sample, judge: str, max_tokens: int) -> Score:
    """Context precision or recall: the retrieved contexts judged against the reference answer."""
    reference = _reference(sample)
    if reference is None:
        return NO_REFERENCE
    if not sample.contexts:
        return NO_CONTEXTS
    metric = await _metric(kind, judge, max_tokens)
    contexts = list(sample.contexts)
    return await _judged(
        lambda: metric.ascore(user_input=question_text(sample), reference=reference, retrieved_contexts=contexts)
    )


@evaluator(
    "ragas_faithfulness",
    higher_is_better=True,
    requires=("judge", "contexts"),
    judge_template=lambda _: template_id("faithfulness"),
)
async def ragas_faithfulness(
    sample: Sample, completion: Completion, *, judge: str, max_tokens: int = DEFAULT_MAX_TOKENS
) -> Score:
    """ragas Faithfulness: the share of the answer's statements that the retrieved contexts support.

    Options:
        judge: The endpoint of aire.yaml that judges.
        max_tokens: Bound on each judge reply; a reply cut off there is NaN with the reason.
    """
    if not sample.contexts:
        return NO_CONTEXTS
    metric = await _metric("faithfulness", judge, max_tokens)
    return await _judged(
        lambda: metric.ascore(
            user_input=question_text(sample), response=completion.text, retrieved_contexts=list(sample.contexts)
        )
    )


@evaluator(
    "ragas_answer_relevancy",
    higher_is_better=True,
    requires=("judge",),
    judge_template=lambda _: template_id("answer_relevancy"),
)
async def ragas_answer_relevancy(
    sample: Sample,
    completion: Completion,
    *,
    judge: str,
    strictness: int = 3,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> Score:
    """ragas AnswerRelevancy: the judge writes questions the answer would answer; the score is their
    mean cosine similarity to the real question (bundled MiniLM embeddings), 0 when noncommittal.

    Options:
        judge: The endpoint of aire.yaml that judges.
        strictness: Questions generated per answer.
        max_tokens: Bound on each judge reply.
    """
    metric = await _metric("answer_relevancy", judge, max_tokens, strictness=strictness)
    return await _judged(lambda: metric.ascore(user_input=question_text(sample), response=completion.text))


@evaluator(
    "ragas_context_precision",
    higher_is_better=True,
    requires=("judge", "contexts", "reference"),
    judge_template=lambda _: template_id("context_precision"),
)
async def ragas_context_precision(
    sample: Sample, completion: Completion, *, judge: str, max_tokens: int = DEFAULT_MAX_TOKENS
) -> Score:
    """ragas ContextPrecisionWithReference: average precision of the retrieved contexts, each judged
    useful or not for reaching the reference answer. Scores the retrieval, not the model's answer.

    Options:
        judge: The endpoint of aire.yaml that judges.
        max_tokens: Bound on each judge reply.
    """
    return await _retrieval_score("context_precision", sample, judge, max_tokens)


@evaluator(
    "ragas_context_recall",
    higher_is_better=True,
    requires=("judge", "contexts", "reference"),
    judge_template=lambda _: template_id("context_recall"),
)
async def ragas_context_recall(
    sample: Sample, completion: Completion, *, judge: str, max_tokens: int = DEFAULT_MAX_TOKENS
) -> Score:
    """ragas ContextRecall: the share of the reference's statements the judge attributes to the
    retrieved contexts. Scores the retrieval.

    Options:
        judge: The endpoint of aire.yaml that judges.
        max_tokens: Bound on each judge reply.
    """
    return await _retrieval_score("context_recall", sample, judge, max_tokens)


@evaluator(
    "ragas_factual_correctness",
    higher_is_better=True,
    requires=("judge", "reference"),
    judge_template=lambda _: template_id("factual_correctness"),
)
async def ragas_factual_correctness(
    sample: Sample,
    completion: Completion,
    *,
    judge: str,
    mode: Literal["precision", "recall", "f1"] = "f1",
    atomicity: Literal["low", "high"] = "low",
    coverage: Literal["low", "high"] = "low",
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> Score:
    """ragas FactualCorrectness: the answer's and the reference's claims, each checked against the
    other by the judge (NLI); precision, recall or F1 of the supported claims.

    Options:
        judge: The endpoint of aire.yaml that judges.
        mode: precision (answer claims the reference supports), recall, or f1.
        atomicity, coverage: How finely the judge splits claims (ragas's settings).
        max_tokens: Bound on each judge reply.
    """
    reference = _reference(sample)
    if reference is None:
        return NO_REFERENCE
    metric = await _metric("factual_correctness", judge, max_tokens, mode=mode, atomicity=atomicity, coverage=coverage)
    return await _judged(lambda: metric.ascore(response=completion.text, reference=reference))


__all__ = [
    "JudgeFailed",
    "ragas_answer_relevancy",
    "ragas_context_precision",
    "ragas_context_recall",
    "ragas_factual_correctness",
    "ragas_faithfulness",
]
