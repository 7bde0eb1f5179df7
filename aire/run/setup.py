"""What every run needs before its first request: the endpoint, the suite with its evaluators bound,
a one-line check that the endpoints answer, and the code version recorded with the run.

Offline benchmarks, shadow comparisons, the monitor's canary and the CLI's preflights all start here.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from aire.client.config import EndpointConfig, load_config
from aire.client.endpoints import EndpointClient
from aire.core.errors import ConfigError, InputError
from aire.core.settings import Settings
from aire.data.suites import EvaluatorRef, Suite, load_suite


def bind_evaluator(ref: EvaluatorRef, where: Path, field_prefix: str, settings: Settings | None = None) -> Any:
    """One suite evaluator, its options validated; errors name the suite file and field.

    With ``settings``, a judged evaluator's ``judge`` must name an endpoint of aire.yaml.
    """
    # Imported here so that `aire.data.suites` never depends on the evaluator library.
    import evaluators

    bound = evaluators.bind(ref.name, ref.options, where=str(where), field_prefix=field_prefix)
    if settings is not None and "judge" in bound.requires:
        try:
            load_config(settings.config, settings.models_dir).endpoint(str(bound.options.get("judge")))
        except ConfigError as exc:  # "unknown endpoint 'x' (did you mean: y); known: ...", here the suite's
            raise InputError(
                f"evaluator '{ref.name}': judge: {exc.message}", path=str(where), field=f"{field_prefix}.options.judge"
            ) from None
    return bound


def resolve_endpoint(settings: Settings, name: str | None, base_url: str | None, model: str | None) -> EndpointConfig:
    """A configured endpoint by name, or an ad hoc one from ``--base-url`` and ``--model``."""
    if base_url or model:
        if not (base_url and model):
            raise ConfigError("an ad hoc endpoint needs both --base-url and --model", field="base_url")
        try:
            return EndpointConfig(name=name or "adhoc", base_url=base_url, model=model)
        except ValueError as exc:
            raise ConfigError(str(exc).splitlines()[-1].strip(), field="base_url") from None
    if not name:
        raise ConfigError("give --endpoint NAME or --base-url URL --model NAME", field="endpoint")
    return load_config(settings.config, settings.models_dir).endpoint(name)


def code_version() -> str:
    """The git commit of aire's checkout (``+dirty`` with uncommitted changes), or ``unknown``."""
    repo = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    return commit + ("+dirty" if dirty else "") if commit else "unknown"


def load_suite_with_evaluators(
    settings: Settings, suite: str, limit: int | None = None
) -> tuple[Suite, dict[str, Any]]:
    """The suite's samples, and its evaluators bound (options validated) by metric key."""
    bound: dict[str, Any] = {}

    def bind(ref: EvaluatorRef, spec_path: Path, field_prefix: str) -> Any:
        bound[ref.key] = bind_evaluator(ref, spec_path, field_prefix, settings)
        return bound[ref.key]

    loaded = load_suite(
        suite,
        settings.datasets_dir,
        limit=limit,
        cache_root=settings.resolved_home() / "cache" / "datasets",
        validate_evaluator=bind,
    )
    return loaded, bound


async def check_endpoints(settings: Settings, *endpoints: EndpointConfig) -> None:
    """Fail fast, in one line, when an endpoint is down or does not serve its model."""
    for ep in endpoints:
        async with EndpointClient.from_settings(settings, ep, timeout_s=min(settings.request_timeout_s, 10.0)) as c:
            await c.check()
