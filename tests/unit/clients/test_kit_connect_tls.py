"""The client kit's connect() speaks TLS to any target not on this machine unless told tls=False:
what reaches a listener is a TLS handshake, never the HTTP/2 preface with the API key after it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from user_service_client import Unavailable, channel, connect, pb
from user_service_client.channel import is_loopback

API_KEY = "kit-test-api-key-0123456789"
HTTP2_PREFACE = b"PRI * HTTP/2.0"
TLS_HANDSHAKE = 0x16  # the first byte of a TLS record carrying a ClientHello


@pytest.fixture
def remote(monkeypatch: pytest.MonkeyPatch) -> None:
    """connect() takes every target for another machine's. The listener stays on loopback (tests
    serve nothing beyond it); what connect() decides for a real remote host is the is_loopback
    table below."""
    monkeypatch.setattr(channel, "is_loopback", lambda target: False)


@asynccontextmanager
async def listener(host: str) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A TCP listener on ``host`` that records the first bytes each connection sends, then
    hangs up; yields its target and the record."""
    received: list[bytes] = []

    async def first_bytes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            received.append(await asyncio.wait_for(reader.read(4096), timeout=5))
        finally:
            writer.close()

    server = await asyncio.start_server(first_bytes, host, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"{host}:{port}", received
    finally:
        server.close()
        await server.wait_closed()


async def first_bytes_of_a_call(target: str, received: list[bytes], **kwargs: object) -> bytes:
    async with connect(target, api_key=API_KEY, **kwargs) as client:  # type: ignore[arg-type]
        with pytest.raises(Unavailable):  # a write the kit does not retry: one connection
            await client.RegisterUser(pb.RegisterUserRequest(), timeout=5)
    assert received, "nothing reached the listener"
    return received[0]


@pytest.mark.usefixtures("remote")
async def test_a_target_off_this_machine_gets_tls_by_default() -> None:
    async with listener("127.0.0.1") as (target, received):
        sent = await first_bytes_of_a_call(target, received)

    assert sent[0] == TLS_HANDSHAKE
    assert HTTP2_PREFACE not in sent and API_KEY.encode() not in sent


@pytest.mark.usefixtures("remote")
async def test_plaintext_off_this_machine_only_when_asked_for() -> None:
    async with listener("127.0.0.1") as (target, received):
        sent = await first_bytes_of_a_call(target, received, tls=False)

    assert sent.startswith(HTTP2_PREFACE)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_loopback_target_stays_plaintext_by_default(host: str) -> None:
    async with listener("127.0.0.1") as (target, received):
        port = target.rsplit(":", 1)[1]
        sent = await first_bytes_of_a_call(f"{host}:{port}", received)

    assert sent.startswith(HTTP2_PREFACE)


async def test_tls_true_turns_tls_on_on_loopback_too() -> None:
    async with listener("127.0.0.1") as (target, received):
        sent = await first_bytes_of_a_call(target, received, tls=True)

    assert sent[0] == TLS_HANDSHAKE


def test_certificates_with_tls_false_are_refused() -> None:
    with pytest.raises(ValueError, match="need TLS"):
        connect("127.0.0.1:1", root_certificates=b"-----BEGIN CERTIFICATE-----", tls=False)


@pytest.mark.parametrize(
    "target",
    [
        "127.0.0.1:50051",
        "127.8.9.10:50051",
        "localhost:50051",
        "LocalHost:50051",
        "localhost",
        "[::1]:50051",
        "[::ffff:127.0.0.1]:50051",
        "dns:///localhost:50051",
        "dns://10.0.0.53/127.0.0.1:50051",
        "ipv4:127.0.0.1:50051,127.0.0.2:50051",
        "ipv6:[::1]:50051",
        "unix:/run/user-service.sock",
    ],
)
def test_loopback_targets(target: str) -> None:
    assert is_loopback(target)


@pytest.mark.parametrize(
    "target",
    [
        "users.internal:443",
        "10.0.0.5:50051",
        "192.0.2.2:50051",
        "0.0.0.0:50051",
        "[2001:db8::1]:443",
        "dns:///users.internal:443",
        "dns://127.0.0.1/users.internal:443",
        "ipv4:127.0.0.1:50051,10.0.0.1:50051",
        "localhost.example.com:443",
        "127.0.0.1.example.com:443",
        "",
    ],
)
def test_targets_off_this_machine(target: str) -> None:
    assert not is_loopback(target)
