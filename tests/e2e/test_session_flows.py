"""Sessions over a real gRPC channel: sign-in, access tokens, rotation, reuse, logout, limits."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from biome.user.v1 import user_service_pb2 as pb

from tests.e2e.auth_helpers import (
    ACCESS_TOKEN_LIFETIME,
    LOCK_OUT_WAIT_SECONDS,
    NEW_PASSWORD,
    PASSWORD,
    TIMEOUT,
    WRONG_PASSWORD,
    lock_out,
    refresh,
    refresh_error,
    register,
    reply_of,
    sign_in,
    sign_in_error,
    status_text,
    unique_email,
    verify_access_token,
)
from tests.e2e.harness import Service, rpc_error
from tests.smtp_server import reset_token_from

# --- sign-in -------------------------------------------------------------------------------------


async def test_authenticate_returns_a_session_whose_access_token_verifies_with_the_published_jwks(
    service: Service,
) -> None:
    account = await register(service)

    reply = await sign_in(service, account.email.upper(), PASSWORD)

    assert reply.expires_in == ACCESS_TOKEN_LIFETIME
    assert reply.user == account.user  # signing in changes nothing a caller sees
    assert str(uuid.UUID(reply.session_id)) == reply.session_id
    assert reply.refresh_token and reply.refresh_token != reply.access_token
    claims = await verify_access_token(service, reply.access_token)
    assert claims["sub"] == account.id
    assert claims["sid"] == reply.session_id
    assert claims["exp"] == claims["iat"] + ACCESS_TOKEN_LIFETIME
    assert claims["jti"]


async def test_each_sign_in_opens_its_own_session_with_its_own_tokens(service: Service) -> None:
    account = await register(service)

    first = await sign_in(service, account.email, PASSWORD)
    second = await sign_in(service, account.email, PASSWORD)

    assert first.session_id != second.session_id
    assert first.refresh_token != second.refresh_token
    first_claims = await verify_access_token(service, first.access_token)
    second_claims = await verify_access_token(service, second.access_token)
    assert first_claims["jti"] != second_claims["jti"]


async def test_unknown_email_and_wrong_password_fail_alike_without_echoing_either(
    service: Service,
) -> None:
    account = await register(service)

    unknown = await sign_in_error(service, unique_email("nobody"), PASSWORD)
    wrong = await sign_in_error(service, account.email, WRONG_PASSWORD)

    assert unknown.code() == grpc.StatusCode.UNAUTHENTICATED
    assert status_text(wrong) == status_text(unknown)
    for error in (unknown, wrong):
        assert PASSWORD not in (error.details() or "")
        assert WRONG_PASSWORD not in (error.details() or "")
        assert account.email not in (error.details() or "")


# --- refresh and rotation ------------------------------------------------------------------------


async def test_refresh_right_after_sign_in_rotates_to_new_tokens_for_the_same_session(
    service: Service,
) -> None:
    account = await register(service)
    signed_in = await sign_in(service, account.email, PASSWORD)

    refreshed = await refresh(service, signed_in.refresh_token)

    assert refreshed.expires_in == ACCESS_TOKEN_LIFETIME
    assert refreshed.refresh_token != signed_in.refresh_token
    assert refreshed.access_token != signed_in.access_token
    claims = await verify_access_token(service, refreshed.access_token)
    assert (claims["sub"], claims["sid"]) == (account.id, signed_in.session_id)
    # The new refresh token is the one that works now, and it rotates in turn.
    again = await refresh(service, refreshed.refresh_token)
    assert again.refresh_token not in (signed_in.refresh_token, refreshed.refresh_token)


async def test_concurrent_refreshes_with_one_token_let_exactly_one_win_and_keep_the_session(
    service: Service,
) -> None:
    account = await register(service)
    signed_in = await sign_in(service, account.email, PASSWORD)

    outcomes = await asyncio.gather(
        *(
            service.stub.RefreshSession(
                pb.RefreshSessionRequest(refresh_token=signed_in.refresh_token), timeout=TIMEOUT
            )
            for _ in range(10)
        ),
        return_exceptions=True,
    )

    winners = [o for o in outcomes if isinstance(o, pb.RefreshSessionResponse)]
    losers = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(winners) == 1, outcomes
    assert len(losers) == 9, outcomes
    assert {error.code() for error in losers} == {grpc.StatusCode.ABORTED}
    # Losing a race is not reuse: the session lives on with the winner's token.
    assert (await refresh(service, winners[0].refresh_token)).refresh_token


async def test_an_exchanged_token_back_within_the_grace_is_refused_as_a_lost_race_only(
    service: Service,
) -> None:
    account = await register(service)
    t0 = (await sign_in(service, account.email, PASSWORD)).refresh_token
    t1 = (await refresh(service, t0)).refresh_token

    error = await refresh_error(service, t0)

    assert error.code() == grpc.StatusCode.ABORTED
    assert t0 not in (error.details() or "")
    # Within the grace the session is kept: the token that won still rotates.
    t2 = (await refresh(service, t1)).refresh_token
    assert (await refresh(service, t2)).refresh_token


async def test_an_exchanged_token_back_after_the_grace_ends_the_whole_session(
    service: Service,
) -> None:
    account = await register(service)
    t0 = (await sign_in(service, account.email, PASSWORD)).refresh_token
    t1 = (await refresh(service, t0)).refresh_token
    service.clock.advance(seconds=11)

    reused = await refresh_error(service, t0)

    assert reused.code() == grpc.StatusCode.UNAUTHENTICATED
    assert t0 not in (reused.details() or "")
    ended = await refresh_error(service, t1)
    assert ended.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_refresh_refuses_tokens_it_never_issued_without_echoing_them(
    service: Service,
) -> None:
    account = await register(service)
    real = (await sign_in(service, account.email, PASSWORD)).refresh_token
    forged = [
        "not-a-token",
        f"{account.id}.forged-secret-that-was-never-issued",
        real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB"),
    ]

    for token in forged:
        error = await refresh_error(service, token)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, token
        assert token not in (error.details() or "")
    # None of the forgeries hurt the real session.
    assert (await refresh(service, real)).refresh_token


# --- logout --------------------------------------------------------------------------------------


async def test_logout_ends_only_that_session_and_is_idempotent(service: Service) -> None:
    account = await register(service)
    leaving = await sign_in(service, account.email, PASSWORD)
    staying = await sign_in(service, account.email, PASSWORD)

    await service.stub.Logout(
        pb.LogoutRequest(refresh_token=leaving.refresh_token), timeout=TIMEOUT
    )

    error = await refresh_error(service, leaving.refresh_token)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    again = await service.stub.Logout(
        pb.LogoutRequest(refresh_token=leaving.refresh_token), timeout=TIMEOUT
    )
    assert again == pb.LogoutResponse()
    unknown = await service.stub.Logout(
        pb.LogoutRequest(refresh_token=f"{account.id}.never-issued"), timeout=TIMEOUT
    )
    assert unknown == pb.LogoutResponse()
    assert (await refresh(service, staying.refresh_token)).refresh_token


async def test_logout_with_an_exchanged_token_ends_its_session(service: Service) -> None:
    account = await register(service)
    t0 = (await sign_in(service, account.email, PASSWORD)).refresh_token
    t1 = (await refresh(service, t0)).refresh_token

    await service.stub.Logout(pb.LogoutRequest(refresh_token=t0), timeout=TIMEOUT)

    assert (await refresh_error(service, t1)).code() == grpc.StatusCode.UNAUTHENTICATED


async def test_logout_all_ends_every_session_and_counts_them(service: Service) -> None:
    account = await register(service)
    other = await register(service, label="other")
    sessions = [await sign_in(service, account.email, PASSWORD) for _ in range(3)]
    bystander = await sign_in(service, other.email, PASSWORD)
    rotated = await refresh(service, sessions[0].refresh_token)

    reply = await service.stub.LogoutAll(pb.LogoutAllRequest(user_id=account.id), timeout=TIMEOUT)

    assert reply.sessions_ended == 3
    for token in (rotated.refresh_token, sessions[1].refresh_token, sessions[2].refresh_token):
        assert (await refresh_error(service, token)).code() == grpc.StatusCode.UNAUTHENTICATED
    assert (await refresh(service, bystander.refresh_token)).refresh_token
    nothing_left = await service.stub.LogoutAll(
        pb.LogoutAllRequest(user_id=account.id), timeout=TIMEOUT
    )
    assert nothing_left.sessions_ended == 0
    # Signing in again still works after everything ended.
    assert (await sign_in(service, account.email, PASSWORD)).refresh_token


async def test_logout_all_of_an_unknown_user_is_not_found(service: Service) -> None:
    error = await rpc_error(
        service.stub.LogoutAll(pb.LogoutAllRequest(user_id=str(uuid.uuid4())), timeout=TIMEOUT)
    )

    assert error.code() == grpc.StatusCode.NOT_FOUND


# --- limits and lifetimes ------------------------------------------------------------------------


async def test_the_eleventh_sign_in_evicts_the_oldest_session_only(service: Service) -> None:
    account = await register(service)

    sessions = [await sign_in(service, account.email, PASSWORD) for _ in range(11)]

    oldest = await refresh_error(service, sessions[0].refresh_token)
    assert oldest.code() == grpc.StatusCode.UNAUTHENTICATED
    assert (await refresh(service, sessions[1].refresh_token)).refresh_token
    assert (await refresh(service, sessions[10].refresh_token)).refresh_token


async def test_a_session_idle_for_more_than_seven_days_no_longer_refreshes(
    service: Service,
) -> None:
    account = await register(service)
    token = (await sign_in(service, account.email, PASSWORD)).refresh_token

    service.clock.advance(days=8)

    assert (await refresh_error(service, token)).code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_session_in_use_lives_past_seven_days_but_ends_after_thirty(
    service: Service,
) -> None:
    account = await register(service)
    token = (await sign_in(service, account.email, PASSWORD)).refresh_token

    for _ in range(4):  # day 24, each refresh within the idle lifetime of the last one
        service.clock.advance(days=6)
        token = (await refresh(service, token)).refresh_token
    service.clock.advance(days=6, hours=1)  # day 30 + 1 h: not idle, but past the absolute end

    assert (await refresh_error(service, token)).code() == grpc.StatusCode.UNAUTHENTICATED


# --- lock-out ------------------------------------------------------------------------------------


async def test_five_wrong_passwords_make_the_next_attempt_wait_and_hide_it(
    service: Service,
) -> None:
    account, other = await register(service), await register(service, label="other")
    unknown = await sign_in_error(service, unique_email("nobody"), WRONG_PASSWORD)
    failed = await sign_in_error(service, other.email, WRONG_PASSWORD)
    assert reply_of(failed) == reply_of(unknown)
    await lock_out(service, account.email)  # counts from 0 failures

    # During the wait the right password gets the very reply of a wrong one, or of no account.
    right = await sign_in_error(service, account.email, PASSWORD)
    wrong = await sign_in_error(service, account.email, WRONG_PASSWORD)

    assert reply_of(right) == reply_of(wrong) == reply_of(unknown)
    service.clock.advance(seconds=LOCK_OUT_WAIT_SECONDS)
    assert (await sign_in(service, account.email, PASSWORD)).refresh_token


async def test_the_owner_is_mailed_once_when_the_account_locks_with_a_reset_link(
    service: Service,
) -> None:
    account = await register(service)
    for _ in range(5):
        await sign_in_error(service, account.email, WRONG_PASSWORD)

    notice = await service.smtp.wait_for_message(to=account.email)

    assert notice["Subject"] == "Your account was locked after failed sign-ins"
    assert notice.get_content_type() == "multipart/alternative"
    plain = notice.get_body(preferencelist=("plain",))
    assert plain is not None
    # The first name in the greeting, and nothing else they chose (the last name).
    assert plain.get_content().startswith("Hello Ada,")  # registered as Ada Byron by register()
    assert "Byron" not in plain.get_content()
    service.clock.advance(seconds=1)
    await sign_in_error(service, account.email, WRONG_PASSWORD)  # the 6th: no second notice
    with pytest.raises(AssertionError, match="no new message"):
        await service.smtp.wait_for_message(to=account.email, timeout=1.0)
    await service.stub.ResetPassword(
        pb.ResetPasswordRequest(reset_token=reset_token_from(notice), new_password=NEW_PASSWORD),
        timeout=TIMEOUT,
    )
    assert (await sign_in(service, account.email, NEW_PASSWORD)).refresh_token


async def test_four_wrong_passwords_do_not_lock_and_a_success_clears_them(
    service: Service,
) -> None:
    account = await register(service)
    for _ in range(4):
        await sign_in_error(service, account.email, WRONG_PASSWORD)

    assert (await sign_in(service, account.email, PASSWORD)).refresh_token

    # The success reset the count: four more failures still do not lock.
    for _ in range(4):
        await sign_in_error(service, account.email, WRONG_PASSWORD)
    assert (await sign_in(service, account.email, PASSWORD)).refresh_token


async def test_failures_count_in_a_row_however_far_apart(service: Service) -> None:
    account = await register(service)
    for _ in range(4):
        await sign_in_error(service, account.email, WRONG_PASSWORD)
    service.clock.advance(minutes=16)

    await sign_in_error(service, account.email, WRONG_PASSWORD)

    notice = await service.smtp.wait_for_message(to=account.email)  # the 5th: locked
    assert notice["Subject"] == "Your account was locked after failed sign-ins"
