"""`aire judge calibrate`: measure an LLM judge against human labels before it may gate."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Annotated

import typer

from aire.core.errors import EXIT_FAIL, EXIT_PASS, InputError
from aire.core.settings import get_settings


def calibrate_cmd(
    labels: Annotated[
        Path,
        typer.Option(
            help="Labelled answers (JSONL): a suite's rows plus response and label "
            "(a pairwise judge: response_a, response_b and a label A, B or tie)."
        ),
    ],
    judge: Annotated[
        str | None, typer.Option(help="Judge endpoint of aire.yaml (default: the one the evaluator names).")
    ] = None,
    suite: Annotated[
        str | None, typer.Option(help="Suite whose judged evaluator is calibrated (default: the labels' folder).")
    ] = None,
    evaluator: Annotated[
        str | None, typer.Option(help="Metric key of the judged evaluator (default: the suite's only one).")
    ] = None,
    min_kappa: Annotated[
        float | None, typer.Option(min=-1.0, max=1.0, help="Exit 1 unless Cohen's kappa reaches this.")
    ] = None,
) -> None:
    """Ask the judge about every labelled answer; report accuracy, Cohen's kappa with a bootstrap CI, the
    confusion matrix, length bias, a pairwise judge's position bias and, with judge_repeats, its
    self-agreement; record it (store + MLflow), keyed by the judge's identity."""
    from aire.cli.console import RichReporter, calibration_lines, calibration_table, console
    from aire.core import set_reporter
    from aire.judges.calibrate import calibrate
    from aire.run.setup import bind_evaluator, load_suite_with_evaluators
    from aire.store import Store
    from aire.tracking.calibrations import log_calibration

    settings = get_settings()
    loaded, bound = load_suite_with_evaluators(settings, suite or str(labels.resolve().parent))
    judged = {key: ev for key, ev in bound.items() if "judge" in ev.requires and "labels" in ev.options}
    # A suite's pairwise: judges too, bound as a shadow run binds them (same options, same judge identity).
    spec_path = loaded.path / "suite.yaml"
    paired = {
        ref.key: bind_evaluator(ref, spec_path, f"pairwise[{i}]", settings)
        for i, ref in enumerate(loaded.spec.pairwise)
    }
    paired = {key: ev for key, ev in paired.items() if "judge" in ev.requires}
    candidates = {**judged, **paired}
    key = evaluator or (next(iter(candidates)) if len(candidates) == 1 else None)
    if key is None or key not in candidates:
        listed = ", ".join(candidates) or "none"
        raise InputError(
            f"choose the judged evaluator to calibrate with --evaluator (judges of this suite: {listed})",
            field="evaluator",
        )
    chosen = candidates[key]
    if judge is not None:
        chosen = type(chosen)(spec=chosen.spec, options={**chosen.options, "judge": judge})
        from aire.client.config import load_config

        load_config(settings.config, settings.models_dir).endpoint(judge)  # unknown endpoint: exit 3
    store = Store(settings.resolved_store_url)
    set_reporter(RichReporter())
    try:
        result = asyncio.run(calibrate(settings, store, loaded, key, chosen, labels, pairwise=key in paired))
        record = result.model_dump(mode="json")
        run_id = log_calibration(settings, record)
        store.put_calibration(record, mlflow_run_id=run_id)
    finally:
        store.close()
    for line in calibration_lines(result):
        console.print(line, soft_wrap=True)
    console.print(calibration_table(result))
    console.print(f"MLflow run: {run_id}   judge identity {result.judge_id[:16]}", soft_wrap=True)
    if min_kappa is None:
        raise typer.Exit(EXIT_PASS)
    ok = result.passes(min_kappa)
    kappa = "NaN" if math.isnan(result.kappa) else f"{result.kappa:.3f}"
    console.print(f"{'PASS' if ok else 'FAIL'}  kappa {kappa} >= {min_kappa:g}")
    raise typer.Exit(EXIT_PASS if ok else EXIT_FAIL)
