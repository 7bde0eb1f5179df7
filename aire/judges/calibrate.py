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
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from aire.core.errors import InputError
from aire.core.jsonl import read_jsonl
from aire.core.progress import reporter
from aire.core.settings import Settings
from aire.core.types import Completion, Sample
from aire.data.suites import Suite, row_fields, sample_from_row
from aire.judges.runtime import current_judge, judging
from aire.stats.rater_agreement import agreement


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
    disagreements: list[dict[str, Any]] = Field(default_factory=list)
    unscored: list[dict[str, Any]] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def passes(self, min_kappa: float) -> bool:
        """The judge may gate: its kappa reaches ``min_kappa`` (NaN never does)."""
        return not math.isnan(self.kappa) and self.kappa >= min_kappa


@dataclass(frozen=True)
class Labelled:
    line: int
    sample: Sample
    response: str
    label: str


def categories_of(options: dict[str, Any]) -> list[str]:
    """The verdicts a judge_rubric-style evaluator can give, worst first."""
    if options.get("labels"):
        return [str(x) for x in options["labels"]]
    return [str(r) for r in range(int(options["scale_min"]), int(options["scale_max"]) + 1)]


def read_labels(path: Path, suite: Suite, categories: list[str]) -> list[Labelled]:
    """Every labelled row of ``path``, checked before any judge is asked (exit 3 names line and field)."""
    if not path.is_file():
        raise InputError("labels file not found", path=path)
    needed = row_fields(suite.spec)
    out: list[Labelled] = []
    seen: dict[str, int] = {}
    for line, row in read_jsonl(path):
        for name in sorted(needed | {"response", "label"}):
            if name not in row:
                raise InputError("missing field", path=path, line=line, field=name)
        if not isinstance(row["response"], str):
            raise InputError("must be a string (the answer that was labelled)", path=path, line=line, field="response")
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
        out.append(Labelled(line, sample, row["response"], label))
    if not out:
        raise InputError("no labelled rows", path=path)
    return out


def verdict_of(value: float, categories: list[str]) -> str | None:
    """The category a judge score in [0, 1] stands for; None for NaN (unscored)."""
    if math.isnan(value):
        return None
    return categories[round(value * (len(categories) - 1))]


async def calibrate(
    settings: Settings,
    store: Any,
    suite: Suite,
    evaluator_key: str,
    bound: Any,
    labels_path: Path,
    *,
    concurrency: int = 16,
) -> Calibration:
    """Ask the judge behind ``bound`` (the suite's evaluator ``evaluator_key``) about every labelled answer."""
    options = dict(bound.options)
    categories = categories_of(options)
    rows = read_labels(labels_path, suite, categories)
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
        [len(item.response) for item, _ in scored],
    )
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
