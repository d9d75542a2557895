"""TLS: clients must trust the server's CA and, with a client CA, present a cert it signed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio

from server.crypto.tls import TlsConfigError, server_credentials
from tests.tls_material import TlsMaterial, channel_credentials, make_tls_material

TIMEOUT = 5.0
WHO = "/test.Peer/Who"
Start = Callable[[grpc.ServerCredentials], Awaitable[str]]


async def who(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    """The common name of the client certificate the server saw, or b"" without one."""
    return b"".join(context.auth_context().get("x509_common_name", []))


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls_material(tmp_path_factory.mktemp("tls"))


@pytest_asyncio.fixture
async def start() -> AsyncIterator[Start]:
    """Starts a server answering test.Peer/Who with the given credentials; its target."""
    servers: list[grpc.aio.Server] = []

    async def start(credentials: grpc.ServerCredentials) -> str:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    "test.Peer", {"Who": grpc.unary_unary_rpc_method_handler(who)}
                )
            ]
        )
        port = server.add_secure_port("127.0.0.1:0", credentials)
        await server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for server in servers:
        await server.stop(None)


async def ask_who(target: str, credentials: grpc.ChannelCredentials) -> bytes:
    async with grpc.aio.secure_channel(target, credentials) as channel:
        # No serializers: the request goes out as these bytes, the reply comes back as bytes.
        who: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(WHO)
        reply: bytes = await who(b"", timeout=TIMEOUT)
        return reply


async def refusal(target: str, credentials: grpc.ChannelCredentials) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await ask_who(target, credentials)
    return error.value.code()


def tls_only(tls: TlsMaterial) -> grpc.ServerCredentials:
    return server_credentials(
        cert_file=tls.server_cert, key_file=tls.server_key, client_ca_file=None
    )


def mutual_tls(tls: TlsMaterial) -> grpc.ServerCredentials:
    return server_credentials(
        cert_file=tls.server_cert, key_file=tls.server_key, client_ca_file=tls.ca_cert
    )


async def test_a_client_trusting_the_servers_ca_reaches_a_tls_server(
    start: Start, tls: TlsMaterial
) -> None:
    target = await start(tls_only(tls))
    assert await ask_who(target, channel_credentials(ca_file=tls.ca_cert)) == b""


async def test_a_client_not_trusting_the_servers_ca_cannot_connect(
    start: Start, tls: TlsMaterial
) -> None:
    target = await start(tls_only(tls))
    untrusting = channel_credentials(ca_file=tls.untrusted_ca_cert)
    assert await refusal(target, untrusting) == grpc.StatusCode.UNAVAILABLE


async def test_without_a_client_ca_the_server_ignores_client_certificates(
    start: Start, tls: TlsMaterial
) -> None:
    target = await start(tls_only(tls))
    cert, key = tls.client_cert("billing-service")
    credentials = channel_credentials(ca_file=tls.ca_cert, cert_file=cert, key_file=key)
    assert await ask_who(target, credentials) == b""


async def test_with_a_client_ca_the_server_sees_the_client_certificates_name(
    start: Start, tls: TlsMaterial
) -> None:
    target = await start(mutual_tls(tls))
    cert, key = tls.client_cert("billing-service")
    credentials = channel_credentials(ca_file=tls.ca_cert, cert_file=cert, key_file=key)
    assert await ask_who(target, credentials) == b"billing-service"


async def test_a_client_without_a_certificate_cannot_connect_when_the_server_requires_one(
    start: Start, tls: TlsMaterial
) -> None:
    target = await start(mutual_tls(tls))
    assert await refusal(target, channel_credentials(ca_file=tls.ca_cert)) == (
        grpc.StatusCode.UNAVAILABLE
    )


async def test_a_client_certificate_from_an_untrusted_ca_is_refused(
    start: Start, tls: TlsMaterial
) -> None:
    target = await start(mutual_tls(tls))
    cert, key = tls.untrusted_client_cert("ops-console")
    credentials = channel_credentials(ca_file=tls.ca_cert, cert_file=cert, key_file=key)
    assert await refusal(target, credentials) == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("missing", ["cert_file", "key_file", "client_ca_file"])
def test_server_credentials_name_a_missing_file(
    tls: TlsMaterial, tmp_path: Path, missing: str
) -> None:
    files = {
        "cert_file": tls.server_cert,
        "key_file": tls.server_key,
        "client_ca_file": tls.ca_cert,
    }
    files[missing] = tmp_path / "absent.pem"
    with pytest.raises(TlsConfigError, match=r"absent\.pem"):
        server_credentials(**files)


@pytest.mark.parametrize("broken", ["cert_file", "key_file", "client_ca_file"])
def test_server_credentials_refuse_a_file_that_is_not_pem_without_quoting_it(
    tls: TlsMaterial, tmp_path: Path, broken: str
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text(
        "-----BEGIN PRIVATE KEY-----\nsecret-looking-bytes\n-----END PRIVATE KEY-----\n"
    )
    files = {
        "cert_file": tls.server_cert,
        "key_file": tls.server_key,
        "client_ca_file": tls.ca_cert,
    }
    files[broken] = garbage
    with pytest.raises(TlsConfigError, match=r"garbage\.pem") as error:
        server_credentials(**files)
    assert "secret-looking-bytes" not in str(error.value)


def test_server_credentials_refuse_a_key_that_does_not_belong_to_the_certificate(
    tls: TlsMaterial,
) -> None:
    _, other_key = tls.client_cert("someone-else")
    with pytest.raises(TlsConfigError, match="does not belong"):
        server_credentials(cert_file=tls.server_cert, key_file=other_key, client_ca_file=None)
