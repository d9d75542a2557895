"""The concurrency cap: beyond it a call is refused at once, RESOURCE_EXHAUSTED with RetryInfo,
counting the calls the drain gate counts; other services are never refused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest
import pytest_asyncio
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from server.interceptors.concurrency_limit import ConcurrencyLimit
from server.interceptors.draining import DrainGate

LIMIT = 3


@dataclass
class Limited:
    gate: DrainGate
    channel: grpc.aio.Channel
    release: asyncio.Event = field(default_factory=asyncio.Event)
    started: list[str] = field(default_factory=list)
    progress: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def call(self, service: str) -> bytes:
        method = self.channel.unary_unary(
            f"/{service}/Work", request_serializer=bytes, response_deserializer=bytes
        )
        reply: bytes = await method(b"", timeout=10)
        return reply

    async def until_started(self, count: int) -> None:
        async with self.progress:
            await asyncio.wait_for(
                self.progress.wait_for(lambda: len(self.started) >= count), timeout=5
            )


@pytest_asyncio.fixture
async def limited() -> AsyncIterator[Limited]:
    gate = DrainGate(["test.Limited"])
    server = grpc.aio.server(interceptors=[gate, ConcurrencyLimit(gate, LIMIT, ["test.Limited"])])
    holder: list[Limited] = []

    def handlers(service: str) -> grpc.GenericRpcHandler:
        async def work(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            holder[0].started.append(service)
            async with holder[0].progress:
                holder[0].progress.notify_all()
            await holder[0].release.wait()
            return b"done"

        return grpc.method_handlers_generic_handler(
            service, {"Work": grpc.unary_unary_rpc_method_handler(work)}
        )

    server.add_generic_rpc_handlers((handlers("test.Limited"), handlers("test.Other")))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        holder.append(Limited(gate, channel))
        yield holder[0]
        holder[0].release.set()
    await server.stop(None)


async def test_beyond_the_limit_a_call_is_refused_at_once_with_retry_info(
    limited: Limited,
) -> None:
    running = [asyncio.ensure_future(limited.call("test.Limited")) for _ in range(LIMIT)]
    await limited.until_started(LIMIT)

    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await limited.call("test.Limited")
    waited = time.monotonic() - started

    refused = raised.value
    assert refused.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert f"maximum of {LIMIT} calls" in (refused.details() or "")
    status = rpc_status.from_call(refused)  # type: ignore[arg-type]
    assert status is not None
    assert any(detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for detail in status.details)
    assert waited < 1.0
    assert len(limited.started) == LIMIT  # the refused call's handler never ran
    limited.release.set()
    assert await asyncio.gather(*running) == [b"done"] * LIMIT


async def test_once_calls_end_there_is_room_again(limited: Limited) -> None:
    running = [asyncio.ensure_future(limited.call("test.Limited")) for _ in range(LIMIT)]
    await limited.until_started(LIMIT)
    limited.release.set()
    await asyncio.gather(*running)

    assert limited.gate.under_way == 0
    assert await limited.call("test.Limited") == b"done"


async def test_other_services_are_never_refused(limited: Limited) -> None:
    running = [asyncio.ensure_future(limited.call("test.Limited")) for _ in range(LIMIT)]
    await limited.until_started(LIMIT)

    others = [asyncio.ensure_future(limited.call("test.Other")) for _ in range(2 * LIMIT)]
    await limited.until_started(3 * LIMIT)
    limited.release.set()

    assert await asyncio.gather(*others) == [b"done"] * 2 * LIMIT
    await asyncio.gather(*running)
