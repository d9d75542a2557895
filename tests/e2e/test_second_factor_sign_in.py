"""Sign-in with a second factor over a real gRPC channel, the codes computed with pyotp as an
authenticator app would: Authenticate answers a user with TOTP with a challenge and no tokens;
CompleteSignIn with a TOTP or a recovery code opens the session (amr ["pwd","otp"], kept on
refresh); a replayed code, an exhausted, used, expired or another user's challenge are refused
with their documented status and change nothing; a user without factors signs in as before."""

from __future__ import annotations

from datetime import UTC, timedelta

import grpc
from biome.user.v1 import user_service_pb2 as pb

from tests.e2e.auth_helpers import (
    PASSWORD,
    TIMEOUT,
    WRONG_PASSWORD,
    Account,
    refresh,
    register,
    sign_in,
    sign_in_error,
    verify_access_token,
)
from tests.e2e.harness import Service, field_violations, rpc_error
from tests.e2e.test_second_factor_flows import app_code, enrolled, next_step, stored_item

Code = grpc.StatusCode
LIFETIME_SECONDS = 300  # USER_SERVICE_SIGN_IN_CHALLENGE_LIFETIME_SECONDS's default


async def challenge(service: Service, account: Account) -> pb.SignInChallenge:
    reply = await sign_in(service, account.email, account.password)
    assert reply.HasField("challenge")
    return reply.challenge


async def complete(
    service: Service, token: str, *, totp: str | None = None, recovery: str | None = None
) -> pb.AuthenticateResponse:
    request = pb.CompleteSignInRequest(
        challenge_token=token,
        client=pb.ClientDetails(user_agent="Firefox/128.0", device_label="desk"),
    )
    if totp is not None:
        request.totp_code = totp
    if recovery is not None:
        request.recovery_code = recovery
    return await service.stub.CompleteSignIn(request, timeout=TIMEOUT)


async def complete_error(service: Service, token: str, **proof: str) -> grpc.aio.AioRpcError:
    return await rpc_error(complete(service, token, **proof))


async def test_a_user_without_a_second_factor_gets_tokens_and_amr_pwd(service: Service) -> None:
    account = await register(service, label="plain")

    reply = await sign_in(service, account.email, PASSWORD)

    assert not reply.HasField("challenge") and reply.refresh_token
    assert (await verify_access_token(service, reply.access_token))["amr"] == ["pwd"]


async def test_totp_sign_in_answers_a_challenge_then_the_code_opens_the_session(
    service: Service,
) -> None:
    account, secret, _ = await enrolled(service)

    challenged = await challenge(service, account)
    reply = await complete(service, challenged.challenge_token, totp=app_code(service, secret))

    assert list(challenged.factors) == [pb.SIGN_IN_FACTOR_TOTP, pb.SIGN_IN_FACTOR_RECOVERY_CODE]
    expected_expiry = service.clock() + timedelta(seconds=LIFETIME_SECONDS)
    assert abs(challenged.expires_at.ToDatetime(UTC) - expected_expiry) < timedelta(seconds=5)
    assert reply.user.id == account.id and reply.session_id and reply.refresh_token
    claims = await verify_access_token(service, reply.access_token)
    assert claims["amr"] == ["pwd", "otp"] and claims["sid"] == reply.session_id
    refreshed = await refresh(service, reply.refresh_token)
    assert (await verify_access_token(service, refreshed.access_token))["amr"] == ["pwd", "otp"]
    listed = await service.stub.ListSessions(
        pb.ListSessionsRequest(user_id=account.id), timeout=TIMEOUT
    )
    assert [(s.session_id, s.client.device_label) for s in listed.sessions] == [
        (reply.session_id, "desk")
    ]
    item = await stored_item(service, account.id)
    assert "SignInChallenges" not in item
    assert challenged.challenge_token not in str(item)


async def test_the_challenge_reply_holds_no_token_and_no_user(service: Service) -> None:
    account, _, _ = await enrolled(service)

    reply = await sign_in(service, account.email, PASSWORD)

    assert reply.challenge.challenge_token
    assert (reply.access_token, reply.refresh_token, reply.session_id) == ("", "", "")
    assert not reply.HasField("user")
    listed = await service.stub.ListSessions(
        pb.ListSessionsRequest(user_id=account.id), timeout=TIMEOUT
    )
    assert list(listed.sessions) == []


async def test_a_replayed_code_and_a_used_challenge_are_refused(service: Service) -> None:
    account, secret, _ = await enrolled(service)
    code = app_code(service, secret)
    first = await challenge(service, account)
    await complete(service, first.challenge_token, totp=code)
    second = await challenge(service, account)

    replayed = await complete_error(service, second.challenge_token, totp=code)
    reused = await complete_error(service, first.challenge_token, totp=app_code(service, secret))

    assert replayed.code() is Code.UNAUTHENTICATED and replayed.details() == "the code is not valid"
    assert reused.code() is Code.UNAUTHENTICATED
    assert field_violations(reused) == {
        "challenge_token": "the sign-in challenge is not valid; sign in again with the password"
    }
    item = await stored_item(service, account.id)
    assert item["FailedLogins"] == {"N": "1"}, "the replay counted, the used challenge did not"


async def test_a_recovery_code_signs_in_once(service: Service) -> None:
    account, _, recovery = await enrolled(service)

    reply = await complete(
        service, (await challenge(service, account)).challenge_token, recovery=recovery[0].upper()
    )
    again = await complete_error(
        service, (await challenge(service, account)).challenge_token, recovery=recovery[0]
    )

    assert (await verify_access_token(service, reply.access_token))["amr"] == ["pwd", "otp"]
    assert again.code() is Code.UNAUTHENTICATED
    user = await service.stub.GetUser(pb.GetUserRequest(id=account.id), timeout=TIMEOUT)
    assert user.recovery_codes_remaining == 9
    events = await service.stub.ListUserEvents(
        pb.ListUserEventsRequest(user_id=account.id, page_size=100), timeout=TIMEOUT
    )
    kinds = [event.WhichOneof("kind") for event in events.events]
    assert kinds[-2:] == ["recovery_code_used", "session_started"]


async def test_an_exhausted_challenge_refuses_even_the_right_code(service: Service) -> None:
    account, secret, _ = await enrolled(service)
    token = (await challenge(service, account)).challenge_token
    right = app_code(service, secret)
    wrong = "000000" if right != "000000" else "111111"

    refusals = [await complete_error(service, token, totp=wrong) for _ in range(3)]
    exhausted = await complete_error(service, token, totp=right)

    assert {(e.code(), e.details()) for e in refusals} == {
        (Code.UNAUTHENTICATED, "the code is not valid")
    }
    assert exhausted.code() is Code.UNAUTHENTICATED and "challenge_token" in field_violations(
        exhausted
    )
    item = await stored_item(service, account.id)
    assert "SignInChallenges" not in item and item["FailedLogins"] == {"N": "3"}
    reply = await complete(service, (await challenge(service, account)).challenge_token, totp=right)
    assert reply.session_id


async def test_an_expired_challenge_is_refused_and_changes_nothing(service: Service) -> None:
    account, secret, _ = await enrolled(service)
    token = (await challenge(service, account)).challenge_token
    service.clock.advance(seconds=LIFETIME_SECONDS)
    before = await stored_item(service, account.id)

    expired = await complete_error(service, token, totp=app_code(service, secret))

    assert expired.code() is Code.UNAUTHENTICATED and "challenge_token" in field_violations(expired)
    assert await stored_item(service, account.id) == before


async def test_another_users_challenge_is_refused_and_changes_nothing(service: Service) -> None:
    ada, ada_secret, _ = await enrolled(service)
    grace, _, _ = await enrolled(service)
    theirs = (await challenge(service, grace)).challenge_token
    forged = f"{ada.id}.{theirs.partition('.')[2]}"
    before = await stored_item(service, ada.id), await stored_item(service, grace.id)

    for token in (forged, f"{ada.id}.{'A' * 43}"):
        refused = await complete_error(service, token, totp=app_code(service, ada_secret))
        assert refused.code() is Code.UNAUTHENTICATED, token

    assert (await stored_item(service, ada.id), await stored_item(service, grace.id)) == before


async def test_wrong_codes_lock_the_account_as_wrong_passwords_do(service: Service) -> None:
    account, secret, _ = await enrolled(service)
    for _ in range(2):
        await sign_in_error(service, account.email, WRONG_PASSWORD)
    token = (await challenge(service, account)).challenge_token
    wrong = "000000" if app_code(service, secret) != "000000" else "111111"
    for _ in range(3):
        await complete_error(service, token, totp=wrong)

    locked = await sign_in_error(service, account.email, PASSWORD)

    assert locked.code() is Code.UNAUTHENTICATED, "the 5th failure began a wait"
    notice = await service.smtp.wait_for_message(to=account.email)
    assert "lock" in str(notice["Subject"]).lower() or "sign-in" in str(notice["Subject"]).lower()


async def test_bad_requests_are_invalid_arguments_on_their_fields(service: Service) -> None:
    account, secret, _ = await enrolled(service)
    token = (await challenge(service, account)).challenge_token
    before = await stored_item(service, account.id)

    no_proof = await rpc_error(
        service.stub.CompleteSignIn(
            pb.CompleteSignInRequest(challenge_token=token), timeout=TIMEOUT
        )
    )
    empty = await complete_error(service, "", totp=app_code(service, secret))
    passkey = await rpc_error(
        service.stub.CompleteSignIn(
            pb.CompleteSignInRequest(challenge_token=token, passkey_credential_json="{}"),
            timeout=TIMEOUT,
        )
    )

    assert {no_proof.code(), empty.code(), passkey.code()} == {Code.INVALID_ARGUMENT}
    assert set(field_violations(no_proof)) == {"totp_code"}
    assert set(field_violations(empty)) == {"challenge_token"}
    assert set(field_violations(passkey)) == {"passkey_credential_json"}
    assert await stored_item(service, account.id) == before
    next_step(service)
