"""The AI gateway (``aire gateway``): an OpenAI-compatible proxy in front of the vLLM replicas that
routes each served name to the version holding ``production`` in the registry, mirrors a share to
``challenger``, and logs every request to the store off the request path.

``config`` reads gateway.yaml; ``routes`` keeps the route table fresh from the registry; ``requests``
checks what clients send and writes OpenAI-style errors; ``upstream`` sends and relays; ``mirror``
sends the shadow copies; ``traffic_log`` writes the log; ``app`` is the server; ``server`` runs it;
``cache`` keeps answers to deterministic requests per served version (exact, and semantic behind
``cache_guard``), not yet called by ``app``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aire.gateway.app import Gateway
    from aire.gateway.cache import CacheHit, CacheStats, ResponseCache
    from aire.gateway.config import GatewayConfig, load_gateway_config
    from aire.gateway.routes import Route, RouteTable, Upstream
    from aire.gateway.server import serve

_WHERE = {
    "CacheHit": "cache",
    "CacheStats": "cache",
    "Gateway": "app",
    "GatewayConfig": "config",
    "Route": "routes",
    "RouteTable": "routes",
    "Upstream": "routes",
    "load_gateway_config": "config",
    "ResponseCache": "cache",
    "serve": "server",
}
__all__ = [
    "CacheHit",
    "CacheStats",
    "Gateway",
    "GatewayConfig",
    "ResponseCache",
    "Route",
    "RouteTable",
    "Upstream",
    "load_gateway_config",
    "serve",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"aire.gateway.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'aire.gateway' has no attribute {name!r}")
