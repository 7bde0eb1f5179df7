"""Calibrating a judge against human labels before it may gate: ``aire judge calibrate``.

A labels file is JSONL next to (or for) a suite: each row is a row of that suite (its fields render
the prompt as the suite does) plus ``response``, the answer a person judged, and ``label``, their
verdict in the judged evaluator's categories (its ``labels``, or an integer rating of its scale).
The judge is asked exactly as the suite's evaluator asks it (same template, rubric and scale, so
the same judge identity), through the same cache; its verdicts are compared with the labels.

A verdict the judge did not give (an unparseable reply, a failed request) is counted apart as
unscored, never as a disagreement or an agreement. The record (store + MLflow) is what a gate's
``min_kappa`` reads: it is keyed by the judge identity, so a changed template or new judge weights
need a new calibration.

A pairwise judge (a suite's ``pairwise:`` evaluator, e.g. ``judge_pairwise``) is calibrated on rows
with two answers, ``response_a`` and ``response_b``, and a ``label`` of ``A``, ``B`` or ``tie``: the
judge is asked as in a shadow run, with A as the champion's answer and B as the challenger's, in
both orders. Its calibration also reports the position-bias rate: the share of pairs on which it
named the same position in both orders (such a pair counts as its verdict "tie").

With ``judge_repeats`` > 1 the judge's verdict on an item is the category nearest its mean score
(what a run gates on; for two labels and an odd number of repeats, the majority), and the
calibration reports its self-agreement: how often two of its repeats on the same item agree.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from aire.core.errors import InputError
from aire.core.jsonl import read_jsonl
from aire.core.progress import reporter
from aire.core.settings import Settings
from aire.core.types import Completion, Sample
from aire.data.suites import Suite, row_fields, sample_from_row
from aire.judges.judge import POSITION_BIAS
from aire.judges.repeats import repeat_verdicts, self_agreement
from aire.judges.runtime import current_judge, judging
from aire.stats.rater_agreement import agreement

# A pairwise judge's verdicts, worst first for answer B: judge_pairwise scores B 0 (A better), 0.5, 1.
PAIRWISE_CATEGORIES = ["A", "tie", "B"]


class Calibration(BaseModel):
    """One calibration of one judge identity: what was measured and on what."""

    judge: str  # the endpoint name
    judge_id: str  # sha256 of the judge identity (endpoint, served model, weights, template)
    identity: dict[str, Any]
    suite: str
    evaluator: str
    labels_file: str
    labels_sha256: str
    categories: list[str]
    n_labelled: int
    n_scored: int
    n_unscored: int
    accuracy: float
    accuracy_ci: tuple[float, float]
    kappa: float
    kappa_ci: tuple[float, float]
    confusion: dict[str, dict[str, int]]
    length_bias: float
    length_bias_p: float
    kind: Literal["pointwise", "pairwise"] = "pointwise"
    judge_repeats: int = 1
    # Pairwise only: the share of scored pairs on which the judge named the same position in both orders.
    position_bias: float | None = None
    n_position_bias: int = 0
    # judge_repeats > 1 only: P(two repeats on one item agree), over the items with two verdicts or more.
    self_agreement: float | None = None
    n_self_agreement: int = 0
    n_split: int = 0  # items whose repeats did not all agree
    disagreements: list[dict[str, Any]] = Field(default_factory=list)
    unscored: list[dict[str, Any]] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def passes(self, min_kappa: float) -> bool:
        """The judge may gate: its kappa reaches ``min_kappa`` (NaN never does)."""
        return not math.isnan(self.kappa) and self.kappa >= min_kappa


@dataclass(frozen=True)
class Labelled:
    line: int
    sample: Sample  # pairwise: its reference is answer A (the champion's place in a shadow run)
    response: str  # the answer judged (pairwise: answer B)
    label: str
    length: int  # what the length-bias check reads: the answer's length (pairwise: B's minus A's)


def categories_of(options: dict[str, Any]) -> list[str]:
    """The verdicts a judge_rubric-style evaluator can give, worst first."""
    if options.get("labels"):
        return [str(x) for x in options["labels"]]
    return [str(r) for r in range(int(options["scale_min"]), int(options["scale_max"]) + 1)]


def read_labels(path: Path, suite: Suite, categories: list[str], *, pairwise: bool = False) -> list[Labelled]:
    """Every labelled row of ``path``, checked before any judge is asked (exit 3 names line and field)."""
    if not path.is_file():
        raise InputError("labels file not found", path=path)
    answers = ("response_a", "response_b") if pairwise else ("response",)
    needed = row_fields(suite.spec)
    out: list[Labelled] = []
    seen: dict[str, int] = {}
    for line, row in read_jsonl(path):
        for name in sorted(needed | {*answers, "label"}):
            if name not in row:
                raise InputError("missing field", path=path, line=line, field=name)
        for name in answers:
            if not isinstance(row[name], str):
                raise InputError("must be a string (an answer that was labelled)", path=path, line=line, field=name)
        label = str(row["label"])
        if label not in categories:
            raise InputError(
                f"{label!r} is not one of the judge's verdicts {categories} (the evaluator's labels or scale)",
                path=path,
                line=line,
                field="label",
            )
        sample = sample_from_row(suite.spec, row)
        if sample.id in seen:
            raise InputError(f"duplicate id (first on line {seen[sample.id]})", path=path, line=line, field="id")
        seen[sample.id] = line
        if pairwise:
            a, b = row["response_a"], row["response_b"]
            out.append(Labelled(line, sample.model_copy(update={"reference": a}), b, label, len(b) - len(a)))
        else:
            out.append(Labelled(line, sample, row["response"], label, len(row["response"])))
    if not out:
        raise InputError("no labelled rows", path=path)
    return out


def verdict_of(value: float, categories: list[str]) -> str | None:
    """The category a judge score in [0, 1] stands for (the nearest one); None for NaN (unscored).

    A mean of repeats (or a pairwise split: a tie in one order, a win in the other) can fall exactly
    between two categories: it goes to the one nearer the scale's middle, since a judge that split is
    less decided, never more; with no middle category (an even split on two labels), the lower one.
    """
    if math.isnan(value):
        return None
    x = value * (len(categories) - 1)
    low = math.floor(x + 1e-9)
    if abs(x - low - 0.5) > 1e-9:
        return categories[round(x)]
    middle = (len(categories) - 1) / 2
    return categories[low + 1 if low + 1 <= middle else low]


async def calibrate(
    settings: Settings,
    store: Any,
    suite: Suite,
    evaluator_key: str,
    bound: Any,
    labels_path: Path,
    *,
    pairwise: bool = False,
    concurrency: int = 16,
) -> Calibration:
    """Ask the judge behind ``bound`` (the suite's evaluator ``evaluator_key``; ``pairwise``: one of its
    ``pairwise:`` evaluators) about every labelled answer."""
    options = dict(bound.options)
    categories = PAIRWISE_CATEGORIES if pairwise else categories_of(options)
    rows = read_labels(labels_path, suite, categories, pairwise=pairwise)
    sem = asyncio.Semaphore(concurrency)
    progress = reporter()
    progress.start(total=len(rows), description=f"calibrating {options['judge']} on {labels_path.name}")

    async def one(item: Labelled) -> tuple[Labelled, str | None, str | None]:
        async with sem:
            score = await bound.score(item.sample, Completion(text=item.response))
        progress.advance(failed=math.isnan(score.value))
        return item, verdict_of(score.value, categories), score.explanation

    try:
        async with judging(settings, store):
            judge = await current_judge(str(options["judge"]))
            template = bound.spec.template_of(options) or ""
            results = await asyncio.gather(*(one(r) for r in rows))
    finally:
        progress.stop()
    scored = [(item, verdict) for item, verdict, _ in results if verdict is not None]
    stats = agreement(
        [item.label for item, _ in scored],
        [verdict for _, verdict in scored],
        categories,
        [item.length for item, _ in scored],
    )
    repeats = int(options.get("judge_repeats", 1))
    consistency = None
    if repeats > 1:
        listed = [repeat_verdicts(why) or [] for _, _, why in results]
        consistency = self_agreement([[v for v in verdicts if v is not None] for verdicts in listed])
    biased = [bool(why and why.startswith(POSITION_BIAS)) for _, verdict, why in results if verdict is not None]
    return Calibration(
        judge=str(options["judge"]),
        judge_id=judge.judge_id(template),
        identity=judge.identity(template),
        suite=suite.name,
        evaluator=evaluator_key,
        labels_file=str(labels_path),
        labels_sha256=hashlib.sha256(labels_path.read_bytes()).hexdigest(),
        categories=categories,
        n_labelled=len(rows),
        n_scored=stats.n,
        n_unscored=len(rows) - stats.n,
        accuracy=stats.accuracy,
        accuracy_ci=stats.accuracy_ci,
        kappa=stats.kappa,
        kappa_ci=stats.kappa_ci,
        confusion=stats.confusion,
        length_bias=stats.length_bias,
        length_bias_p=stats.length_bias_p,
        kind="pairwise" if pairwise else "pointwise",
        judge_repeats=repeats,
        position_bias=(sum(biased) / len(biased) if biased else math.nan) if pairwise else None,
        n_position_bias=sum(biased),
        self_agreement=None if consistency is None else consistency.rate,
        n_self_agreement=0 if consistency is None else consistency.n_items,
        n_split=0 if consistency is None else consistency.n_split,
        disagreements=[
            {"id": item.sample.id, "line": item.line, "label": item.label, "judge": verdict}
            for item, verdict in scored
            if verdict != item.label
        ],
        unscored=[
            {"id": item.sample.id, "line": item.line, "reason": why}
            for item, verdict, why in results
            if verdict is None
        ],
    )
