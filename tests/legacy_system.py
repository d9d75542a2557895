"""A stand-in for the old system's password check, on loopback: a real aiohttp server that
verifies each request's signature as README "Lazy migration" tells the old system to, and
answers as a test sets it (right, refusing, slow, garbage). It also answers the password-reset
question (``{"email", "purpose": "password_reset"}``, no password) with a known email's profile."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

SIGNATURE_TOLERANCE_SECONDS = 300


def verify_signature(header: str, body: bytes, key: bytes, now: float) -> bool:
    """The check README "Lazy migration" gives the old system: the HMAC-SHA256 of
    ``<t>.<body>`` under the shared key, and ``t`` within five minutes of now (no replays)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        sent_at = int(parts["t"])
        signature = parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs(now - sent_at) > SIGNATURE_TOLERANCE_SECONDS:
        return False
    expected = hmac.new(key, f"{sent_at}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


@dataclass
class OldSystem:
    """The accounts it knows (email -> password, profile), what it was asked, how it answers.

    ``behaviour``: "normal"; "slow" (sleeps ``delay`` first); "not-json"; "wrong-shape";
    "huge" (a body far over any cap, with its length announced); "huge-chunked" (the same,
    streamed without a length); "error" (HTTP 500); "redirect" (302 to a handler that accepts
    any password, which the hook must not follow).
    """

    key: bytes
    accounts: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    # The W3C traceparent header of each request (None: it had none).
    traceparents: list[str | None] = field(default_factory=list)
    bad_signatures: int = 0
    followed_redirects: int = 0
    behaviour: str = "normal"
    delay: float = 5.0
    # Set by a test to hold every answer until it is set: the old system is asked and has not
    # answered yet, for as long as the test needs.
    hold: asyncio.Event | None = None
    url: str = ""

    def add(self, email: str, password: str, **profile: Any) -> dict[str, Any]:
        user = {
            "id": profile.get("id", "0b6c3e0e-6f1e-4a8a-9d43-2b1f5a7c9e11"),
            "email": email,
            "first_name": profile.get("first_name", "Ada"),
            "last_name": profile.get("last_name", "Lovelace"),
            "email_confirmed": profile.get("email_confirmed", True),
        }
        self.accounts[email.casefold()] = (password, user)
        return user

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if not verify_signature(
            request.headers.get("X-Signature", ""), body, self.key, time.time()
        ):
            self.bad_signatures += 1
            return web.Response(status=403, text="bad signature")
        asked = json.loads(body)
        self.requests.append(asked)
        self.traceparents.append(request.headers.get("traceparent"))
        if self.hold is not None:
            await self.hold.wait()
        if self.behaviour == "slow":
            await asyncio.sleep(self.delay)
        if self.behaviour == "redirect":  # to a place that would say yes to anything
            raise web.HTTPFound(self.url.replace("check-password", "anything-goes"))
        if self.behaviour == "error":
            return web.Response(status=500, text="Internal Server Error")
        if self.behaviour == "not-json":
            return web.Response(status=200, text="<html>Welcome</html>")
        if self.behaviour == "wrong-shape":
            return web.json_response({"ok": True, "user": {"id": 7}})
        if self.behaviour == "huge":
            return web.Response(status=200, body=b"[" + b"0," * 500_000 + b"0]")
        if self.behaviour == "huge-chunked":
            response = web.StreamResponse(status=200)
            response.enable_chunked_encoding()
            await response.prepare(request)
            for _ in range(200):
                await response.write(b" " * 8192)
            await response.write_eof()
            return response
        known = self.accounts.get(str(asked.get("email", "")).casefold())
        if asked.get("purpose") == "password_reset" and "password" not in asked:
            # Asked at password reset: the profile of a known email, with no password to check.
            if known is None:
                return web.json_response({"error": "unknown email"}, status=401)
            return web.json_response({"user": known[1]})
        if known is None or not hmac.compare_digest(
            known[0].encode(), str(asked.get("password", "")).encode()
        ):
            return web.json_response({"error": "invalid credentials"}, status=401)
        return web.json_response({"user": known[1]})

    async def accept_anything(self, request: web.Request) -> web.Response:
        self.followed_redirects += 1
        asked = await request.json()
        return web.json_response({"user": self.add(asked["email"], asked["password"])})


@asynccontextmanager
async def old_system(key: bytes) -> AsyncIterator[OldSystem]:
    """The stand-in, listening on a free loopback port (``url``) until the block ends."""
    system = OldSystem(key)
    app = web.Application(client_max_size=64 * 1024)
    app.router.add_post("/legacy/check-password", system.handle)
    app.router.add_post("/legacy/anything-goes", system.accept_anything)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    system.url = f"http://127.0.0.1:{port}/legacy/check-password"
    try:
        yield system
    finally:
        await runner.cleanup()
