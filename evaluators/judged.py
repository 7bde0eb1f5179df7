"""Pointwise LLM-as-judge: a rubric, the question, the answer (and the reference) sent to a judge
endpoint, which answers a score on a declared scale as JSON that validates against a schema.

The judge is an endpoint of aire.yaml named in the suite (``judge: NAME``); its calls are cached in
the store (aire.judges). A reply that does not validate, or a failed judge request, is NaN with the
reason: counted apart, never a zero.

``judge_repeats: r`` asks the judge r times per sample (sampled, one seed per repeat: see
``aire.judges.repeats``) and scores the sample with the mean of the repeats that parsed.
"""

from __future__ import annotations

import functools
import math
from statistics import fmean
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, create_model

from aire.core.types import ChatMessage, Completion, Sample, Score
from aire.judges import ask_repeats, current_judge, explain_repeats
from evaluators._text import references
from evaluators.options import OptionError
from evaluators.registry import evaluator

DEFAULT_RUBRIC = "Is the answer correct and does it answer the question?"
# The fields a template may use; {reference} is empty for a sample without one.
DEFAULT_TEMPLATE = "{rubric}\n\nQuestion: {question}\nReference answer: {reference}\nAnswer: {answer}\n"
TEMPLATE_FIELDS = ("rubric", "question", "answer", "reference")


def question_text(sample: Sample) -> str:
    """The prompt as the judge reads it: the completion prompt, or the last user message of a chat."""
    if isinstance(sample.prompt, str):
        return sample.prompt
    users = [m.content for m in sample.prompt if m.role == "user"]
    return users[-1] if users else sample.prompt[-1].content


@functools.cache  # one model per declared scale: building a pydantic model per sample costs milliseconds
def _reply_schema(labels: tuple[str, ...] | None, low: int, high: int, rationale: bool = False) -> type[BaseModel]:
    # The rationale comes first: a judge generates left to right, so a verdict written after its
    # reasons can depend on them (the tiny local judge decides only this way; see infra/build_models.py).
    reasons: dict[str, Any] = {"rationale": (str, ...)} if rationale else {}
    # An enum, not a range: structured-output engines enforce enums on every server that has them.
    if labels:
        return create_model("Verdict", **reasons, verdict=(Literal[labels], ...))  # type: ignore[valid-type]
    return create_model("Rating", **reasons, score=(Literal[tuple(range(low, high + 1))], ...))  # type: ignore[valid-type]


def _check(options: dict[str, Any]) -> None:
    if options["labels"] is not None and len(set(options["labels"])) < 2:
        raise OptionError("labels", "needs at least two distinct labels (worst first)")
    if options["scale_min"] >= options["scale_max"]:
        raise OptionError("scale_max", "must be greater than scale_min")
    check_template(options["template"], TEMPLATE_FIELDS)


def check_template(template: str, fields: tuple[str, ...]) -> None:
    """A judge prompt template may use only ``fields``, with balanced braces (checked at load time)."""
    try:
        template.format(**dict.fromkeys(fields, ""))
    except (KeyError, IndexError, ValueError) as exc:
        raise OptionError("template", f"unknown field or bad brace in template ({exc}); fields: {fields}") from None


@evaluator("judge_rubric", higher_is_better=True, validate_options=_check, requires=("judge",))
async def judge_rubric(
    sample: Sample,
    completion: Completion,
    *,
    judge: str,
    rubric: str = DEFAULT_RUBRIC,
    template: str = DEFAULT_TEMPLATE,
    labels: Annotated[list[str] | None, Field(min_length=2)] = None,
    scale_min: int = 1,
    scale_max: int = 5,
    judge_repeats: Annotated[int, Field(ge=1)] = 1,
    rationale: bool = False,
) -> Score:
    """A judge's score of the answer against a rubric, on a declared scale, normalised to [0, 1].

    Options:
        judge: The endpoint of aire.yaml that judges.
        rubric: What the judge is asked.
        template: The judge's prompt; fields {rubric}, {question}, {answer}, {reference}.
        labels: Categorical verdicts, worst first (e.g. ["no", "yes"], quoted: YAML reads a bare
            no/yes as false/true): label i of n scores i / (n - 1).
        scale_min, scale_max: Without labels, an integer rating in this range, scored
            (rating - min) / (max - min).
        judge_repeats: Ask the judge this many times per sample (at temperature 1, one seed per
            repeat) and score the mean of the repeats that gave a verdict; the explanation lists
            every repeat's verdict. 1: one greedy judgement.
        rationale: Ask for a ``rationale`` before the verdict in the reply (reason first, then
            decide); it becomes the score's explanation, the rationale of its MLflow feedback.
    """
    refs = references(sample)
    prompt = template.format(
        rubric=rubric, question=question_text(sample), answer=completion.text, reference=refs[0] if refs else ""
    )
    schema = _reply_schema(tuple(labels) if labels else None, scale_min, scale_max, rationale)
    asked = await current_judge(judge)
    messages = [ChatMessage(role="user", content=prompt)]
    replies = await ask_repeats(asked, messages, schema, template=template, repeats=judge_repeats)
    field = "verdict" if labels else "score"
    verdicts = [None if r.value is None else getattr(r.value, field) for r in replies]
    values = [
        labels.index(v) / (len(labels) - 1) if labels else (v - scale_min) / (scale_max - scale_min)
        for v in verdicts
        if v is not None
    ]
    error = next((r.error for r in replies if r.value is None), None)
    if judge_repeats == 1:
        if not values:
            return Score(explanation=error)
        why = f"judge: {verdicts[0]}"
        return Score(value=values[0], explanation=f"{why} ({replies[0].value.rationale})" if rationale else why)  # type: ignore[union-attr]
    # One number per sample, however many repeats: the summary's and the gate's intervals count
    # samples, so the repeats are clustered by sample by construction, and the judge's noise is part of
    # each sample's score, hence of the between-sample spread those intervals are built from.
    return Score(value=fmean(values) if values else math.nan, explanation=explain_repeats(verdicts, error))
