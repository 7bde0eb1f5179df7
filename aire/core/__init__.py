"""Settings, the error hierarchy and its exit codes, the shared record types, YAML and progress helpers.

Names are loaded on first use, so importing one stage does not import its neighbours' dependencies."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aire.core.errors import (
        EXIT_ERROR,
        EXIT_FAIL,
        EXIT_INCONCLUSIVE,
        EXIT_PASS,
        AireError,
        ConcurrentPromotion,
        ConfigError,
        EndpointError,
        InputError,
        PromotionRefused,
        RollbackError,
        ServingError,
        SuiteError,
        TrackingError,
        did_you_mean,
    )
    from aire.core.formatting import fmt, fmt_ci
    from aire.core.progress import reporter, set_reporter
    from aire.core.settings import QUIET_ENV, Settings, get_settings, quiet_environment
    from aire.core.types import (
        ChatMessage,
        Completion,
        CompletionError,
        Estimate,
        GenerationParams,
        Sample,
        Score,
        Summary,
        Verdict,
    )
    from aire.core.yamlfile import read_mapping

_WHERE = {
    "AireError": "errors",
    "ConcurrentPromotion": "errors",
    "ConfigError": "errors",
    "EXIT_ERROR": "errors",
    "EXIT_FAIL": "errors",
    "EXIT_INCONCLUSIVE": "errors",
    "EXIT_PASS": "errors",
    "EndpointError": "errors",
    "InputError": "errors",
    "PromotionRefused": "errors",
    "RollbackError": "errors",
    "ServingError": "errors",
    "SuiteError": "errors",
    "TrackingError": "errors",
    "did_you_mean": "errors",
    "fmt": "formatting",
    "fmt_ci": "formatting",
    "reporter": "progress",
    "set_reporter": "progress",
    "QUIET_ENV": "settings",
    "Settings": "settings",
    "get_settings": "settings",
    "quiet_environment": "settings",
    "ChatMessage": "types",
    "Completion": "types",
    "CompletionError": "types",
    "Estimate": "types",
    "GenerationParams": "types",
    "Sample": "types",
    "Score": "types",
    "Summary": "types",
    "Verdict": "types",
    "read_mapping": "yamlfile",
}
__all__ = [
    "EXIT_ERROR",
    "EXIT_FAIL",
    "EXIT_INCONCLUSIVE",
    "EXIT_PASS",
    "QUIET_ENV",
    "AireError",
    "ChatMessage",
    "Completion",
    "CompletionError",
    "ConcurrentPromotion",
    "ConfigError",
    "EndpointError",
    "Estimate",
    "GenerationParams",
    "InputError",
    "PromotionRefused",
    "RollbackError",
    "Sample",
    "Score",
    "ServingError",
    "Settings",
    "SuiteError",
    "Summary",
    "TrackingError",
    "Verdict",
    "did_you_mean",
    "fmt",
    "fmt_ci",
    "get_settings",
    "quiet_environment",
    "read_mapping",
    "reporter",
    "set_reporter",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"aire.core.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'aire.core' has no attribute {name!r}")
