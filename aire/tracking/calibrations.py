"""MLflow: one run per judge calibration, with its agreement metrics, confusion matrix and record."""

from __future__ import annotations

import math
from typing import Any

from aire.core.settings import Settings
from aire.tracking.recorder import recorded
from aire.tracking.runs import _log_params_metrics, recording


def confusion_markdown(record: dict[str, Any]) -> str:
    """The confusion matrix as a markdown table: rows are the human labels, columns the judge's."""
    cats = record["categories"]
    lines = [
        f"# Calibration of judge `{record['judge']}` ({record['suite']} / {record['evaluator']})",
        "",
        f"kappa {record['kappa']:.3f} (95% CI {record['kappa_ci'][0]:.3f} to {record['kappa_ci'][1]:.3f}), "
        f"accuracy {record['accuracy']:.3f}, {record['n_scored']} scored, {record['n_unscored']} unscored",
        "",
    ]
    if record.get("position_bias") is not None:
        lines += [f"position bias {record['position_bias']:.3f} ({record['n_position_bias']} pairs)", ""]
    if record.get("self_agreement") is not None:
        lines += [
            f"self-agreement {record['self_agreement']:.3f} over {record['judge_repeats']} repeats "
            f"({record['n_split']} of {record['n_self_agreement']} items split)",
            "",
        ]
    lines += [
        "| human \\ judge | " + " | ".join(cats) + " |",
        "|---|" + "---|" * len(cats),
    ]
    lines += [f"| {h} | " + " | ".join(str(record["confusion"][h][j]) for j in cats) + " |" for h in cats]
    return "\n".join(lines) + "\n"


@recorded
def log_calibration(settings: Settings, record: dict[str, Any]) -> str:
    """Record one calibration; returns the MLflow run id."""
    metrics = {
        "judge/kappa": record["kappa"],
        "judge/kappa_ci_low": record["kappa_ci"][0],
        "judge/kappa_ci_high": record["kappa_ci"][1],
        "judge/accuracy": record["accuracy"],
        "judge/n_scored": float(record["n_scored"]),
        "judge/n_unscored": float(record["n_unscored"]),
        "judge/length_bias": record["length_bias"],
    }
    # Measured only for some judges (pairwise; judge_repeats > 1): absent, not NaN, for the others.
    for name in ("position_bias", "self_agreement"):
        if record.get(name) is not None:
            metrics[f"judge/{name}"] = record[name]
    params = {
        "judge": record["judge"],
        "judge_id": record["judge_id"],
        "suite": record["suite"],
        "evaluator": record["evaluator"],
        "labels_file": record["labels_file"],
        "labels_sha256": record["labels_sha256"],
        "identity": record["identity"],
        "kind": record.get("kind", "pointwise"),
        "judge_repeats": record.get("judge_repeats", 1),
    }
    with recording(settings) as runs:
        run_id = runs.start(
            f"calibrate:{record['judge']}/{record['evaluator']}",
            {"aire.kind": "judge-calibration", "aire.judge_id": record["judge_id"]},
        )
        _log_params_metrics(runs.client, run_id, params, {k: v for k, v in metrics.items() if not math.isnan(v)})
        runs.client.log_dict(run_id, record, "calibration.json")
        runs.client.log_text(run_id, confusion_markdown(record), "calibration.md")
    return run_id
