"""Running the gateway: aiohttp's server, with a graceful stop on SIGTERM/SIGINT (in-flight requests,
streams included, finish for up to ``DRAIN_S``; then the traffic log is written out)."""

from __future__ import annotations

import contextlib
import logging

from aiohttp import web

from aire.client.config import AireConfig
from aire.core.settings import Settings
from aire.gateway.app import Gateway
from aire.gateway.config import GatewayConfig

DRAIN_S = 30.0


def serve(settings: Settings, config: GatewayConfig, endpoints: AireConfig, host: str, port: int) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    gateway = Gateway(settings, config, endpoints)
    loop = None
    if settings.gateway_uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            loop = uvloop.new_event_loop()
    # No access log: the traffic log (in the store) is the record of every request, written off the path.
    web.run_app(
        gateway.app(),
        loop=loop,
        host=host,
        port=port,
        access_log=None,
        shutdown_timeout=DRAIN_S,
        print=lambda line: logging.getLogger("aire.gateway").info("%s", line),
    )
