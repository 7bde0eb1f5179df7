"""The scorer library: evaluators registered by name, referenced by suites.

``import evaluators`` registers every builtin; installed plugins add theirs through the
``aire.evaluators`` entry points, read when a name is not known yet. Suites name them in
``suite.yaml``; ``bind`` checks a name and its options when the suite loads, and
``BoundEvaluator.score`` scores one completion.
"""

from __future__ import annotations

from aire.core.types import Score

# Imported for their side effect: each module registers its evaluators with the registry.
from evaluators import (  # noqa: F401
    confidence,
    judged,
    length,
    match,
    numeric,
    overlap,
    pairwise,
    ragas_judged,
    ragas_text,
    safety,
    structured,
)
from evaluators.registry import (
    KNOWN_AGGREGATIONS,
    BoundEvaluator,
    DuplicateEvaluator,
    EvaluatorSpec,
    OptionError,
    UnknownEvaluator,
    bind,
    evaluator,
    get,
    registry,
)

__all__ = [
    "KNOWN_AGGREGATIONS",
    "BoundEvaluator",
    "DuplicateEvaluator",
    "EvaluatorSpec",
    "OptionError",
    "Score",
    "UnknownEvaluator",
    "bind",
    "evaluator",
    "get",
    "registry",
]
