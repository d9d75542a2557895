"""The whole service behind TLS with API keys or client certificates, and channels to reach it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from server.app import running_service
from server.crypto.api_keys import api_key_sha256, new_api_key
from server.settings import ApiKey, Settings
from tests.e2e.harness import service_settings
from tests.tls_material import SERVER_DNS_NAME, TlsMaterial

RPC_TIMEOUT = 10.0  # seconds; every call in these tests is bounded by it


@dataclass(frozen=True)
class CallerKeys:
    """Raw API keys: one granting the admin role, one no role at all, one users:read and one
    users:write."""

    admin: str
    plain: str
    reader: str
    writer: str

    @classmethod
    def fresh(cls) -> CallerKeys:
        return cls(
            admin=new_api_key(), plain=new_api_key(), reader=new_api_key(), writer=new_api_key()
        )

    def settings(self) -> list[ApiKey]:
        """The keys as the server is configured with them: names, SHA-256 and roles only."""
        return [
            ApiKey(name="admin-console", sha256=api_key_sha256(self.admin), roles=("admin",)),
            ApiKey(name="web-frontend", sha256=api_key_sha256(self.plain), roles=()),
            ApiKey(name="directory", sha256=api_key_sha256(self.reader), roles=("users:read",)),
            ApiKey(name="support-desk", sha256=api_key_sha256(self.writer), roles=("users:write",)),
        ]


def bearer(key: str) -> tuple[tuple[str, str]]:
    """Call metadata presenting ``key``."""
    return (("authorization", f"Bearer {key}"),)


def tls_settings(
    moto_endpoint: str, tls: TlsMaterial, keys: CallerKeys | None, **overrides: Any
) -> Settings:
    """Development settings over moto with server TLS and, when given, the two API keys."""
    return service_settings(
        moto_endpoint,
        tls_cert_file=tls.server_cert,
        tls_key_file=tls.server_key,
        api_keys=keys.settings() if keys is not None else [],
        **overrides,
    )


@dataclass(frozen=True)
class SecuredService:
    """A running TLS service: its port, the certificates to reach it, its JWKS."""

    port: int
    tls: TlsMaterial
    jwks: list[dict[str, str]]

    @property
    def target(self) -> str:
        return f"{SERVER_DNS_NAME}:{self.port}"

    def channel(self, client_cert: tuple[Path, Path] | None = None) -> grpc.aio.Channel:
        """A TLS channel trusting the test CA; presenting ``client_cert`` (cert, key) if given."""
        chain = key = None
        if client_cert is not None:
            chain, key = (path.read_bytes() for path in client_cert)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.tls.ca_cert.read_bytes(),
            private_key=key,
            certificate_chain=chain,
        )
        return grpc.aio.secure_channel(self.target, credentials)

    def plaintext_channel(self) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(self.target)


@contextlib.asynccontextmanager
async def secured_service(settings: Settings, tls: TlsMaterial) -> AsyncIterator[SecuredService]:
    """Runs the whole service with ``settings`` on a free loopback port until the block ends."""
    async with running_service(settings, address="127.0.0.1:0") as running:
        yield SecuredService(port=running.port, tls=tls, jwks=running.jwks)
