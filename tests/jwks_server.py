"""A JWKS endpoint on loopback for the client kit's tests: serves whatever key set it is given at
/.well-known/jwks.json (the body GetJwks answers, {"keys": [...]}), with Cache-Control max-age,
and counts the requests. Stands in for the service's HTTP listener where a test does not run it."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

JWKS_PATH = "/.well-known/jwks.json"


@dataclass
class JwksServer:
    """The set served (change ``keys`` at any time), how long it may be cached, and the count."""

    keys: list[dict[str, str]]
    max_age: int = 300
    etags: bool = False  # answer If-None-Match with 304 while the set is unchanged
    redirect_to: str | None = None  # answer 302 to this address instead of the set
    held: asyncio.Event | None = None  # answer only once this is set (a slow endpoint)
    asked: asyncio.Event = field(default_factory=asyncio.Event)  # set by each request
    requests: int = 0
    not_modified: int = 0
    base_url: str = field(default="")

    @property
    def url(self) -> str:
        return self.base_url + JWKS_PATH

    async def _serve(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.asked.set()
        if self.held is not None:
            await self.held.wait()
        if self.redirect_to is not None:
            return web.Response(status=302, headers={"Location": self.redirect_to})
        body = json.dumps({"keys": self.keys}).encode()
        headers = {"Cache-Control": f"public, max-age={self.max_age}"}
        if self.etags:
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            headers["ETag"] = etag
            if request.headers.get("If-None-Match") == etag:
                self.not_modified += 1
                return web.Response(status=304, headers=headers)
        return web.Response(body=body, content_type="application/json", headers=headers)


@asynccontextmanager
async def serving_jwks(
    keys: list[dict[str, str]], *, max_age: int = 300, etags: bool = False
) -> AsyncIterator[JwksServer]:
    """A JwksServer listening on a free loopback port until the block ends."""
    server = JwksServer(keys=list(keys), max_age=max_age, etags=etags)
    app = web.Application()
    app.router.add_get(JWKS_PATH, server._serve)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        server.base_url = f"http://127.0.0.1:{port}"
        yield server
    finally:
        await runner.cleanup()
