"""Raw-wire abuse of the service's port never stops it from serving everyone else, promptly."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from biome.user.v1 import user_service_pb2 as pb
from biome.user.v1 import user_service_pb2_grpc
from google.protobuf.message import DecodeError

from tests.e2e.auth_helpers import PASSWORD, unique_email
from tests.e2e.harness import Service, field_violations, rpc_error

# Generous: the server answers loopback abuse in milliseconds; this only bounds a hang.
SOCKET_TIMEOUT = 10.0
RPC_TIMEOUT = 10.0
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # RFC 9113, 3.4
DATA, HEADERS, SETTINGS, PING, WINDOW_UPDATE = 0x0, 0x1, 0x4, 0x6, 0x8


def frame(kind: int, stream: int = 0, payload: bytes = b"", *, length: int | None = None) -> bytes:
    """An HTTP/2 frame; ``length`` may lie about the payload's size."""
    size = len(payload) if length is None else length
    return size.to_bytes(3, "big") + bytes([kind, 0]) + stream.to_bytes(4, "big") + payload


GARBAGE = bytes((i * 37 + 11) % 256 for i in range(64 * 1024))
OPENED = PREFACE + frame(SETTINGS)  # what a client sends first
# Each breaks HTTP/2 in a way a server must answer by ending the connection (RFC 9113).
PROTOCOL_BREAKERS = {
    "garbage-bytes": GARBAGE,
    "http1-request": b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n",
    "tls-client-hello": bytes.fromhex("16030100a5010000a10303") + bytes(160),
    "preface-then-garbage": OPENED + GARBAGE[:4096],
    "preface-then-oversized-frame": OPENED + frame(DATA, 1, length=0xFFFFFF),
    "preface-then-zero-window-update": OPENED + frame(WINDOW_UPDATE, 0, bytes(4)),
    "preface-then-malformed-settings": PREFACE + frame(SETTINGS, 0, bytes(7)),
    "preface-then-ping-before-settings": PREFACE + frame(PING, 0, bytes(8)),
}
# Each opens a connection and then stops sending, at a different point of the handshake.
STALLS = {
    "nothing": b"",
    "half-a-preface": PREFACE[:12],
    "preface-and-settings": OPENED,
    "half-a-frame": OPENED + frame(HEADERS, 1, b"\x82", length=200),
}


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT)
    sock.settimeout(SOCKET_TIMEOUT)
    return sock


def send_and_wait_for_close(port: int, payload: bytes) -> bytes:
    """Send ``payload`` and read until the server closes; fails if it has not after the timeout."""
    received = bytearray()
    with connect(port) as sock:
        try:
            sock.sendall(payload)
            while chunk := sock.recv(65536):  # socket.timeout (an OSError) propagates: no close
                received += chunk
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed while we were still sending or reading: closed all the same
    return bytes(received)


@contextlib.contextmanager
def stalled_connections(port: int, copies: int) -> Iterator[list[socket.socket]]:
    """``copies`` connections of every kind in STALLS, left open for the block's duration."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(copies):
            for prefix in STALLS.values():
                sock = connect(port)
                sockets.append(sock)
                sock.sendall(prefix)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has ended this connection (what it sent so far is read and dropped)."""
    sock.setblocking(False)
    try:
        while sock.recv(65536):
            pass
    except BlockingIOError:
        return False  # nothing more to read, and no end of stream: still open
    except ConnectionResetError:
        return True
    finally:
        sock.settimeout(SOCKET_TIMEOUT)
    return True


async def serves_promptly(service: Service) -> None:
    """A register and a read on a channel of their own, each within RPC_TIMEOUT."""
    async with grpc.aio.insecure_channel(service.target) as channel:
        stub = user_service_pb2_grpc.UserServiceStub(channel)
        user = await stub.RegisterUser(
            pb.RegisterUserRequest(
                email=unique_email("wire"), password=PASSWORD, first_name="W", last_name="A"
            ),
            timeout=RPC_TIMEOUT,
        )
        assert await stub.GetUser(pb.GetUserRequest(id=user.id), timeout=RPC_TIMEOUT) == user


@pytest.mark.parametrize("payload", PROTOCOL_BREAKERS.values(), ids=PROTOCOL_BREAKERS.keys())
async def test_a_connection_that_breaks_the_protocol_is_closed_and_others_are_served(
    service: Service, payload: bytes
) -> None:
    reply = await asyncio.to_thread(send_and_wait_for_close, service.port, payload)

    assert b"HTTP/1" not in reply  # no HTTP/1 fallback, no error page
    await serves_promptly(service)


async def test_idle_and_stalled_connections_do_not_hold_up_other_callers(
    service: Service,
) -> None:
    with stalled_connections(service.port, copies=10) as stalled:
        await serves_promptly(service)
        await asyncio.gather(*(serves_promptly(service) for _ in range(5)))
        # The server kept them all open meanwhile: the others were served alongside, not after.
        assert not any(closed_by_server(sock) for sock in stalled)
    await serves_promptly(service)


# A payload that is no protobuf of the method's request type: corrupt, or a string field that
# is not UTF-8 (proto3 requires it).
MALFORMED_PAYLOADS = (b"\xff\xff\xff", b"\x0a\x05ab", b"\x0a\x02\xc3\x28")


def unparsable_calls(channel: grpc.aio.Channel) -> Iterator[tuple[str, Any]]:
    """For every RPC, a call of it with each payload that is no message of its request type."""
    for method in pb.DESCRIPTOR.services_by_name["UserService"].methods:
        request_type = getattr(pb, method.input_type.name)
        # No serializers: the payload goes out as given, and the reply would come back as bytes.
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            f"/{method.containing_service.full_name}/{method.name}",
            request_serializer=None,
            response_deserializer=None,
        )
        for payload in MALFORMED_PAYLOADS:
            with contextlib.suppress(DecodeError):
                request_type.FromString(payload)
                continue  # a valid message of this type (e.g. an unknown field of GetJwksRequest)
            yield method.name, call(payload, timeout=RPC_TIMEOUT)


async def test_a_request_that_is_no_valid_protobuf_is_refused_and_the_server_keeps_serving(
    service: Service,
) -> None:
    for method, call in unparsable_calls(service.channel):
        error = await rpc_error(call)
        assert error.code() is not grpc.StatusCode.OK, method
    await serves_promptly(service)


async def test_a_request_that_is_no_valid_protobuf_is_invalid_argument_without_internals(
    service: Service,
) -> None:
    for method, call in unparsable_calls(service.channel):
        error = await rpc_error(call)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, (method, error)
        assert field_violations(error), method
        assert "Error" not in (error.details() or ""), error.details()
