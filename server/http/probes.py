"""GET /healthz (the process answers) and GET /readyz (DynamoDB answers and no drain has begun).

Kubernetes' httpGet probes read the status code; the small JSON bodies are for people.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

HEALTHZ_PATH = "/healthz"
READYZ_PATH = "/readyz"
_NOT_CACHED = {"Cache-Control": "no-store"}


def probe_routes(ready: Callable[[], bool]) -> list[web.RouteDef]:
    """The two probes; ``ready`` is the health loop's verdict (server.operations.health)."""

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"}, headers=_NOT_CACHED)

    async def readyz(request: web.Request) -> web.Response:
        if ready():
            return web.json_response({"status": "ready"}, headers=_NOT_CACHED)
        return web.json_response({"status": "not ready"}, status=503, headers=_NOT_CACHED)

    return [web.get(HEALTHZ_PATH, healthz), web.get(READYZ_PATH, readyz)]
