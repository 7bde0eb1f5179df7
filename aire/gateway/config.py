"""The gateway's config file (``gateway.yaml``): what it listens on and which served names it routes.

Example::

    listen: {host: 127.0.0.1, port: 8080}
    refresh_s: 2                  # how often the route table re-reads the registry's aliases
    routes:
      aire-model:                 # the `model` clients send
        registered_model: aire-model   # MLflow registered model (default: the route's name)
        canary: 0.0               # share of requests served by the version holding `challenger`
        mirror: 0.0               # share copied, in the background, to `challenger` (shadow)
    log:
      retention_days: 14          # traffic log rows older than this are deleted
      redact: true                # PII and secret patterns masked before anything is stored
    cache: {enabled: false, semantic: false}   # temperature-0 answers, per served version

A route's upstream is never written here: it is the registered version holding ``production``
(its ``base_url`` and ``served_model`` tags), so a promotion or a rollback moves the traffic.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aire.core.errors import ConfigError, from_validation
from aire.core.yamlfile import line_of, read_mapping


class Listen(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)


class RouteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    registered_model: str | None = None
    canary: float = Field(0.0, ge=0.0, le=1.0)
    mirror: float = Field(0.0, ge=0.0, le=1.0)


class LogConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    retention_days: float = Field(14.0, gt=0)
    redact: bool = True
    queue: int = Field(10_000, ge=1, description="Records waiting to be written; beyond it they are dropped.")
    batch: int = Field(500, ge=1, description="Records per insert.")


class MirrorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue: int = Field(1000, ge=1, description="Mirrored requests waiting; beyond it they are dropped and counted.")
    concurrency: int = Field(8, ge=1)


class CacheConfig(BaseModel):
    """The response cache, for temperature-0 requests only, keyed by the served version."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    # Off by default: a semantic hit answers an equivalent prompt's continuation, and the embedding
    # costs ~20 ms of CPU a miss (aire.gateway.cache).
    semantic: bool = False
    threshold: float = Field(0.73, gt=0.0, le=1.0)
    max_entries: int = Field(4096, ge=1)
    ttl_s: float = Field(3600.0, gt=0)


class BreakerConfig(BaseModel):
    """A circuit breaker per upstream version (aire.gateway.breaker)."""

    model_config = ConfigDict(extra="forbid")

    threshold: int = Field(5, ge=1, description="Consecutive failed requests that open it.")
    open_s: float = Field(30.0, gt=0, description="How long it stays open before one trial request.")
    slow_ttft_s: float | None = Field(None, gt=0, description="A first token slower than this is a failure.")


class KeysConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    required: bool = Field(False, description="Refuse requests without a valid key (`aire keys create`).")


class OtlpConfig(BaseModel):
    """Where the request spans go (OTLP/HTTP); none: no tracing."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str | None = Field(None, description="e.g. http://127.0.0.1:5000/v1/traces (an MLflow server).")
    headers: dict[str, str] = Field(default_factory=dict, description="e.g. x-mlflow-experiment-id: '1'.")
    service: str = "aire-gateway"


class GatewayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    listen: Listen = Field(default_factory=Listen)
    refresh_s: float = Field(2.0, gt=0, le=300)
    upstream_timeout_s: float = Field(120.0, gt=0)
    # Attempts on a failure before any byte reached the client (connection refused or reset, 502/503):
    # safe to repeat, since the upstream produced nothing the client saw.
    upstream_attempts: int = Field(2, ge=1, le=10)
    max_connections: int = Field(256, ge=1)
    routes: dict[str, RouteConfig] = Field(default_factory=dict)
    log: LogConfig = Field(default_factory=LogConfig)
    mirror: MirrorConfig = Field(default_factory=MirrorConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    keys: KeysConfig = Field(default_factory=KeysConfig)
    otlp: OtlpConfig = Field(default_factory=OtlpConfig)

    def registered_model(self, route: str) -> str:
        return self.routes[route].registered_model or route


def load_gateway_config(path: Path, default_route: str) -> GatewayConfig:
    """Read and validate ``path``; a missing file routes ``default_route`` (the settings' registered model)."""
    if not path.exists():
        return GatewayConfig(routes={default_route: RouteConfig()})
    raw = read_mapping(path, GatewayConfig.model_fields, ConfigError)
    try:
        config = GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        loc = [p for p in exc.errors()[0]["loc"] if isinstance(p, str | int)]
        raise from_validation(exc, ConfigError, path=path, line=line_of(path, loc)) from None
    if not config.routes:
        raise ConfigError("no routes: name at least one served model", path=path, field="routes")
    return config
