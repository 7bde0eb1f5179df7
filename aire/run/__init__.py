"""Running suites against endpoints: offline benchmarks, shadow comparisons and their looks, replay.

Names are loaded on first use, so importing one stage does not import its neighbours' dependencies."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aire.run.looks import look_comparison
    from aire.run.offline import (
        OfflinePlan,
        OfflineResult,
        bind_evaluator,
        check_endpoints,
        code_version,
        finalise,
        fingerprinter,
        load_suite_with_evaluators,
        preflight,
        prepare,
        resolve_endpoint,
        run_samples,
    )
    from aire.run.replay import replay
    from aire.run.shadow import (
        ARMS,
        ShadowPlan,
        ShadowResult,
        finalise_shadow,
        fingerprinters,
        look,
        preflight_shadow,
        prepare_shadow,
        run_pairs,
        settled,
        warm_up,
    )

_WHERE = {
    "look_comparison": "looks",
    "OfflinePlan": "offline",
    "OfflineResult": "offline",
    "bind_evaluator": "offline",
    "check_endpoints": "offline",
    "code_version": "offline",
    "finalise": "offline",
    "fingerprinter": "offline",
    "load_suite_with_evaluators": "offline",
    "preflight": "offline",
    "prepare": "offline",
    "resolve_endpoint": "offline",
    "run_samples": "offline",
    "replay": "replay",
    "ARMS": "shadow",
    "ShadowPlan": "shadow",
    "ShadowResult": "shadow",
    "finalise_shadow": "shadow",
    "fingerprinters": "shadow",
    "look": "shadow",
    "preflight_shadow": "shadow",
    "prepare_shadow": "shadow",
    "run_pairs": "shadow",
    "settled": "shadow",
    "warm_up": "shadow",
}
__all__ = [
    "ARMS",
    "OfflinePlan",
    "OfflineResult",
    "ShadowPlan",
    "ShadowResult",
    "bind_evaluator",
    "check_endpoints",
    "code_version",
    "finalise",
    "finalise_shadow",
    "fingerprinter",
    "fingerprinters",
    "load_suite_with_evaluators",
    "look",
    "look_comparison",
    "preflight",
    "preflight_shadow",
    "prepare",
    "prepare_shadow",
    "replay",
    "resolve_endpoint",
    "run_pairs",
    "run_samples",
    "settled",
    "warm_up",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"aire.run.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'aire.run' has no attribute {name!r}")
