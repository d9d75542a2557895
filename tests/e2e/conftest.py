"""The whole service, in-process against moto_server on a free port, with fresh tables per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import grpc
import pytest
import pytest_asyncio
from biome.user.v1 import user_service_pb2_grpc

from server.app import running_service
from server.settings import Settings
from tests.e2e.harness import MovableClock, Service, service_settings
from tests.e2e.secured_service import CallerKeys, SecuredService, secured_service, tls_settings
from tests.fault_proxy import FaultProxy
from tests.smtp_server import CapturingSmtpServer
from tests.tls_material import TlsMaterial, make_tls_material


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[CapturingSmtpServer]:
    """A real SMTP server on loopback that keeps every message (the reset mail)."""
    with CapturingSmtpServer() as server:
        yield server


@asynccontextmanager
async def serving(
    settings: Settings, smtp: CapturingSmtpServer, clock: MovableClock | None = None
) -> AsyncIterator[Service]:
    """The service in-process on a free loopback port, and a channel to it."""
    clock = clock or MovableClock()
    async with running_service(settings, address="127.0.0.1:0", clock=clock) as running:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield Service(
                stub=user_service_pb2_grpc.UserServiceStub(channel),
                channel=channel,
                port=running.port,
                dynamodb=running.client,
                tables=running.tables,
                smtp=smtp,
                clock=clock,
                jwks=running.jwks,
                http_port=running.http_port,
            )


@pytest_asyncio.fixture
async def service(moto_endpoint: str, smtp_server: CapturingSmtpServer) -> AsyncIterator[Service]:
    async with serving(service_settings(moto_endpoint, smtp_server), smtp_server) as running:
        yield running


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    """A CA, a server certificate for localhost and 127.0.0.1, and client certificates."""
    return make_tls_material(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def keys() -> CallerKeys:
    return CallerKeys.fresh()


@pytest_asyncio.fixture
async def secured(
    moto_endpoint: str, tls: TlsMaterial, keys: CallerKeys
) -> AsyncIterator[SecuredService]:
    """The service over TLS, taking the admin key and the key without roles."""
    async with secured_service(tls_settings(moto_endpoint, tls, keys), tls) as running:
        yield running


ServeThroughProxy = Callable[..., AbstractAsyncContextManager[Service]]


@pytest.fixture
def fault_proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the session's moto_server, passing everything through."""
    with FaultProxy(moto_endpoint) as proxy:
        yield proxy


@pytest.fixture
def serve_through_proxy(
    fault_proxy: FaultProxy, smtp_server: CapturingSmtpServer
) -> ServeThroughProxy:
    """Starts the service with DynamoDB behind the proxy: ``async with serve(**settings)``."""

    def serve(**overrides: Any) -> AbstractAsyncContextManager[Service]:
        return serving(service_settings(fault_proxy.url, smtp_server, **overrides), smtp_server)

    return serve
