"""Pointwise LLM-as-judge: a rubric, the question, the answer (and the reference) sent to a judge
endpoint, which answers a score on a declared scale as JSON that validates against a schema.

The judge is an endpoint of aire.yaml named in the suite (``judge: NAME``); its calls are cached in
the store (aire.judges). A reply that does not validate, or a failed judge request, is NaN with the
reason: counted apart, never a zero.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, create_model

from aire.core.types import ChatMessage, Completion, Sample, Score
from aire.judges import current_judge
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
def _reply_schema(labels: tuple[str, ...] | None, low: int, high: int) -> type[BaseModel]:
    # An enum, not a range: structured-output engines enforce enums on every server that has them.
    if labels:
        return create_model("Verdict", verdict=(Literal[labels], ...))  # type: ignore[valid-type]
    return create_model("Rating", score=(Literal[tuple(range(low, high + 1))], ...))  # type: ignore[valid-type]


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
    """
    refs = references(sample)
    prompt = template.format(
        rubric=rubric, question=question_text(sample), answer=completion.text, reference=refs[0] if refs else ""
    )
    schema = _reply_schema(tuple(labels) if labels else None, scale_min, scale_max)
    asked = await current_judge(judge)
    reply = await asked.ask([ChatMessage(role="user", content=prompt)], schema, template=template)
    if reply.value is None:
        return Score(explanation=reply.error)
    if labels:
        verdict = reply.value.verdict  # type: ignore[attr-defined]
        return Score(value=labels.index(verdict) / (len(labels) - 1), explanation=f"judge: {verdict}")
    rating = reply.value.score  # type: ignore[attr-defined]
    return Score(value=(rating - scale_min) / (scale_max - scale_min), explanation=f"judge: {rating}")
