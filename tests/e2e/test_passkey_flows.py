"""Passkeys over a real gRPC channel, the browser played by the tests' software authenticator:
registered, listed, signing in without a password, removed; and every malformed or misbehaving
payload answered with its documented status, changing nothing (never INTERNAL)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import pytest
from biome.user.v1 import user_service_pb2 as pb

from tests.e2e.auth_helpers import TIMEOUT, Account, register, reply_of, verify_access_token
from tests.e2e.harness import Service, field_violations, rpc_error
from tests.webauthn_authenticator import SoftAuthenticator

Code = grpc.StatusCode


async def stored_user(service: Service, user_id: str) -> dict[str, Any]:
    reply = await service.dynamodb.get_item(
        TableName=service.tables.users, Key={"Id": {"S": user_id}}, ConsistentRead=True
    )
    item: dict[str, Any] = reply["Item"]
    return item


async def register_passkey(
    service: Service, account: Account, browser: SoftAuthenticator, name: str = "Laptop"
) -> pb.Passkey:
    begun = await service.stub.BeginPasskeyRegistration(
        pb.BeginPasskeyRegistrationRequest(user_id=account.id), timeout=TIMEOUT
    )
    credential = browser.create(begun.options_json)
    return await service.stub.FinishPasskeyRegistration(
        pb.FinishPasskeyRegistrationRequest(
            user_id=account.id, credential_json=json.dumps(credential), name=name
        ),
        timeout=TIMEOUT,
    )


async def sign_in_with(
    service: Service, browser: SoftAuthenticator, **misbehaviour: Any
) -> pb.AuthenticateResponse:
    begun = await service.stub.BeginPasskeySignIn(pb.BeginPasskeySignInRequest(), timeout=TIMEOUT)
    assertion = browser.get(begun.options_json, **misbehaviour)
    return await finish(service, begun.ceremony_token, json.dumps(assertion))


async def finish(service: Service, token: str, credential_json: str) -> pb.AuthenticateResponse:
    return await service.stub.FinishPasskeySignIn(
        pb.FinishPasskeySignInRequest(
            ceremony_token=token,
            credential_json=credential_json,
            client=pb.ClientDetails(device_label="Anna's laptop"),
        ),
        timeout=TIMEOUT,
    )


async def event_kinds(service: Service, user_id: str) -> list[str]:
    reply = await service.stub.ListUserEvents(
        pb.ListUserEventsRequest(user_id=user_id, page_size=100), timeout=TIMEOUT
    )
    return [str(event.WhichOneof("kind")) for event in reply.events]


async def test_register_list_sign_in_without_a_password_and_remove(service: Service) -> None:
    account = await register(service, label="passkey")
    browser = SoftAuthenticator()

    passkey = await register_passkey(service, account, browser, name="Anna's laptop")

    assert passkey.name == "Anna's laptop"
    assert list(passkey.transports) == ["hybrid", "internal"]
    assert passkey.backup_eligible and passkey.backed_up
    user = await service.stub.GetUser(pb.GetUserRequest(id=account.id), timeout=TIMEOUT)
    assert user.passkey_count == 1
    listed = await service.stub.ListPasskeys(
        pb.ListPasskeysRequest(user_id=account.id), timeout=TIMEOUT
    )
    assert [p.passkey_id for p in listed.passkeys] == [passkey.passkey_id]
    notice = await service.smtp.wait_for_message(to=account.email)
    assert "passkey" in notice.as_string().lower()

    signed_in = await sign_in_with(service, browser)

    assert signed_in.user.id == account.id
    claims = await verify_access_token(service, signed_in.access_token)
    assert claims["sub"] == account.id and claims["sid"] == signed_in.session_id
    assert claims["amr"] == ["hwk"]
    refreshed = await service.stub.RefreshSession(
        pb.RefreshSessionRequest(refresh_token=signed_in.refresh_token), timeout=TIMEOUT
    )
    assert (await verify_access_token(service, refreshed.access_token))["amr"] == ["hwk"]
    listed = await service.stub.ListPasskeys(
        pb.ListPasskeysRequest(user_id=account.id), timeout=TIMEOUT
    )
    assert listed.passkeys[0].HasField("last_used_at")

    await service.stub.RemovePasskey(
        pb.RemovePasskeyRequest(user_id=account.id, passkey_id=passkey.passkey_id),
        timeout=TIMEOUT,
    )

    refused = await rpc_error(sign_in_with(service, browser))
    assert refused.code() is Code.UNAUTHENTICATED
    user = await service.stub.GetUser(pb.GetUserRequest(id=account.id), timeout=TIMEOUT)
    assert user.passkey_count == 0
    assert "Passkeys" not in await stored_user(service, account.id)
    kinds = await event_kinds(service, account.id)
    assert kinds.count("second_factor_added") == 1
    assert kinds.count("second_factor_removed") == 1
    assert kinds.count("session_started") == 1


async def test_a_replayed_ceremony_or_assertion_is_refused_and_changes_nothing(
    service: Service,
) -> None:
    account = await register(service, label="replay")
    browser = SoftAuthenticator(counting=False)  # only the spent ceremony guards against replay
    await register_passkey(service, account, browser)
    begun = await service.stub.BeginPasskeySignIn(pb.BeginPasskeySignInRequest(), timeout=TIMEOUT)
    assertion = json.dumps(browser.get(begun.options_json))
    await finish(service, begun.ceremony_token, assertion)
    before = await stored_user(service, account.id)

    replayed = await rpc_error(finish(service, begun.ceremony_token, assertion))

    assert replayed.code() is Code.UNAUTHENTICATED
    assert "credential_json" in field_violations(replayed)
    assert await stored_user(service, account.id) == before


@pytest.mark.parametrize(
    "misbehaviour",
    [
        {"origin": "https://evil.example"},
        {"rp_id": "evil.example"},
        {"bad_signature": True},
        {"sign_count": 1},  # the stored counter is 2 by then: going backwards
        {"challenge": b"another ceremony's challenge"},
    ],
    ids=["wrong_origin", "wrong_rp_id", "bad_signature", "counter_backwards", "other_challenge"],
)
async def test_an_assertion_that_does_not_verify_is_unauthenticated_and_changes_nothing(
    service: Service, misbehaviour: dict[str, Any]
) -> None:
    account = await register(service, label="misbehaving")
    browser = SoftAuthenticator()
    await register_passkey(service, account, browser)
    await sign_in_with(service, browser)
    await sign_in_with(service, browser)
    before = await stored_user(service, account.id)

    refused = await rpc_error(sign_in_with(service, browser, **misbehaviour))

    assert refused.code() is Code.UNAUTHENTICATED
    assert "credential_json" in field_violations(refused)
    assert await stored_user(service, account.id) == before


@pytest.mark.parametrize(
    "misbehaviour",
    [{"origin": "https://evil.example"}, {"rp_id": "evil.example"}, {"user_present": False}],
    ids=["wrong_origin", "wrong_rp_id", "no_user_presence"],
)
async def test_a_registration_that_does_not_verify_is_unauthenticated_and_changes_nothing(
    service: Service, misbehaviour: dict[str, Any]
) -> None:
    account = await register(service, label="bad-registration")
    begun = await service.stub.BeginPasskeyRegistration(
        pb.BeginPasskeyRegistrationRequest(user_id=account.id), timeout=TIMEOUT
    )
    before = await stored_user(service, account.id)
    credential = SoftAuthenticator().create(begun.options_json, **misbehaviour)

    refused = await rpc_error(
        service.stub.FinishPasskeyRegistration(
            pb.FinishPasskeyRegistrationRequest(
                user_id=account.id, credential_json=json.dumps(credential)
            ),
            timeout=TIMEOUT,
        )
    )

    assert refused.code() is Code.UNAUTHENTICATED
    assert "credential_json" in field_violations(refused)
    assert await stored_user(service, account.id) == before


@pytest.mark.parametrize(
    "credential_json",
    ["not json", "[]", '{"id": "AA", "rawId": "AA", "type": "public-key"}', "[" * 10000],
    ids=["not_json", "not_an_object", "no_response", "deeply_nested"],
)
async def test_malformed_credential_json_is_invalid_argument(
    service: Service, credential_json: str
) -> None:
    account = await register(service, label="malformed")
    await service.stub.BeginPasskeyRegistration(
        pb.BeginPasskeyRegistrationRequest(user_id=account.id), timeout=TIMEOUT
    )
    begun = await service.stub.BeginPasskeySignIn(pb.BeginPasskeySignInRequest(), timeout=TIMEOUT)
    before = await stored_user(service, account.id)

    registering = await rpc_error(
        service.stub.FinishPasskeyRegistration(
            pb.FinishPasskeyRegistrationRequest(
                user_id=account.id, credential_json=credential_json
            ),
            timeout=TIMEOUT,
        )
    )
    signing_in = await rpc_error(finish(service, begun.ceremony_token, credential_json))

    for refused in (registering, signing_in):
        assert refused.code() is Code.INVALID_ARGUMENT
        assert list(field_violations(refused)) == ["credential_json"]
    assert await stored_user(service, account.id) == before


async def test_an_assertion_of_no_account_is_answered_as_a_bad_one(service: Service) -> None:
    account = await register(service, label="gone")
    browser = SoftAuthenticator()
    await register_passkey(service, account, browser)
    await service.stub.DeleteUser(
        pb.DeleteUserRequest(id=account.id, expected_version=2), timeout=TIMEOUT
    )
    unknown = await rpc_error(sign_in_with(service, browser))
    other = await register(service, label="present")
    other_browser = SoftAuthenticator()
    await register_passkey(service, other, other_browser)
    bad = await rpc_error(sign_in_with(service, other_browser, bad_signature=True))
    assert reply_of(unknown) == reply_of(bad)


async def test_a_disabled_account_is_told_only_after_its_passkey_verified(
    service: Service,
) -> None:
    account = await register(service, label="disabled")
    browser = SoftAuthenticator()
    await register_passkey(service, account, browser)
    await service.stub.DisableUser(pb.DisableUserRequest(id=account.id), timeout=TIMEOUT)
    bad = await rpc_error(sign_in_with(service, browser, bad_signature=True))
    good = await rpc_error(sign_in_with(service, browser))
    assert bad.code() is Code.UNAUTHENTICATED
    assert good.code() is Code.PERMISSION_DENIED


async def test_unknown_passkeys_users_and_ceremonies_get_their_documented_status(
    service: Service,
) -> None:
    account = await register(service, label="unknown")
    missing = await rpc_error(
        service.stub.RemovePasskey(
            pb.RemovePasskeyRequest(user_id=account.id, passkey_id="AAAA"), timeout=TIMEOUT
        )
    )
    assert missing.code() is Code.NOT_FOUND
    malformed = await rpc_error(
        service.stub.RemovePasskey(
            pb.RemovePasskeyRequest(user_id=account.id, passkey_id="no such id!"), timeout=TIMEOUT
        )
    )
    assert list(field_violations(malformed)) == ["passkey_id"]
    nobody = await rpc_error(
        service.stub.BeginPasskeyRegistration(
            pb.BeginPasskeyRegistrationRequest(user_id="3f2b8a3e-1c4d-4e5f-9a6b-7c8d9e0f1a2b"),
            timeout=TIMEOUT,
        )
    )
    assert nobody.code() is Code.NOT_FOUND
    not_begun = await rpc_error(
        service.stub.FinishPasskeyRegistration(
            pb.FinishPasskeyRegistrationRequest(
                user_id=account.id,
                credential_json=json.dumps(
                    SoftAuthenticator().create(
                        json.dumps(
                            {
                                "rp": {"id": "localhost", "name": "x"},
                                "user": {"id": "AAAA", "name": "x", "displayName": "x"},
                                "challenge": "AAAA",
                                "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
                            }
                        )
                    )
                ),
            ),
            timeout=TIMEOUT,
        )
    )
    assert not_begun.code() is Code.UNAUTHENTICATED
    forged = await rpc_error(finish(service, "forged", "{}"))
    assert forged.code() is Code.INVALID_ARGUMENT  # the credential is checked first


# --- a passkey as second factor -------------------------------------------------------------


async def password_sign_in(service: Service, account: Account) -> pb.SignInChallenge:
    reply = await service.stub.Authenticate(
        pb.AuthenticateRequest(email=account.email, password=account.password), timeout=TIMEOUT
    )
    assert reply.HasField("challenge") and not reply.access_token
    return reply.challenge


async def complete(service: Service, token: str, credential_json: str) -> pb.AuthenticateResponse:
    return await service.stub.CompleteSignIn(
        pb.CompleteSignInRequest(challenge_token=token, passkey_credential_json=credential_json),
        timeout=TIMEOUT,
    )


async def test_a_passkey_completes_a_password_sign_in(service: Service) -> None:
    account = await register(service, label="second-factor")
    browser = SoftAuthenticator()
    passkey = await register_passkey(service, account, browser)

    challenge = await password_sign_in(service, account)

    assert list(challenge.factors) == [pb.SIGN_IN_FACTOR_PASSKEY]
    options = json.loads(challenge.passkey_request_options_json)
    assert [c["id"] for c in options["allowCredentials"]] == [passkey.passkey_id]
    assertion = json.dumps(browser.get(challenge.passkey_request_options_json))
    signed_in = await complete(service, challenge.challenge_token, assertion)
    claims = await verify_access_token(service, signed_in.access_token)
    assert claims["amr"] == ["pwd", "hwk"] and claims["sub"] == account.id

    replayed = await rpc_error(complete(service, challenge.challenge_token, assertion))
    assert replayed.code() is Code.UNAUTHENTICATED
    assert "challenge_token" in field_violations(replayed)


@pytest.mark.parametrize(
    "misbehaviour",
    [
        {"origin": "https://evil.example"},
        {"rp_id": "evil.example"},
        {"bad_signature": True},
        {"sign_count": 1},  # backwards: 1 is the stored counter by then
    ],
    ids=["wrong_origin", "wrong_rp_id", "bad_signature", "counter_backwards"],
)
async def test_a_second_factor_assertion_that_does_not_verify_is_a_wrong_code(
    service: Service, misbehaviour: dict[str, Any]
) -> None:
    account = await register(service, label="bad-second-factor")
    browser = SoftAuthenticator()
    await register_passkey(service, account, browser)
    first = await password_sign_in(service, account)
    await complete(
        service,
        first.challenge_token,
        json.dumps(browser.get(first.passkey_request_options_json)),
    )
    challenge = await password_sign_in(service, account)
    before = (await stored_user(service, account.id))["Passkeys"]

    refused = await rpc_error(
        complete(
            service,
            challenge.challenge_token,
            json.dumps(browser.get(challenge.passkey_request_options_json, **misbehaviour)),
        )
    )

    assert refused.code() is Code.UNAUTHENTICATED
    stored = await stored_user(service, account.id)
    assert stored["Passkeys"] == before
    assert stored["FailedLogins"] == {"N": "1"}  # counted as a wrong code


async def test_a_malformed_second_factor_assertion_is_invalid_argument(service: Service) -> None:
    account = await register(service, label="malformed-second-factor")
    await register_passkey(service, account, SoftAuthenticator())
    challenge = await password_sign_in(service, account)
    refused = await rpc_error(complete(service, challenge.challenge_token, "[" * 10000))
    assert refused.code() is Code.INVALID_ARGUMENT
    assert list(field_violations(refused)) == ["passkey_credential_json"]


async def test_of_two_concurrent_uses_of_one_ceremony_exactly_one_signs_in(
    service: Service,
) -> None:
    account = await register(service, label="race")
    browser = SoftAuthenticator(counting=False)  # no counter: only the spent ceremony decides
    await register_passkey(service, account, browser)
    begun = await service.stub.BeginPasskeySignIn(pb.BeginPasskeySignInRequest(), timeout=TIMEOUT)
    assertion = json.dumps(browser.get(begun.options_json))

    outcomes = await asyncio.gather(
        *(finish(service, begun.ceremony_token, assertion) for _ in range(4)),
        return_exceptions=True,
    )

    won = [o for o in outcomes if isinstance(o, pb.AuthenticateResponse)]
    lost = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(won) == 1, outcomes
    assert {error.code() for error in lost} <= {Code.UNAUTHENTICATED, Code.ABORTED}
    sessions = await service.stub.ListSessions(
        pb.ListSessionsRequest(user_id=account.id), timeout=TIMEOUT
    )
    assert len(sessions.sessions) == 1
