"""Connections are aged out (USER_SERVICE_MAX_CONNECTION_AGE_SECONDS): a client's next call after
the age goes over a new connection, which a Kubernetes Service may route to another replica."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import grpc
from biome.user.v1 import user_service_pb2 as pb
from biome.user.v1 import user_service_pb2_grpc

from server.app import running_service
from server.operations.logging_config import JsonFormatter
from tests.e2e.harness import service_settings


def peers_of(stream: io.StringIO) -> list[str]:
    return [
        entry["peer"]
        for entry in map(json.loads, stream.getvalue().splitlines())
        if entry.get("method", "").endswith("/GetJwks")
    ]


async def test_a_client_connection_is_replaced_after_the_maximum_age(moto_endpoint: str) -> None:
    settings = service_settings(moto_endpoint, max_connection_age_seconds=1)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("user_service.access")
    access.addHandler(handler)
    old_level = access.level
    access.setLevel(logging.INFO)
    try:
        async with (
            running_service(settings, address="127.0.0.1:0") as running,
            grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel,
        ):
            stub = user_service_pb2_grpc.UserServiceStub(channel)
            await stub.GetJwks(pb.GetJwksRequest(), timeout=5)
            await stub.GetJwks(pb.GetJwksRequest(), timeout=5)
            await asyncio.sleep(2.5)  # past the age and its jitter: GOAWAY sent, connection closed
            await stub.GetJwks(pb.GetJwksRequest(), wait_for_ready=True, timeout=5)
    finally:
        access.removeHandler(handler)
        access.setLevel(old_level)

    first, second, after = peers_of(stream)
    assert first == second  # one connection while it is young
    assert after != first  # another connection (another client port) once it aged out
