"""The Python client kit (clients/python) against the running service over real channels: the
README's flows, typed errors with their details, a retried UNAVAILABLE, TLS with an API key or a
client certificate, and the access-token verifier across a key rotation."""

from __future__ import annotations

import asyncio
import re
import time
import types
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

import grpc
import jwt
import pytest
import pytest_asyncio
import user_service_client
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr
from user_service_client import (
    AccessTokenVerifier,
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
    connect,
    pb,
    user_token,
)
from user_service_client.channel import READ_TIMEOUT_SECONDS

from server.crypto.access_tokens import generate_signing_keys, signing_key_pem
from tests.e2e.conftest import ServeThroughProxy, serving
from tests.e2e.harness import Service, service_settings
from tests.e2e.secured_service import CallerKeys, secured_service, tls_settings
from tests.fault_proxy import FaultProxy, Outcome
from tests.jwks_server import serving_jwks
from tests.smtp_server import CapturingSmtpServer, verification_code_from
from tests.tls_material import TlsMaterial

README = Path(__file__).resolve().parents[2] / "README.md"
ISSUER = "urn:biome:user-service"
AUDIENCE = "urn:biome:services"
PASSWORD = "tangerine-sky-42"


def readme_kit_block() -> str:
    """The python block of the README's "Python client kit" section."""
    section = README.read_text().split("## Python client kit\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "no python block under '## Python client kit'"
    return match.group(1)


def readme_flows() -> types.ModuleType:
    """The README's block, run as a module of its own."""
    module = types.ModuleType("readme_client_kit")
    exec(compile(readme_kit_block(), "README.md#python-client-kit", "exec"), module.__dict__)
    return module


class MonotonicClock:
    """time.monotonic() plus an offset the test moves (the verifier's cache and cool-down)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def unique_email() -> str:
    return f"kit-{uuid4().hex[:12]}@example.com"


@pytest_asyncio.fixture
async def verified_only(
    moto_endpoint: str, smtp_server: CapturingSmtpServer
) -> AsyncIterator[Service]:
    """The service requiring verified addresses for sign-in (as production does)."""
    settings = service_settings(
        moto_endpoint, smtp_server, require_verified_email=True, http_port=0
    )
    async with serving(settings, smtp_server) as running:
        yield running


@pytest.fixture
def jwks_url(verified_only: Service) -> str:
    """Where the service's own HTTP listener serves its key set (/.well-known/jwks.json)."""
    return user_service_client.jwks_url(verified_only.http_url)


async def test_the_readmes_flows_run_through_the_kit(
    verified_only: Service, jwks_url: str, smtp_server: CapturingSmtpServer
) -> None:
    flows = readme_flows()
    email = unique_email()
    codes_read: list[str] = []

    async def read_code(address: str) -> str:
        code = verification_code_from(await smtp_server.wait_for_message(to=address, timeout=10))
        codes_read.append(code)
        return code

    user = await flows.session(verified_only.target, jwks_url, email, read_code)

    assert user.email == email and user.email_verified  # verified by the mailed code
    assert len(codes_read) == 1
    async with connect(verified_only.target) as client:
        # The password changed: the old one is refused, the new one signs in.
        with pytest.raises(Unauthenticated):
            await client.Authenticate(pb.AuthenticateRequest(email=email, password=PASSWORD))
        tokens = await client.Authenticate(
            pb.AuthenticateRequest(email=email, password="violet harbor 93")
        )
        assert tokens.user.id == user.id
        with pytest.raises(ValueError, match="'email'") as refused:
            await flows.sign_up(client, "not-an-address", "short")
        assert isinstance(refused.value.__cause__, InvalidArgument)


async def test_errors_are_typed_with_the_details_the_server_sent(service: Service) -> None:
    async with connect(service.target) as client:
        with pytest.raises(InvalidArgument) as invalid:
            await client.RegisterUser(pb.RegisterUserRequest(email="nope", password="short"))
        email = unique_email()
        await client.RegisterUser(
            pb.RegisterUserRequest(email=email, password=PASSWORD, first_name="A", last_name="B")
        )
        with pytest.raises(AlreadyExists):
            await client.RegisterUser(
                pb.RegisterUserRequest(
                    email=email.upper(), password=PASSWORD, first_name="A", last_name="B"
                )
            )
        with pytest.raises(NotFound) as missing:
            await client.GetUser(pb.GetUserRequest(id=str(uuid4())))
        with pytest.raises(Unauthenticated) as bad_code:
            await client.VerifyEmail(pb.VerifyEmailRequest(email=email, code="000000"))

    assert [v.field for v in invalid.value.field_violations] == [
        "email",
        "password",
        "first_name",
        "last_name",
    ]
    assert isinstance(invalid.value, grpc.aio.AioRpcError)
    assert invalid.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert missing.value.request_id  # the server's id of the call, to quote
    assert [v.field for v in bad_code.value.field_violations] == ["code"]


async def test_a_stream_that_fails_raises_a_typed_error_and_a_live_one_cancels(
    service: Service,
) -> None:
    async with connect(service.target) as client:
        with pytest.raises(InvalidArgument) as invalid:
            async for _ in client.WatchEvents(pb.WatchEventsRequest(after_cursor="not-a-cursor")):
                pass
        live = client.WatchEvents(pb.WatchEventsRequest())
        await asyncio.sleep(0.2)
        live.cancel()  # reaches the call under the kit's interceptors
        assert await asyncio.wait_for(live.code(), timeout=5) is grpc.StatusCode.CANCELLED

    assert [v.field for v in invalid.value.field_violations] == ["after_cursor"]


async def test_a_sign_in_before_verification_names_the_reason(verified_only: Service) -> None:
    email = unique_email()
    async with connect(verified_only.target) as client:
        await client.RegisterUser(
            pb.RegisterUserRequest(email=email, password=PASSWORD, first_name="A", last_name="B")
        )
        with pytest.raises(FailedPrecondition) as refused:
            await client.Authenticate(pb.AuthenticateRequest(email=email, password=PASSWORD))

    assert (refused.value.reason, refused.value.domain) == ("EMAIL_NOT_VERIFIED", "user.biome")


async def test_a_read_is_retried_through_unavailable_and_a_write_is_not(
    serve_through_proxy: ServeThroughProxy, fault_proxy: FaultProxy
) -> None:
    # One DynamoDB attempt per call: a throttled GetItem is the RPC's UNAVAILABLE at once. The
    # readiness probe (a GetItem too) waits an hour, so the throttles meet the RPC's reads only.
    async with serve_through_proxy(
        dynamodb_max_attempts=1, health_check_interval_seconds=3600.0
    ) as running:
        async with connect(running.target) as client:
            user = await client.RegisterUser(
                pb.RegisterUserRequest(
                    email=unique_email(), password=PASSWORD, first_name="A", last_name="B"
                )
            )
            fault_proxy.throttle(operations=["GetItem"], times=2)

            read = await client.GetUser(pb.GetUserRequest(id=user.id))

            throttled = [
                r for r in fault_proxy.requests("GetItem") if r.outcome is Outcome.THROTTLED
            ]
            # Two attempts answered UNAVAILABLE, the third with the user.
            assert read.id == user.id and len(throttled) == 2
            assert all(user.id.encode() in r.body for r in throttled)
            fault_proxy.throttle(operations=["TransactWriteItems", "UpdateItem"], times=1)
            with pytest.raises(Unavailable) as unavailable:
                await client.UpdateProfile(
                    pb.UpdateProfileRequest(id=user.id, first_name="B", expected_version=1)
                )
            assert unavailable.value.retry_after == timedelta(seconds=1)
            # Not retried: the one throttled attempt was the call's only one.
            assert (await client.GetUser(pb.GetUserRequest(id=user.id))).version == 1


async def test_a_read_without_a_deadline_of_its_own_gets_the_configs(
    serve_through_proxy: ServeThroughProxy, fault_proxy: FaultProxy
) -> None:
    async with serve_through_proxy(health_check_interval_seconds=3600.0) as running:
        async with connect(running.target) as client:
            user = await client.RegisterUser(
                pb.RegisterUserRequest(
                    email=unique_email(), password=PASSWORD, first_name="A", last_name="B"
                )
            )
            fault_proxy.delay(30.0, operations=["GetItem"])
            started = time.monotonic()

            with pytest.raises(DeadlineExceeded):
                await client.GetUser(pb.GetUserRequest(id=user.id))  # no timeout= given

            elapsed = time.monotonic() - started
            fault_proxy.pass_through()

    assert READ_TIMEOUT_SECONDS - 0.1 <= elapsed <= READ_TIMEOUT_SECONDS + 2


async def test_tls_with_an_api_key_or_a_client_certificate(
    moto_endpoint: str, tls: TlsMaterial, keys: CallerKeys
) -> None:
    settings = tls_settings(
        moto_endpoint,
        tls,
        keys,
        tls_client_ca_file=tls.ca_cert,
        client_cert_roles={"ops-console": ["admin"]},
    )
    ca = tls.ca_cert.read_bytes()
    certificate, key = (path.read_bytes() for path in tls.client_cert("ops-console"))
    anonymous_cert = tuple(path.read_bytes() for path in tls.client_cert("nobody"))
    async with secured_service(settings, tls) as running:
        async with connect(
            running.target, root_certificates=ca, client_cert=(certificate, key)
        ) as ops:
            assert (await ops.ListUsers(pb.ListUsersRequest(page_size=1))) is not None
        async with connect(
            running.target,
            root_certificates=ca,
            client_cert=(anonymous_cert[0], anonymous_cert[1]),
            api_key=keys.admin,
        ) as keyed:
            assert (await keyed.ListUsers(pb.ListUsersRequest(page_size=1))) is not None
            # The key goes with a stream too: admitted, then refused for its cursor.
            with pytest.raises(InvalidArgument):
                async for _ in keyed.WatchEvents(pb.WatchEventsRequest(after_cursor="nope")):
                    pass
        async with connect(
            running.target, root_certificates=ca, client_cert=(anonymous_cert[0], anonymous_cert[1])
        ) as nobody:
            with pytest.raises(PermissionDenied):
                await nobody.ListUsers(pb.ListUsersRequest(page_size=1))
        async with connect(
            running.target,
            root_certificates=ca,
            client_cert=(anonymous_cert[0], anonymous_cert[1]),
            api_key="not-a-key",
        ) as wrong_key:
            with pytest.raises(Unauthenticated):
                await wrong_key.ListUsers(pb.ListUsersRequest(page_size=1))


async def test_the_verifier_follows_a_key_rotation_it_had_not_seen(
    moto_endpoint: str, smtp_server: CapturingSmtpServer
) -> None:
    old = generate_signing_keys()
    new = generate_signing_keys()
    old_public = (
        old.signer.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    settings = service_settings(moto_endpoint, smtp_server)
    email = unique_email()

    async with serving(
        settings.model_copy(update={"jwt_signing_keys": SecretStr(signing_key_pem(old))}),
        smtp_server,
    ) as before:
        async with connect(before.target) as client:
            await client.RegisterUser(
                pb.RegisterUserRequest(
                    email=email, password=PASSWORD, first_name="A", last_name="B"
                )
            )
            old_token = (
                await client.Authenticate(pb.AuthenticateRequest(email=email, password=PASSWORD))
            ).access_token
        async with serving_jwks(before.jwks) as jwks:
            clock = MonotonicClock()
            verifier = AccessTokenVerifier(jwks.url, issuer=ISSUER, audience=AUDIENCE, clock=clock)
            assert (await verifier.verify(old_token)).user_id

            # The service restarts signing with a new key, the old one still published.
            rotated = SecretStr(signing_key_pem(new) + old_public)
            async with serving(
                settings.model_copy(update={"jwt_signing_keys": rotated}), smtp_server
            ) as after:
                jwks.keys = after.jwks
                # Past the default cool-down (30 s) since the fetch, within the set's max-age.
                clock.offset += 31
                async with connect(after.target) as client:
                    new_token = (
                        await client.Authenticate(
                            pb.AuthenticateRequest(email=email, password=PASSWORD)
                        )
                    ).access_token
                    claims = await verifier.verify(new_token)
                    user = await client.GetUser(
                        pb.GetUserRequest(id=claims.user_id), metadata=user_token(new_token)
                    )

    assert jwt.get_unverified_header(new_token)["kid"] == new.kid != old.kid
    assert user.email == email and claims.amr == ("pwd",)
    assert jwks.requests == 2  # the cached set, then once more for the new kid
    assert (await verifier.verify(old_token)).user_id == claims.user_id  # still published
