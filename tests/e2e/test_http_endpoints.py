"""The HTTP listener of a running service: the JWKS GetJwks returns and the discovery document,
cached by ETag and Cache-Control; the probes; /metrics; HTTPS with the gRPC port's certificate;
and the README's curl session as pasted."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import grpc
import jwt
import pytest
from biome.user.v1 import user_service_pb2 as pb
from biome.user.v1 import user_service_pb2_grpc
from google.protobuf.json_format import MessageToDict

from server.app import RunningService, running_service
from server.settings import Settings
from tests.e2e.harness import service_settings
from tests.e2e.http_kit import DISCOVERY, JWKS, fetch
from tests.e2e.secured_service import CallerKeys, tls_settings
from tests.e2e.test_readme import readme_block_after, run_block
from tests.smtp_server import CapturingSmtpServer
from tests.tls_material import TlsMaterial

CACHE_CONTROL = "public, max-age=300"


@asynccontextmanager
async def listening(settings: Settings) -> AsyncIterator[RunningService]:
    async with running_service(settings, address="127.0.0.1:0") as running:
        assert running.http_port is not None
        yield running


@pytest.fixture
def http_settings(moto_endpoint: str, smtp_server: CapturingSmtpServer) -> Settings:
    return service_settings(moto_endpoint, smtp_server, http_port=0)


async def test_the_jwks_is_what_get_jwks_returns_with_cache_headers(
    http_settings: Settings,
) -> None:
    async with listening(http_settings) as running:
        reply = await fetch(f"http://127.0.0.1:{running.http_port}{JWKS}")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = user_service_pb2_grpc.UserServiceStub(channel)
            keys = await stub.GetJwks(pb.GetJwksRequest(), timeout=10)

    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.headers["Cache-Control"] == CACHE_CONTROL
    assert reply.json() == MessageToDict(keys, preserving_proto_field_name=True)
    assert reply.json() == {"keys": running.jwks} and len(running.jwks) == 1
    assert reply.headers["ETag"].startswith('"')  # strong


async def test_a_cached_copy_is_confirmed_with_304_and_no_body(http_settings: Settings) -> None:
    async with listening(http_settings) as running:
        base = f"http://127.0.0.1:{running.http_port}"
        for path in (JWKS, DISCOVERY):
            first = await fetch(base + path)
            etag = first.headers["ETag"]
            same = await fetch(base + path, headers={"If-None-Match": etag})
            weak = await fetch(base + path, headers={"If-None-Match": f'"other", W/{etag}'})
            other = await fetch(base + path, headers={"If-None-Match": '"other"'})
            head = await fetch(base + path, method="HEAD")

            assert (same.status, same.body) == (304, b"")
            assert same.headers["ETag"] == etag
            assert same.headers["Cache-Control"] == CACHE_CONTROL
            assert weak.status == 304
            assert (other.status, other.body) == (200, first.body)
            assert (head.status, head.body, head.headers["ETag"]) == (200, b"", etag)


async def test_the_discovery_document_points_at_the_jwks_and_names_the_issuer(
    http_settings: Settings,
) -> None:
    async with listening(http_settings) as running:
        base = f"http://127.0.0.1:{running.http_port}"
        document = (await fetch(base + DISCOVERY)).json()
        keys = (await fetch(document["jwks_uri"])).json()

    assert document == {
        "issuer": http_settings.jwt_issuer,
        "jwks_uri": base + JWKS,
        "id_token_signing_alg_values_supported": ["EdDSA"],
    }
    assert keys == {"keys": running.jwks}


async def test_the_jwks_uri_follows_the_public_url(
    moto_endpoint: str, smtp_server: CapturingSmtpServer
) -> None:
    settings = service_settings(
        moto_endpoint,
        smtp_server,
        http_port=0,
        http_public_url="https://users.example.com/auth/",
        jwt_issuer="https://users.example.com/auth",
    )
    async with listening(settings) as running:
        reply = await fetch(f"http://127.0.0.1:{running.http_port}{DISCOVERY}")

    assert reply.json()["issuer"] == "https://users.example.com/auth"
    assert reply.json()["jwks_uri"] == "https://users.example.com/auth/.well-known/jwks.json"


async def test_the_probes_answer_and_nothing_else_does(http_settings: Settings) -> None:
    async with listening(http_settings) as running:
        base = f"http://127.0.0.1:{running.http_port}"
        alive = await fetch(base + "/healthz")
        ready = await fetch(base + "/readyz")
        metrics = await fetch(base + "/metrics")
        unknown = await fetch(base + "/.well-known/other")
        posted = await fetch(base + JWKS, method="POST")

    assert (alive.status, alive.json()) == (200, {"status": "alive"})
    assert (ready.status, ready.json()) == (200, {"status": "ready"})
    assert ready.headers["Cache-Control"] == "no-store"
    assert metrics.status == 404  # metrics are off
    assert unknown.status == 404
    assert posted.status == 405


async def test_the_listener_is_off_unless_a_port_is_set(
    moto_endpoint: str, smtp_server: CapturingSmtpServer
) -> None:
    async with running_service(
        service_settings(moto_endpoint, smtp_server), address="127.0.0.1:0"
    ) as running:
        assert running.http_port is None


async def test_metrics_are_served_here_too_when_they_are_on(
    moto_endpoint: str, smtp_server: CapturingSmtpServer
) -> None:
    settings = service_settings(moto_endpoint, smtp_server, http_port=0, metrics_port=0)
    async with listening(settings) as running:
        assert running.metrics_port is not None
        here = await fetch(f"http://127.0.0.1:{running.http_port}/metrics")
        there = await fetch(f"http://127.0.0.1:{running.metrics_port}/metrics")

    assert here.status == 200 and there.status == 200
    assert here.headers["Content-Type"].startswith("text/plain")
    assert b"user_service_logins_total" in here.body
    assert b"user_service_logins_total" in there.body


def trusting(tls: TlsMaterial) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(tls.ca_cert))


async def test_https_with_the_grpc_certificate_and_no_client_certificate_asked(
    moto_endpoint: str, tls: TlsMaterial
) -> None:
    # The gRPC port requires client certificates; the HTTP listener must not ask for one.
    settings = tls_settings(
        moto_endpoint, tls, CallerKeys.fresh(), http_port=0, tls_client_ca_file=tls.ca_cert
    )
    async with listening(settings) as running:
        base = f"https://localhost:{running.http_port}"
        document = (await fetch(base + DISCOVERY, ssl_context=trusting(tls))).json()
        alive = await fetch(base + "/healthz", ssl_context=trusting(tls))
        client = jwt.PyJWKClient(base + JWKS, ssl_context=trusting(tls))
        fetched = await asyncio.to_thread(client.get_signing_keys)
        with pytest.raises(aiohttp.ClientError):
            await fetch(f"http://127.0.0.1:{running.http_port}/healthz")
        with pytest.raises(aiohttp.ClientError):  # a certificate the client does not trust
            await fetch(base + "/healthz")

    # The default public URL is the listener's own: its host setting, scheme https.
    assert document["jwks_uri"] == f"https://127.0.0.1:{running.http_port}{JWKS}"
    assert alive.status == 200
    assert [key.key_id for key in fetched] == [key["kid"] for key in running.jwks]


async def test_readme_http_session_works_as_pasted(
    moto_endpoint: str, smtp_server: CapturingSmtpServer
) -> None:
    settings = service_settings(moto_endpoint, smtp_server, http_port=0)
    async with listening(settings) as running:
        script = readme_block_after("HTTP endpoints").replace(
            "localhost:8081", f"127.0.0.1:{running.http_port}"
        )
        output = await run_block(script)

    assert '"kty":"OKP"' in output
    assert '"jwks_uri":"http://127.0.0.1:' in output
    assert "\n304\n" in output
    assert '{"status": "ready"}' in output
