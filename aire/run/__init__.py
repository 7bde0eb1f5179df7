"""Running suites against endpoints: offline benchmarks, shadow comparisons and their looks, replay.

Every sample goes through one executor (``executor.run_sample``: generate, score, store); ``setup``
holds what every run needs first (endpoint, suite and evaluators, the endpoint check, code version).

Names are loaded on first use, so importing one stage does not import its neighbours' dependencies."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aire.run.executor import Target, open_target, run_all, run_sample
    from aire.run.looks import look, look_comparison, send_in_looks, settled
    from aire.run.offline import (
        OfflinePlan,
        OfflineResult,
        finalise,
        preflight,
        prepare,
        run_samples,
        run_shard,
        sending,
    )
    from aire.run.pairs import paired_data, run_pairs, send_shard, sending_pairs, warm_up
    from aire.run.replay_traffic import replay
    from aire.run.setup import (
        bind_evaluator,
        check_endpoints,
        code_version,
        load_suite_with_evaluators,
        resolve_endpoint,
    )
    from aire.run.shadow import ARMS, ShadowPlan, preflight_shadow, prepare_shadow
    from aire.run.shadow_record import ShadowResult, finalise_shadow

_WHERE = {
    "Target": "executor",
    "open_target": "executor",
    "run_all": "executor",
    "run_sample": "executor",
    "look": "looks",
    "look_comparison": "looks",
    "send_in_looks": "looks",
    "settled": "looks",
    "OfflinePlan": "offline",
    "OfflineResult": "offline",
    "finalise": "offline",
    "preflight": "offline",
    "prepare": "offline",
    "run_samples": "offline",
    "run_shard": "offline",
    "sending": "offline",
    "paired_data": "pairs",
    "run_pairs": "pairs",
    "send_shard": "pairs",
    "sending_pairs": "pairs",
    "warm_up": "pairs",
    "replay": "replay_traffic",
    "bind_evaluator": "setup",
    "check_endpoints": "setup",
    "code_version": "setup",
    "load_suite_with_evaluators": "setup",
    "resolve_endpoint": "setup",
    "ARMS": "shadow",
    "ShadowPlan": "shadow",
    "preflight_shadow": "shadow",
    "prepare_shadow": "shadow",
    "ShadowResult": "shadow_record",
    "finalise_shadow": "shadow_record",
}
__all__ = [
    "ARMS",
    "OfflinePlan",
    "OfflineResult",
    "ShadowPlan",
    "ShadowResult",
    "Target",
    "bind_evaluator",
    "check_endpoints",
    "code_version",
    "finalise",
    "finalise_shadow",
    "load_suite_with_evaluators",
    "look",
    "look_comparison",
    "open_target",
    "paired_data",
    "preflight",
    "preflight_shadow",
    "prepare",
    "prepare_shadow",
    "replay",
    "resolve_endpoint",
    "run_all",
    "run_pairs",
    "run_sample",
    "run_samples",
    "run_shard",
    "send_in_looks",
    "send_shard",
    "sending",
    "sending_pairs",
    "settled",
    "warm_up",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"aire.run.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'aire.run' has no attribute {name!r}")
