"""Repeated judgements (``judge_repeats``): one judge asked several times about one item, and what it
said read back.

A judged evaluator with ``judge_repeats: r`` asks its judge r times per sample (each repeat sampled
with its own seed: its own cache entry) and scores the sample with the mean of the repeats it could
parse. Its explanation lists every repeat's verdict as JSON after ``REPEATS``, so the judge's
inconsistency shows on each sample, and ``aire judge calibrate`` measures it (``self_agreement``)
from the same scores a run keeps, without a channel beside ``Score``.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from collections.abc import Sequence

from pydantic import BaseModel

from aire.core.types import ChatMessage
from aire.judges.judge import Judge, JudgeReply, M

REPEATS = "judge repeats"


async def ask_repeats(
    judge: Judge, messages: list[ChatMessage], schema: type[M], *, template: str, repeats: int
) -> list[JudgeReply[M]]:
    """``repeats`` judgements of one prompt; one repeat is the plain greedy request (its old cache key)."""
    if repeats == 1:
        return [await judge.ask(messages, schema, template=template)]
    asked = (judge.ask(messages, schema, template=template, repeat=j) for j in range(repeats))
    return list(await asyncio.gather(*asked))


def explain_repeats(verdicts: Sequence[str | int | None], error: str | None) -> str:
    """``judge repeats: ["yes", "no", null]`` (null: no verdict), then why the first missing one is missing."""
    text = f"{REPEATS}: {json.dumps(list(verdicts))}"
    missing = sum(v is None for v in verdicts)
    if missing:
        text += f"; {missing} of {len(verdicts)} without a verdict, first: {error}"
    return text


def repeat_verdicts(explanation: str | None) -> list[str | None] | None:
    """The verdicts an explanation of ``explain_repeats`` lists, as strings (None: no verdict); None
    when the explanation lists none (a single judgement, or another evaluator's)."""
    head = f"{REPEATS}: "
    if not explanation or not explanation.startswith(head):
        return None
    try:
        listed, _ = json.JSONDecoder().raw_decode(explanation, len(head))
    except ValueError:
        return None
    if not isinstance(listed, list):
        return None
    return [None if v is None else str(v) for v in listed]


class SelfAgreement(BaseModel):
    """How consistent a judge is with itself across repeats of the same item."""

    rate: float  # P(two repeats on one item agree), averaged over items; NaN when none had two verdicts
    n_items: int  # items with at least two verdicts (the others cannot show a disagreement)
    n_split: int  # of those, items whose repeats did not all agree


def self_agreement(items: Sequence[Sequence[str]]) -> SelfAgreement:
    """Per item, the share of its pairs of repeats that agree (Fleiss' per-item agreement), averaged.

    The share of pairs rather than "all repeats agree": it does not shrink as ``judge_repeats`` grows,
    so calibrations with different repeats compare.
    """
    rates: list[float] = []
    split = 0
    for verdicts in items:
        n = len(verdicts)
        if n < 2:
            continue
        counts = Counter(verdicts)
        rates.append(sum(c * (c - 1) for c in counts.values()) / (n * (n - 1)))
        split += len(counts) > 1
    return SelfAgreement(rate=sum(rates) / len(rates) if rates else math.nan, n_items=len(rates), n_split=split)
