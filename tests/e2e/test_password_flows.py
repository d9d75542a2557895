"""Passwords over a real gRPC channel: change with the current one, reset by a mailed token."""

from __future__ import annotations

import grpc
import pytest
from biome.user.v1 import user_service_pb2 as pb

from tests.e2e.auth_helpers import (
    NEW_PASSWORD,
    PASSWORD,
    TIMEOUT,
    WRONG_PASSWORD,
    lock_out,
    refresh,
    refresh_error,
    register,
    sign_in,
    sign_in_error,
    unique_email,
)
from tests.e2e.harness import Service, field_violations, rpc_error
from tests.smtp_server import reset_token_from

QUIET_PERIOD = 0.5  # seconds to wait for a mail that must not come


def change(
    user_id: str, current: str, new: str, keep_session_id: str = ""
) -> pb.ChangePasswordRequest:
    return pb.ChangePasswordRequest(
        user_id=user_id,
        current_password=current,
        new_password=new,
        keep_session_id=keep_session_id,
    )


async def request_reset(service: Service, email: str) -> pb.RequestPasswordResetResponse:
    return await service.stub.RequestPasswordReset(
        pb.RequestPasswordResetRequest(email=email), timeout=TIMEOUT
    )


async def mailed_reset_token(service: Service, email: str) -> str:
    message = await service.smtp.wait_for_message(to=email)
    return reset_token_from(message)


def reset(token: str, new_password: str = NEW_PASSWORD) -> pb.ResetPasswordRequest:
    return pb.ResetPasswordRequest(reset_token=token, new_password=new_password)


async def assert_no_mail_to(service: Service, email: str) -> None:
    with pytest.raises(AssertionError, match="no new message"):
        await service.smtp.wait_for_message(to=email, timeout=QUIET_PERIOD)


# --- change ---------------------------------------------------------------------------------------


async def test_change_password_with_a_wrong_current_password_is_unauthenticated(
    service: Service,
) -> None:
    account = await register(service)

    error = await rpc_error(
        service.stub.ChangePassword(
            change(account.id, WRONG_PASSWORD, NEW_PASSWORD), timeout=TIMEOUT
        )
    )

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    for secret in (WRONG_PASSWORD, NEW_PASSWORD, PASSWORD):
        assert secret not in (error.details() or "")
    assert (await sign_in(service, account.email, PASSWORD)).refresh_token
    assert (await sign_in_error(service, account.email, NEW_PASSWORD)).code() == (
        grpc.StatusCode.UNAUTHENTICATED
    )


async def test_change_password_refuses_a_common_new_password_naming_new_password(
    service: Service,
) -> None:
    account = await register(service)

    error = await rpc_error(
        service.stub.ChangePassword(change(account.id, PASSWORD, "password123"), timeout=TIMEOUT)
    )

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "new_password" in field_violations(error)
    assert "password123" not in (error.details() or "")
    assert (await sign_in(service, account.email, PASSWORD)).refresh_token


async def test_change_password_keeps_only_the_callers_session_and_swaps_the_password(
    service: Service,
) -> None:
    account = await register(service)
    caller = await sign_in(service, account.email, PASSWORD)
    elsewhere = await sign_in(service, account.email, PASSWORD)

    reply = await service.stub.ChangePassword(
        change(account.id, PASSWORD, NEW_PASSWORD, keep_session_id=caller.session_id),
        timeout=TIMEOUT,
    )

    assert reply == pb.ChangePasswordResponse()
    assert (await refresh(service, caller.refresh_token)).refresh_token
    ended = await refresh_error(service, elsewhere.refresh_token)
    assert ended.code() == grpc.StatusCode.UNAUTHENTICATED
    old = await sign_in_error(service, account.email, PASSWORD)
    assert old.code() == grpc.StatusCode.UNAUTHENTICATED
    assert (await sign_in(service, account.email, NEW_PASSWORD)).refresh_token


async def test_change_password_without_a_session_to_keep_ends_every_session(
    service: Service,
) -> None:
    account = await register(service)
    sessions = [await sign_in(service, account.email, PASSWORD) for _ in range(2)]

    await service.stub.ChangePassword(change(account.id, PASSWORD, NEW_PASSWORD), timeout=TIMEOUT)

    for session in sessions:
        error = await refresh_error(service, session.refresh_token)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_wrong_current_passwords_count_towards_the_lock_out(service: Service) -> None:
    account = await register(service)
    for _ in range(5):
        await rpc_error(
            service.stub.ChangePassword(
                change(account.id, WRONG_PASSWORD, NEW_PASSWORD), timeout=TIMEOUT
            )
        )

    notice = await service.smtp.wait_for_message(to=account.email)  # the 5th locked it

    assert notice["Subject"] == "Your account was locked after failed sign-ins"
    # Checked before the new password: a common one is not refused for what it is.
    common = await rpc_error(
        service.stub.ChangePassword(
            change(account.id, WRONG_PASSWORD, "password1"), timeout=TIMEOUT
        )
    )
    assert common.code() == grpc.StatusCode.UNAUTHENTICATED


# --- reset ----------------------------------------------------------------------------------------


async def test_a_mailed_reset_token_sets_a_new_password_once_and_ends_every_session(
    service: Service,
) -> None:
    account = await register(service)
    sessions = [await sign_in(service, account.email, PASSWORD) for _ in range(2)]

    reply = await request_reset(service, account.email.upper())
    token = await mailed_reset_token(service, account.email)
    await service.stub.ResetPassword(reset(token), timeout=TIMEOUT)

    assert reply == pb.RequestPasswordResetResponse()
    for session in sessions:
        error = await refresh_error(service, session.refresh_token)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    used = await rpc_error(
        service.stub.ResetPassword(reset(token, "copper-meadow-58"), timeout=TIMEOUT)
    )
    assert used.code() == grpc.StatusCode.UNAUTHENTICATED
    assert token not in (used.details() or "")
    old = await sign_in_error(service, account.email, PASSWORD)
    assert old.code() == grpc.StatusCode.UNAUTHENTICATED
    assert (await sign_in(service, account.email, NEW_PASSWORD)).refresh_token


async def test_reset_for_an_unknown_address_replies_the_same_and_mails_nothing(
    service: Service,
) -> None:
    nobody = unique_email("nobody")

    reply = await request_reset(service, nobody)

    assert reply == pb.RequestPasswordResetResponse()
    await assert_no_mail_to(service, nobody)


async def test_a_newer_reset_request_supersedes_the_earlier_token(service: Service) -> None:
    account = await register(service)
    await request_reset(service, account.email)
    first = await mailed_reset_token(service, account.email)
    service.clock.advance(seconds=61)  # past the security mail cool-down
    await request_reset(service, account.email)
    second = await mailed_reset_token(service, account.email)

    superseded = await rpc_error(service.stub.ResetPassword(reset(first), timeout=TIMEOUT))

    assert first != second
    assert superseded.code() == grpc.StatusCode.UNAUTHENTICATED
    await service.stub.ResetPassword(reset(second), timeout=TIMEOUT)
    assert (await sign_in(service, account.email, NEW_PASSWORD)).refresh_token


async def test_a_reset_token_expires_after_an_hour(service: Service) -> None:
    account = await register(service)
    await request_reset(service, account.email)
    token = await mailed_reset_token(service, account.email)
    service.clock.advance(minutes=61)

    expired = await rpc_error(service.stub.ResetPassword(reset(token), timeout=TIMEOUT))

    assert expired.code() == grpc.StatusCode.UNAUTHENTICATED
    assert (await sign_in(service, account.email, PASSWORD)).refresh_token


async def test_a_reset_token_still_works_after_a_refused_weak_password(service: Service) -> None:
    account = await register(service)
    await request_reset(service, account.email)
    token = await mailed_reset_token(service, account.email)

    weak = await rpc_error(service.stub.ResetPassword(reset(token, "password123"), timeout=TIMEOUT))

    assert weak.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "new_password" in field_violations(weak)
    await service.stub.ResetPassword(reset(token), timeout=TIMEOUT)
    assert (await sign_in(service, account.email, NEW_PASSWORD)).refresh_token


async def test_a_forged_reset_token_is_unauthenticated_without_echoing_it(
    service: Service,
) -> None:
    account = await register(service)
    await request_reset(service, account.email)
    real = await mailed_reset_token(service, account.email)
    forged = f"{account.id}.a-token-this-service-never-issued"

    for token in (forged, "garbage"):
        error = await rpc_error(service.stub.ResetPassword(reset(token), timeout=TIMEOUT))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert token not in (error.details() or "")
    await service.stub.ResetPassword(reset(real), timeout=TIMEOUT)


async def test_a_password_reset_lifts_a_lock_out(service: Service) -> None:
    account = await register(service)
    await lock_out(service, account.email)
    assert (await sign_in_error(service, account.email, PASSWORD)).code() == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    await service.smtp.wait_for_message(to=account.email)  # the lock notice
    service.clock.advance(seconds=61)  # past the security mail cool-down the notice began
    await request_reset(service, account.email)
    token = await mailed_reset_token(service, account.email)

    await service.stub.ResetPassword(reset(token), timeout=TIMEOUT)

    assert (await sign_in(service, account.email, NEW_PASSWORD)).refresh_token
