"""The endpoints file (``aire.yaml``): which OpenAI-compatible servers exist and how to serve local ones.

Example::

    endpoints:
      champion:
        base_url: http://127.0.0.1:8101/v1
        model: champion              # the served model name sent in requests
        api_key_env: null            # name of the env var holding the key; the key is never stored
        version: "1"
        serve:                       # optional: `aire serve` starts this one locally with vLLM
          port: 8101               # model_path defaults to <AIRE_HOME>/models/<endpoint name>
          cpu_cores: "0"
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aire.core.errors import ConfigError, did_you_mean, from_validation
from aire.core.yamlfile import read_mapping


class LocalServe(BaseModel):
    """How ``aire serve`` starts this endpoint's vLLM server on this machine."""

    model_config = ConfigDict(extra="forbid")

    model_path: Path | None = None
    port: int = Field(ge=1024, le=65535)
    cpu_cores: str | None = Field(None, description="OMP core binding on CPU hosts, e.g. '0' or '0-1'.")
    max_model_len: int = 64
    dtype: str = "float32"
    extra_args: list[str] = Field(default_factory=list)


class Price(BaseModel):
    """What an endpoint's tokens cost, per 1,000 (any currency; aire reports it as given)."""

    model_config = ConfigDict(extra="forbid")

    input_per_1k: float = Field(0.0, ge=0.0)
    output_per_1k: float = Field(0.0, ge=0.0)


class EndpointConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = ""
    base_url: str
    # More replicas of the same version (same weights, same served name): requests go to the least
    # loaded healthy one (aire.client.replicas); base_url stays the endpoint's identity.
    replicas: list[str] = Field(default_factory=list)
    model: str
    api_key_env: str | None = None
    version: str | None = None
    weights_digest: str | None = None
    tokenizer_digest: str | None = None
    serve: LocalServe | None = None
    price: Price | None = None  # for the cost SLIs: cost per run, per request, per quality point

    @field_validator("base_url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")

    @field_validator("replicas")
    @classmethod
    def _replica_urls(cls, v: list[str]) -> list[str]:
        return [cls._http(u) for u in v]

    @property
    def base_urls(self) -> list[str]:
        """Every replica's base URL, ``base_url`` first, each once."""
        return list(dict.fromkeys([self.base_url, *self.replicas]))

    def api_key(self) -> str | None:
        """The key itself, read at request time from the named variable; never logged."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def resolved_digest(self) -> str | None:
        """The configured digest, or the one the local model builder wrote next to the weights."""
        return self.weights_digest or self._manifest().get("weights_sha256")

    def resolved_tokenizer_digest(self) -> str | None:
        return self.tokenizer_digest or self._manifest().get("tokenizer_sha256")

    def _manifest(self) -> dict[str, Any]:
        if self.serve is not None and self.serve.model_path is not None:
            manifest = self.serve.model_path / "aire-model.json"
            if manifest.is_file():
                return dict(json.loads(manifest.read_text()))
        return {}

    def identity(self) -> dict[str, Any]:
        """What is safe to record about this endpoint (no key, only the variable's name)."""
        return {
            "endpoint": self.name,
            "base_url": self.base_url,
            "served_model": self.model,
            "model_version": self.version,
            "weights_digest": self.resolved_digest(),
        }


class AireConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoints: dict[str, EndpointConfig] = Field(default_factory=dict)

    def endpoint(self, name: str) -> EndpointConfig:
        try:
            return self.endpoints[name]
        except KeyError:
            known = ", ".join(sorted(self.endpoints)) or "none configured"
            raise ConfigError(
                f"unknown endpoint '{name}'{did_you_mean(name, self.endpoints)}; known: {known}",
                field="endpoint",
            ) from None


def load_config(path: Path, models_dir: Path) -> AireConfig:
    """Read and validate the endpoints file; a missing file is an empty config.

    ``models_dir`` is where locally served models live when ``serve.model_path`` is not given.
    """
    if not path.exists():
        return AireConfig()
    raw = read_mapping(path, AireConfig.model_fields, ConfigError)
    endpoints = raw.get("endpoints") or {}
    if not isinstance(endpoints, dict):
        raise ConfigError("expected a mapping of name -> endpoint", path=path, field="endpoints")
    parsed: dict[str, EndpointConfig] = {}
    for name, body in endpoints.items():
        try:
            ep = EndpointConfig.model_validate({**(body or {}), "name": str(name)})
        except ValidationError as exc:
            raise from_validation(exc, ConfigError, path=path, prefix=("endpoints", name)) from None
        if ep.serve is not None:
            if ep.serve.model_path is None:
                ep.serve.model_path = models_dir / str(name)
            elif not ep.serve.model_path.is_absolute():
                # Relative model paths are relative to the config file, not to the caller's cwd.
                ep.serve.model_path = (path.parent / ep.serve.model_path).resolve()
        parsed[str(name)] = ep
    return AireConfig(endpoints=parsed)
