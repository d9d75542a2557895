"""The whole service, in-process against moto_server on a free port, with fresh tables per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest_asyncio
from biome.user.v1 import user_service_pb2_grpc

from server.app import running_service
from tests.e2e.harness import Service, service_settings


@pytest_asyncio.fixture
async def service(moto_endpoint: str) -> AsyncIterator[Service]:
    async with running_service(service_settings(moto_endpoint), address="127.0.0.1:0") as running:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield Service(
                stub=user_service_pb2_grpc.UserServiceStub(channel),
                channel=channel,
                port=running.port,
                dynamodb=running.client,
                tables=running.tables,
            )
