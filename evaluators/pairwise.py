"""Pairwise LLM-as-judge: the champion's and the challenger's answers to one prompt, judged in both
orders, scored for the challenger (1 win, 0.5 tie, 0 loss).

Used in shadow comparisons from a suite's ``pairwise:`` section, on the agreement path: the sample's
``reference`` is the champion's answer and the completion is the challenger's. Each pair is asked
twice, with the answers swapped; a judge that names the same *position* both times (A, then A) has
preferred a place, not an answer: the pair is a tie and counted as position bias (its explanation
starts with ``POSITION_BIAS``), so a biased judge cannot move the win rate.
"""

from __future__ import annotations

import functools
from typing import Literal

from pydantic import BaseModel, create_model

from aire.core.types import ChatMessage, Completion, Sample, Score
from aire.judges import POSITION_BIAS, current_judge
from evaluators.judged import check_template, question_text
from evaluators.registry import evaluator

DEFAULT_RUBRIC = "Which answer answers the question better?"
DEFAULT_TEMPLATE = "{rubric}\n\nQuestion: {question}\nAnswer A: {a}\nAnswer B: {b}\nBetter (A, B or tie):"
TEMPLATE_FIELDS = ("rubric", "question", "a", "b")


@functools.cache
def _schema() -> type[BaseModel]:
    return create_model("Preference", winner=(Literal["A", "B", "tie"], ...))


def _check(options: dict[str, object]) -> None:
    check_template(str(options["template"]), TEMPLATE_FIELDS)


def outcome(first: str, second: str) -> tuple[float, str]:
    """The challenger's score from the verdicts with the challenger as B, then as A.

    Consistent verdicts decide; the same position twice is position bias (a tie); a tie and a win is a
    half-win either way, which averages to the same 0.75 / 0.25 as one tie and one win.
    """
    as_b = {"B": 1.0, "A": 0.0, "tie": 0.5}[first]
    as_a = {"A": 1.0, "B": 0.0, "tie": 0.5}[second]
    if first != "tie" and first == second:
        return 0.5, f"{POSITION_BIAS}: the judge chose {first} in both orders"
    value = (as_b + as_a) / 2
    word = {1.0: "challenger wins", 0.0: "champion wins", 0.5: "tie"}.get(value, "split")
    return value, f"{word} (orders: {first}, {second})"


@evaluator("judge_pairwise", higher_is_better=True, validate_options=_check, requires=("judge",))
async def judge_pairwise(
    sample: Sample,
    completion: Completion,
    *,
    judge: str,
    rubric: str = DEFAULT_RUBRIC,
    template: str = DEFAULT_TEMPLATE,
) -> Score:
    """The challenger's pairwise score against the champion's answer (``sample.reference``), judged in
    both orders: 1 both wins, 0.5 a tie or position bias, 0 both losses.

    Options:
        judge: The endpoint of aire.yaml that judges.
        rubric: What the judge is asked.
        template: The prompt; fields {rubric}, {question}, {a}, {b}.
    """
    champion = "" if sample.reference is None else str(sample.reference)
    question = question_text(sample)
    asked = await current_judge(judge)
    verdicts = []
    for a, b in ((champion, completion.text), (completion.text, champion)):
        prompt = template.format(rubric=rubric, question=question, a=a, b=b)
        reply = await asked.ask([ChatMessage(role="user", content=prompt)], _schema(), template=template)
        if reply.value is None:
            return Score(explanation=reply.error)
        verdicts.append(reply.value.winner)  # type: ignore[attr-defined]
    value, why = outcome(verdicts[0], verdicts[1])
    return Score(value=value, explanation=why)
