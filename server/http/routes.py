"""The HTTP listener's application: which path answers what."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server.http.discovery import DISCOVERY_PATH, discovery_document
from server.http.jwks import JWKS_PATH, jwks_document
from server.http.probes import probe_routes
from server.operations.metrics import Metrics

METRICS_PATH = "/metrics"


def http_app(
    *,
    keys: list[dict[str, str]],
    issuer: str,
    public_url: str,
    ready: Callable[[], bool],
    metrics: Metrics | None,
) -> web.Application:
    """The JWKS, the discovery document, the probes and, when ``metrics`` is given, /metrics."""
    jwks = jwks_document(keys)
    discovery = discovery_document(issuer=issuer, public_url=public_url, keys=keys)

    async def get_jwks(request: web.Request) -> web.Response:
        return jwks.respond(request)

    async def get_discovery(request: web.Request) -> web.Response:
        return discovery.respond(request)

    app = web.Application()
    app.on_response_prepare.append(_name_no_versions)
    app.add_routes(
        [
            web.get(JWKS_PATH, get_jwks),
            web.get(DISCOVERY_PATH, get_discovery),
            *probe_routes(ready),
        ]
    )
    if metrics is not None:
        registry = metrics.registry

        async def get_metrics(request: web.Request) -> web.Response:
            # Off the loop: collecting reads /proc for the process metrics.
            body = await asyncio.to_thread(generate_latest, registry)
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        app.add_routes([web.get(METRICS_PATH, get_metrics)])
    return app


async def _name_no_versions(request: web.Request, response: web.StreamResponse) -> None:
    """``Server: user-service`` instead of aiohttp's ``Python/3.11 aiohttp/3.x``: versions help
    only someone matching them against known flaws."""
    response.headers["Server"] = "user-service"
