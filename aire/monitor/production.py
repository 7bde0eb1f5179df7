"""Which version holds ``production`` and the endpoint serving it: what the monitor checks."""

from __future__ import annotations

from aire.client.config import EndpointConfig, load_config
from aire.core.errors import AireError
from aire.core.settings import Settings


class MonitorError(AireError):
    """The monitor cannot run: no production alias, no endpoint for it."""


def resolve_production(settings: Settings, model: str) -> tuple[str, EndpointConfig]:
    """Registry alias -> version -> the endpoint of aire.yaml named by the version's ``endpoint`` tag."""
    from mlflow.exceptions import MlflowException

    from aire.release.registry import current
    from aire.tracking.runs import client

    version = current(settings, model, "production")
    if version is None:
        raise MonitorError(f"{model} has no 'production' alias: promote a version first (aire promote)")
    try:
        tags = client(settings).get_model_version(model, version).tags
    except MlflowException as exc:
        raise MonitorError(f"cannot read v{version} of {model}: {exc}") from None
    name = tags.get("endpoint")
    if not name:
        raise MonitorError(f"v{version} of {model} has no 'endpoint' tag: register it with aire gate")
    return version, load_config(settings.config, settings.models_dir).endpoint(name)


def canary_suite(settings: Settings, model: str, version: str, suite: str | None) -> str:
    """The golden suite of the canary: ``suite`` when given, else the one ``version`` was gated on
    (its registry ``suite`` tag, written by aire gate)."""
    if suite:
        return suite
    from aire.tracking.runs import client

    recorded = client(settings).get_model_version(model, version).tags.get("suite")
    if not recorded:
        raise MonitorError(
            f"no suite for the canary: give --suite (v{version} of {model} was not gated on a suite, "
            "so its registry version does not name one)"
        )
    return recorded
