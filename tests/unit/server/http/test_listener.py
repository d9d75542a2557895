"""The HTTP listener's socket and connection handling, on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

from server.http import listener
from server.http.listener import HttpListener, start_http_listener


@asynccontextmanager
async def listening(host: str = "127.0.0.1") -> AsyncIterator[HttpListener]:
    http = await start_http_listener(
        host=host,
        port=0,
        ssl_context=None,
        public_url=None,
        keys=[],
        issuer="urn:test",
        ready=lambda: True,
        metrics=None,
    )
    try:
        yield http
    finally:
        await http.stop()


async def test_the_server_header_names_the_service_and_no_versions() -> None:
    async with listening() as http, aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{http.port}/healthz") as response:
            assert response.status == 200
            assert response.headers["Server"] == "user-service"
        async with session.get(f"http://127.0.0.1:{http.port}/nowhere") as response:
            assert response.status == 404
            assert response.headers["Server"] == "user-service"


async def test_an_idle_keep_alive_connection_is_closed_soon(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # aiohttp's own default keeps an idle connection an hour: idle ones would pile up.
    monkeypatch.setattr(listener, "KEEPALIVE_TIMEOUT_SECONDS", 0.3)
    async with listening() as http:
        reader, writer = await asyncio.open_connection("127.0.0.1", http.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200")
        length = int(
            next(
                line.split(b":")[1]
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
        )
        await reader.readexactly(length)
        # Idle now: the server closes the connection (EOF) well within a few seconds.
        assert await asyncio.wait_for(reader.read(1), 5) == b""
        writer.close()


async def test_listening_on_all_ipv6_interfaces_takes_ipv4_too() -> None:
    # As the gRPC port's "[::]" does: a kubelet probing the pod's IPv4 address must get through.
    if not socket.has_dualstack_ipv6():
        pytest.fail("this machine cannot open a dual-stack socket; the test needs one")
    async with listening("::") as http, aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{http.port}/healthz") as response:
            assert response.status == 200
