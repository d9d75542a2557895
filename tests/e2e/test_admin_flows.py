"""Administration over a real gRPC channel: disabling and enabling an account."""

from __future__ import annotations

import uuid

import grpc
import pytest
from biome.user.v1 import user_service_pb2 as pb

from tests.e2e.auth_helpers import (
    PASSWORD,
    TIMEOUT,
    WRONG_PASSWORD,
    refresh,
    refresh_error,
    register,
    sign_in,
    sign_in_error,
    status_text,
    unique_email,
)
from tests.e2e.harness import Service, field_violations, rpc_error


async def disable(service: Service, user_id: str) -> pb.User:
    return await service.stub.DisableUser(pb.DisableUserRequest(id=user_id), timeout=TIMEOUT)


async def enable(service: Service, user_id: str) -> pb.User:
    return await service.stub.EnableUser(pb.EnableUserRequest(id=user_id), timeout=TIMEOUT)


async def test_disable_user_blocks_sign_in_and_ends_every_session(service: Service) -> None:
    account = await register(service)
    bystander = await register(service, label="bystander")
    sessions = [await sign_in(service, account.email, PASSWORD) for _ in range(2)]
    other_session = await sign_in(service, bystander.email, PASSWORD)

    disabled = await disable(service, account.id)

    assert disabled.status == pb.USER_STATUS_DISABLED
    assert disabled.id == account.id
    for session in sessions:
        error = await refresh_error(service, session.refresh_token)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    right = await sign_in_error(service, account.email, PASSWORD)
    assert right.code() == grpc.StatusCode.PERMISSION_DENIED
    wrong = await sign_in_error(service, account.email, WRONG_PASSWORD)
    unknown = await sign_in_error(service, unique_email("nobody"), WRONG_PASSWORD)
    assert wrong.code() == grpc.StatusCode.UNAUTHENTICATED
    assert status_text(wrong) == status_text(unknown)
    assert (await refresh(service, other_session.refresh_token)).refresh_token
    stored = await service.stub.GetUser(pb.GetUserRequest(id=account.id), timeout=TIMEOUT)
    assert stored.status == pb.USER_STATUS_DISABLED


async def test_disable_user_is_idempotent(service: Service) -> None:
    account = await register(service)
    first = await disable(service, account.id)

    second = await disable(service, account.id)

    assert second.status == pb.USER_STATUS_DISABLED
    assert second.version == first.version  # nothing changed, nothing written


async def test_enable_user_lets_a_disabled_user_sign_in_again_and_is_idempotent(
    service: Service,
) -> None:
    account = await register(service)
    await disable(service, account.id)

    enabled = await enable(service, account.id)
    again = await enable(service, account.id)

    assert enabled.status == again.status == pb.USER_STATUS_ACTIVE
    assert again.version == enabled.version
    reply = await sign_in(service, account.email, PASSWORD)
    assert (await refresh(service, reply.refresh_token)).refresh_token


async def test_enable_user_leaves_an_active_user_as_it_is(service: Service) -> None:
    account = await register(service)

    enabled = await enable(service, account.id)

    assert enabled.status == pb.USER_STATUS_ACTIVE
    assert enabled.version == account.user.version
    assert (await sign_in(service, account.email, PASSWORD)).refresh_token


async def test_a_disabled_user_gets_no_reset_mail(service: Service) -> None:
    account = await register(service)
    await disable(service, account.id)

    reply = await service.stub.RequestPasswordReset(
        pb.RequestPasswordResetRequest(email=account.email), timeout=TIMEOUT
    )

    assert reply == pb.RequestPasswordResetResponse()
    with pytest.raises(AssertionError, match="no new message"):
        await service.smtp.wait_for_message(to=account.email, timeout=0.5)


@pytest.mark.parametrize("rpc", ["DisableUser", "EnableUser"])
@pytest.mark.parametrize("bad_id", ["", "not-a-uuid"])
async def test_disable_and_enable_refuse_a_malformed_id_naming_the_id_field(
    service: Service, rpc: str, bad_id: str
) -> None:
    request = (
        pb.DisableUserRequest(id=bad_id)
        if rpc == "DisableUser"
        else pb.EnableUserRequest(id=bad_id)
    )

    error = await rpc_error(getattr(service.stub, rpc)(request, timeout=TIMEOUT))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "id" in field_violations(error)


@pytest.mark.parametrize("rpc", ["DisableUser", "EnableUser"])
async def test_disable_and_enable_of_an_unknown_user_are_not_found(
    service: Service, rpc: str
) -> None:
    request_type = pb.DisableUserRequest if rpc == "DisableUser" else pb.EnableUserRequest

    error = await rpc_error(
        getattr(service.stub, rpc)(request_type(id=str(uuid.uuid4())), timeout=TIMEOUT)
    )

    assert error.code() == grpc.StatusCode.NOT_FOUND
