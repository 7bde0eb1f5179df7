"""Statistics: one-sample intervals, paired comparisons, confidence sequences, summaries.

Names are loaded on first use, so importing one stage does not import its neighbours' dependencies."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aire.stats.intervals import mean_ci, quantile_ci, quantile_ci_min_n
    from aire.stats.paired import (
        Difference,
        cluster_robust,
        mcnemar,
        paired_bootstrap,
        paired_t,
        percentile_differences,
        unpaired,
    )
    from aire.stats.paired_proportions import latent_cells, restricted_q, score_z, table_log_pmf, tango_interval
    from aire.stats.sequential import Look, SequentialInfo, confidence_sequence, fixed_n_plan, intersect, split_alpha
    from aire.stats.summary import summarise

# The aggregations a summary computes (aire.stats.intervals.AGGREGATIONS has exactly these keys, in
# this order: tests/unit/test_evaluators.py). A constant here so that the evaluator registry can check
# names without importing scipy.
AGGREGATION_NAMES = ("mean", "median", "sum", "min", "max", "p50", "p90", "p95", "p99")

_WHERE = {
    "mean_ci": "intervals",
    "quantile_ci": "intervals",
    "quantile_ci_min_n": "intervals",
    "Difference": "paired",
    "cluster_robust": "paired",
    "mcnemar": "paired",
    "paired_bootstrap": "paired",
    "paired_t": "paired",
    "percentile_differences": "paired",
    "unpaired": "paired",
    "latent_cells": "paired_proportions",
    "restricted_q": "paired_proportions",
    "score_z": "paired_proportions",
    "table_log_pmf": "paired_proportions",
    "tango_interval": "paired_proportions",
    "Look": "sequential",
    "SequentialInfo": "sequential",
    "confidence_sequence": "sequential",
    "fixed_n_plan": "sequential",
    "intersect": "sequential",
    "split_alpha": "sequential",
    "summarise": "summary",
}
__all__ = [
    "Difference",
    "Look",
    "SequentialInfo",
    "cluster_robust",
    "confidence_sequence",
    "fixed_n_plan",
    "intersect",
    "latent_cells",
    "mcnemar",
    "mean_ci",
    "paired_bootstrap",
    "paired_t",
    "percentile_differences",
    "quantile_ci",
    "quantile_ci_min_n",
    "restricted_q",
    "score_z",
    "split_alpha",
    "summarise",
    "table_log_pmf",
    "tango_interval",
    "unpaired",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"aire.stats.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'aire.stats' has no attribute {name!r}")
