"""Caller authentication through the whole service: TLS, API keys, roles, client certificates."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypedDict

import grpc
import pytest
import pytest_asyncio
from biome.user.v1 import user_service_pb2 as pb
from biome.user.v1 import user_service_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from server.app import running_service
from server.crypto.access_tokens import generate_signing_keys, signing_key_pem
from server.crypto.api_keys import new_api_key
from server.settings import Settings
from tests.e2e.harness import rpc_error, service_settings
from tests.e2e.secured_service import (
    RPC_TIMEOUT,
    CallerKeys,
    SecuredService,
    bearer,
    secured_service,
    tls_settings,
)
from tests.tls_material import TlsMaterial

PASSWORD = "correct horse battery"
HTTPS_MAIL_LINKS = {
    "password_reset_link_template": "https://accounts.example.com/reset-password?token={token}",
    "email_verification_link_template": "https://accounts.example.com/verify-email?token={token}",
    "email_change_link_template": "https://accounts.example.com/confirm-email?token={token}",
    "email_change_cancel_link_template": "https://accounts.example.com/cancel-email?token={token}",
}
SERVING = health_pb2.HealthCheckResponse.SERVING


@pytest_asyncio.fixture
async def stub(
    secured: SecuredService,
) -> AsyncIterator[user_service_pb2_grpc.UserServiceAsyncStub]:
    async with secured.channel() as channel:
        yield user_service_pb2_grpc.UserServiceStub(channel)


@pytest_asyncio.fixture
async def mutual_tls(moto_endpoint: str, tls: TlsMaterial) -> AsyncIterator[SecuredService]:
    """The service requiring client certificates from the test CA; "ops-console" is an admin."""
    settings = tls_settings(
        moto_endpoint,
        tls,
        keys=None,
        tls_client_ca_file=tls.ca_cert,
        client_cert_roles={"ops-console": ["admin"]},
    )
    async with secured_service(settings, tls) as running:
        yield running


class CallOptions(TypedDict):
    """The keyword arguments a test passes to every call: the caller's key and the time bound."""

    metadata: tuple[tuple[str, str], ...]
    timeout: float


def registration(email: str = "grace.hopper@example.com") -> pb.RegisterUserRequest:
    return pb.RegisterUserRequest(
        email=email, password=PASSWORD, first_name="Grace", last_name="Hopper"
    )


async def signed_in_user(
    stub: user_service_pb2_grpc.UserServiceAsyncStub, key: str
) -> tuple[pb.User, pb.AuthenticateResponse]:
    """Registers a user and opens one session for it, calling with ``key``."""
    user = await stub.RegisterUser(registration(), metadata=bearer(key), timeout=RPC_TIMEOUT)
    session = await stub.Authenticate(
        pb.AuthenticateRequest(email=user.email, password=PASSWORD),
        metadata=bearer(key),
        timeout=RPC_TIMEOUT,
    )
    return user, session


# --- API keys -------------------------------------------------------------------------------------


async def test_a_caller_without_an_api_key_is_unauthenticated(
    stub: user_service_pb2_grpc.UserServiceAsyncStub,
) -> None:
    register = await rpc_error(stub.RegisterUser(registration(), timeout=RPC_TIMEOUT))
    jwks = await rpc_error(stub.GetJwks(pb.GetJwksRequest(), timeout=RPC_TIMEOUT))

    assert register.code() == grpc.StatusCode.UNAUTHENTICATED
    assert jwks.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "API key" in (register.details() or "")


@pytest.mark.parametrize(
    "authorization",
    ["Bearer {unknown}", "Bearer {admin}x", "Basic {admin}", "Bearer", "{admin}"],
    ids=["unknown-key", "altered-admin-key", "wrong-scheme", "no-key", "no-scheme"],
)
async def test_a_wrong_or_malformed_api_key_is_unauthenticated(
    stub: user_service_pb2_grpc.UserServiceAsyncStub, keys: CallerKeys, authorization: str
) -> None:
    header = authorization.format(unknown=new_api_key(), admin=keys.admin)

    error = await rpc_error(
        stub.GetJwks(
            pb.GetJwksRequest(), metadata=(("authorization", header),), timeout=RPC_TIMEOUT
        )
    )

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_key_without_roles_may_register_sign_in_and_refresh(
    stub: user_service_pb2_grpc.UserServiceAsyncStub, keys: CallerKeys
) -> None:
    user, session = await signed_in_user(stub, keys.plain)

    refreshed = await stub.RefreshSession(
        pb.RefreshSessionRequest(refresh_token=session.refresh_token),
        metadata=bearer(keys.plain),
        timeout=RPC_TIMEOUT,
    )

    assert session.user.id == user.id
    assert refreshed.access_token and refreshed.refresh_token != session.refresh_token


ADMIN_CALLS: dict[str, Callable[..., Awaitable[Any]]] = {
    "ListUsers": lambda stub, user, **kw: stub.ListUsers(pb.ListUsersRequest(), **kw),
    "DeleteUser": lambda stub, user, **kw: stub.DeleteUser(
        pb.DeleteUserRequest(id=user.id, expected_version=user.version), **kw
    ),
    "DisableUser": lambda stub, user, **kw: stub.DisableUser(
        pb.DisableUserRequest(id=user.id), **kw
    ),
    "EnableUser": lambda stub, user, **kw: stub.EnableUser(pb.EnableUserRequest(id=user.id), **kw),
    "LogoutAll": lambda stub, user, **kw: stub.LogoutAll(
        pb.LogoutAllRequest(user_id=user.id), **kw
    ),
}


@pytest.mark.parametrize("method", sorted(ADMIN_CALLS))
async def test_a_key_without_roles_is_denied_each_admin_rpc_and_changes_nothing(
    stub: user_service_pb2_grpc.UserServiceAsyncStub, keys: CallerKeys, method: str
) -> None:
    user, session = await signed_in_user(stub, keys.plain)
    read: CallOptions = {"metadata": bearer(keys.reader), "timeout": RPC_TIMEOUT}
    roleless: CallOptions = {"metadata": bearer(keys.plain), "timeout": RPC_TIMEOUT}
    before = await stub.GetUser(pb.GetUserRequest(id=user.id), **read)

    error = await rpc_error(ADMIN_CALLS[method](stub, before, **roleless))

    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "admin" in (error.details() or "")
    assert await stub.GetUser(pb.GetUserRequest(id=user.id), **read) == before
    # The session survived: LogoutAll and DisableUser would have ended it.
    await stub.RefreshSession(
        pb.RefreshSessionRequest(refresh_token=session.refresh_token),
        metadata=bearer(keys.plain),
        timeout=RPC_TIMEOUT,
    )


async def test_only_an_admin_key_may_register_a_user_with_a_verified_address(
    stub: user_service_pb2_grpc.UserServiceAsyncStub, keys: CallerKeys
) -> None:
    vouched = pb.RegisterUserRequest(
        email="vouched@example.com",
        password=PASSWORD,
        first_name="Grace",
        last_name="Hopper",
        email_verified=True,
    )
    reader: CallOptions = {"metadata": bearer(keys.reader), "timeout": RPC_TIMEOUT}

    refusals = [
        await rpc_error(stub.RegisterUser(vouched, metadata=bearer(key), timeout=RPC_TIMEOUT))
        for key in (keys.plain, keys.reader, keys.writer)
    ]

    assert {error.code() for error in refusals} == {grpc.StatusCode.PERMISSION_DENIED}
    assert all("email_verified" in (error.details() or "") for error in refusals)
    nobody = await rpc_error(
        stub.GetUserByEmail(pb.GetUserByEmailRequest(email="vouched@example.com"), **reader)
    )
    assert nobody.code() == grpc.StatusCode.NOT_FOUND  # nothing was registered
    user = await stub.RegisterUser(vouched, metadata=bearer(keys.admin), timeout=RPC_TIMEOUT)
    assert user.email_verified


async def test_the_admin_key_may_call_every_admin_rpc(
    stub: user_service_pb2_grpc.UserServiceAsyncStub, keys: CallerKeys
) -> None:
    admin: CallOptions = {"metadata": bearer(keys.admin), "timeout": RPC_TIMEOUT}
    user, _ = await signed_in_user(stub, keys.admin)

    listed = await stub.ListUsers(pb.ListUsersRequest(), **admin)
    ended = await stub.LogoutAll(pb.LogoutAllRequest(user_id=user.id), **admin)
    disabled = await stub.DisableUser(pb.DisableUserRequest(id=user.id), **admin)
    enabled = await stub.EnableUser(pb.EnableUserRequest(id=user.id), **admin)
    await stub.DeleteUser(
        pb.DeleteUserRequest(id=user.id, expected_version=enabled.version), **admin
    )

    assert [listed_user.id for listed_user in listed.users] == [user.id]
    assert ended.sessions_ended == 1
    assert disabled.status == pb.USER_STATUS_DISABLED
    assert enabled.status == pb.USER_STATUS_ACTIVE
    gone = await rpc_error(stub.GetUser(pb.GetUserRequest(id=user.id), **admin))
    assert gone.code() == grpc.StatusCode.NOT_FOUND


# --- health and reflection ------------------------------------------------------------------------


async def health_status(channel: grpc.aio.Channel, metadata: Any = None) -> Any:
    health = health_pb2_grpc.HealthStub(channel)
    reply = await health.Check(  # type: ignore[attr-defined]  # the stub's HealthStub declares no RPCs
        health_pb2.HealthCheckRequest(), metadata=metadata, timeout=RPC_TIMEOUT
    )
    return reply.status


REFLECTION_SERVICES = (
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
)


async def reflected_services(
    channel: grpc.aio.Channel,
    metadata: Any = None,
    service: str = "grpc.reflection.v1alpha.ServerReflection",
) -> set[str]:
    """The services reflection lists; v1's messages are v1alpha's on the wire."""
    call: Any = channel.stream_stream(
        f"/{service}/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
        metadata=metadata,
        timeout=RPC_TIMEOUT,
    )
    replies = [reply async for reply in call]
    return {entry.name for entry in replies[0].list_services_response.service}


async def test_health_and_reflection_answer_callers_without_a_key(
    secured: SecuredService,
) -> None:
    async with secured.channel() as channel:
        assert await health_status(channel) == SERVING
        for service in REFLECTION_SERVICES:
            assert "biome.user.v1.UserService" in await reflected_services(channel, service=service)


async def test_health_and_reflection_need_a_key_when_not_public(
    moto_endpoint: str, tls: TlsMaterial, keys: CallerKeys
) -> None:
    settings = tls_settings(moto_endpoint, tls, keys, public_health_and_reflection=False)
    async with secured_service(settings, tls) as running, running.channel() as channel:
        health_error = await rpc_error(health_status(channel))
        reflection_errors = [
            await rpc_error(reflected_services(channel, service=service))
            for service in REFLECTION_SERVICES
        ]

        assert health_error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert [error.code() for error in reflection_errors] == [
            grpc.StatusCode.UNAUTHENTICATED
        ] * len(REFLECTION_SERVICES)
        assert await health_status(channel, bearer(keys.plain)) == SERVING
        for service in REFLECTION_SERVICES:
            listed = await reflected_services(channel, bearer(keys.plain), service=service)
            assert "grpc.health.v1.Health" in listed


# --- transport ------------------------------------------------------------------------------------


async def test_a_plaintext_client_cannot_talk_to_the_tls_server(
    secured: SecuredService, keys: CallerKeys
) -> None:
    async with secured.plaintext_channel() as channel:
        stub = user_service_pb2_grpc.UserServiceStub(channel)
        error = await rpc_error(
            stub.GetJwks(pb.GetJwksRequest(), metadata=bearer(keys.admin), timeout=RPC_TIMEOUT)
        )

    assert error.code() == grpc.StatusCode.UNAVAILABLE


# --- mutual TLS -----------------------------------------------------------------------------------


async def test_a_client_certificate_mapped_to_admin_may_list_users(
    mutual_tls: SecuredService, tls: TlsMaterial
) -> None:
    async with mutual_tls.channel(tls.client_cert("ops-console")) as channel:
        stub = user_service_pb2_grpc.UserServiceStub(channel)
        user = await stub.RegisterUser(registration(), timeout=RPC_TIMEOUT)
        listed = await stub.ListUsers(pb.ListUsersRequest(), timeout=RPC_TIMEOUT)

    assert [listed_user.id for listed_user in listed.users] == [user.id]


async def test_a_client_certificate_without_a_role_may_call_ordinary_rpcs_only(
    mutual_tls: SecuredService, tls: TlsMaterial
) -> None:
    async with mutual_tls.channel(tls.client_cert("billing")) as channel:
        stub = user_service_pb2_grpc.UserServiceStub(channel)
        jwks = await stub.GetJwks(pb.GetJwksRequest(), timeout=RPC_TIMEOUT)
        error = await rpc_error(stub.ListUsers(pb.ListUsersRequest(), timeout=RPC_TIMEOUT))

    assert [key.kid for key in jwks.keys] == [key["kid"] for key in mutual_tls.jwks]
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize("certificate", ["none", "untrusted"])
async def test_a_client_without_a_trusted_certificate_cannot_connect(
    mutual_tls: SecuredService, tls: TlsMaterial, certificate: str
) -> None:
    client_cert = tls.untrusted_client_cert("ops-console") if certificate == "untrusted" else None
    async with mutual_tls.channel(client_cert) as channel:
        stub = user_service_pb2_grpc.UserServiceStub(channel)
        error = await rpc_error(stub.GetJwks(pb.GetJwksRequest(), timeout=RPC_TIMEOUT))

    assert error.code() == grpc.StatusCode.UNAVAILABLE


# --- the production profile -----------------------------------------------------------------------


def production_settings(moto_endpoint: str, tls: TlsMaterial | None, **fields: Any) -> Settings:
    """Production settings over moto, with the harness's fields; TLS files when ``tls`` is given."""
    if tls is not None:
        fields = {"tls_cert_file": tls.server_cert, "tls_key_file": tls.server_key, **fields}
    fields = {**HTTPS_MAIL_LINKS, **fields}
    return service_settings(moto_endpoint, profile="production", allow_plaintext=False, **fields)


async def test_the_production_profile_boots_with_tls_api_keys_and_a_signing_key_file(
    moto_endpoint: str, tls: TlsMaterial, keys: CallerKeys, tmp_path: Path
) -> None:
    signing_keys = generate_signing_keys()
    key_file = tmp_path / "jwt-signing.pem"
    key_file.write_text(signing_key_pem(signing_keys))
    settings = production_settings(
        moto_endpoint, tls, api_keys=keys.settings(), jwt_signing_keys_file=key_file
    )

    async with secured_service(settings, tls) as running, running.channel() as channel:
        stub = user_service_pb2_grpc.UserServiceStub(channel)
        jwks = await stub.GetJwks(
            pb.GetJwksRequest(), metadata=bearer(keys.plain), timeout=RPC_TIMEOUT
        )
        anonymous = await rpc_error(stub.GetJwks(pb.GetJwksRequest(), timeout=RPC_TIMEOUT))

    assert [key.kid for key in jwks.keys] == [signing_keys.kid]
    assert (jwks.keys[0].kty, jwks.keys[0].crv) == ("OKP", "Ed25519")
    assert anonymous.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_the_production_profile_refuses_to_serve_without_tls(
    moto_endpoint: str, keys: CallerKeys, tmp_path: Path
) -> None:
    key_file = tmp_path / "jwt-signing.pem"
    key_file.write_text(signing_key_pem(generate_signing_keys()))
    settings = production_settings(
        moto_endpoint, None, api_keys=keys.settings(), jwt_signing_keys_file=key_file
    )

    with pytest.raises(ValueError, match="production needs USER_SERVICE_TLS_CERT_FILE"):
        async with running_service(settings, address="127.0.0.1:0"):
            pass


# --- the log --------------------------------------------------------------------------------------


async def test_api_keys_never_appear_in_the_log(
    secured: SecuredService,
    stub: user_service_pb2_grpc.UserServiceAsyncStub,
    keys: CallerKeys,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong_key = new_api_key()
    user, session = await signed_in_user(stub, keys.plain)
    for key in (keys.plain, wrong_key):
        await rpc_error(
            stub.ListUsers(pb.ListUsersRequest(), metadata=bearer(key), timeout=RPC_TIMEOUT)
        )
    await rpc_error(stub.GetJwks(pb.GetJwksRequest(), timeout=RPC_TIMEOUT))
    await stub.RefreshSession(
        pb.RefreshSessionRequest(refresh_token=session.refresh_token),
        metadata=bearer(keys.plain),
        timeout=RPC_TIMEOUT,
    )
    await stub.DisableUser(
        pb.DisableUserRequest(id=user.id), metadata=bearer(keys.admin), timeout=RPC_TIMEOUT
    )

    messages = [record.getMessage() for record in caplog.records]
    # The denials were logged (so the check below looked at the right records)...
    assert any("denied" in message and "ListUsers" in message for message in messages)
    # ...without the keys that were presented, nor any part long enough to matter.
    for raw in (keys.admin, keys.plain, wrong_key):
        secret = raw.removeprefix("usk_")
        for message in messages:
            assert secret[:16] not in message, message
