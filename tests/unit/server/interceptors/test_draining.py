"""The drain gate: once closed it refuses new calls UNAVAILABLE, lets running ones finish."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest
import pytest_asyncio
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from server.interceptors.draining import DrainGate


@dataclass
class Gated:
    gate: DrainGate
    channel: grpc.aio.Channel
    release: asyncio.Event = field(default_factory=asyncio.Event)
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    started: list[str] = field(default_factory=list)

    async def call(self, service: str) -> bytes:
        method = self.channel.unary_unary(
            f"/{service}/Work", request_serializer=bytes, response_deserializer=bytes
        )
        reply: bytes = await method(b"", timeout=10)
        return reply


@pytest_asyncio.fixture
async def gated() -> AsyncIterator[Gated]:
    gate = DrainGate(["test.Gated"])
    server = grpc.aio.server(interceptors=[gate])
    holder: list[Gated] = []

    def handlers(service: str) -> grpc.GenericRpcHandler:
        async def work(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            holder[0].started.append(service)
            holder[0].entered.set()
            await holder[0].release.wait()
            return b"done"

        return grpc.method_handlers_generic_handler(
            service, {"Work": grpc.unary_unary_rpc_method_handler(work)}
        )

    server.add_generic_rpc_handlers((handlers("test.Gated"), handlers("test.Other")))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        holder.append(Gated(gate, channel))
        yield holder[0]
    await server.stop(None)


async def test_a_closed_gate_refuses_new_calls_unavailable_with_retry_info_before_they_start(
    gated: Gated,
) -> None:
    gated.gate.close()

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await gated.call("test.Gated")
    refused = raised.value

    assert refused.code() is grpc.StatusCode.UNAVAILABLE
    status = rpc_status.from_call(refused)  # type: ignore[arg-type]
    assert status is not None
    assert any(detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for detail in status.details)
    assert gated.started == []


async def test_calls_under_way_finish_and_the_gate_is_quiet_only_after_them(gated: Gated) -> None:
    running = asyncio.create_task(gated.call("test.Gated"))
    await asyncio.wait_for(gated.entered.wait(), timeout=5)
    gated.gate.close()

    assert gated.gate.under_way == 1
    assert not await gated.gate.wait_until_quiet(0.3)

    gated.release.set()
    assert await running == b"done"
    assert await gated.gate.wait_until_quiet(5)
    assert gated.gate.under_way == 0


async def test_services_outside_the_gate_are_served_while_it_is_closed(gated: Gated) -> None:
    gated.gate.close()
    gated.release.set()

    assert await gated.call("test.Other") == b"done"
