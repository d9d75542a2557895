"""Attacks on the second factors over a real gRPC channel: who may touch another user's factors,
codes replayed across RPCs and enrollments, concurrent spends, passkey payloads that name
another user's credential or user handle, and payloads built to grow the user item."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc
import pytest_asyncio
from biome.user.v1 import user_service_pb2 as pb
from biome.user.v1 import user_service_pb2_grpc

from tests.e2e.auth_helpers import PASSWORD, TIMEOUT, register, unique_email
from tests.e2e.conftest import serving
from tests.e2e.harness import Service, rpc_error, service_settings
from tests.e2e.secured_service import RPC_TIMEOUT, CallerKeys, SecuredService, bearer
from tests.e2e.test_passkey_flows import (
    complete,
    finish,
    password_sign_in,
    register_passkey,
    sign_in_with,
    stored_user,
)
from tests.e2e.test_second_factor_flows import app_code, begin, confirm, enrolled, next_step
from tests.e2e.test_secrets_never_leak import everything_logged_at_debug
from tests.smtp_server import CapturingSmtpServer
from tests.webauthn_authenticator import SoftAuthenticator, from_b64url

Code = grpc.StatusCode
Stub: TypeAlias = "user_service_pb2_grpc.UserServiceAsyncStub"
Metadata: TypeAlias = tuple[tuple[str, str], ...]


# --- who may touch whose factors ------------------------------------------------------------


@pytest_asyncio.fixture
async def stub(secured: SecuredService) -> AsyncIterator[Stub]:
    async with secured.channel() as channel:
        yield user_service_pb2_grpc.UserServiceStub(channel)


async def _new_user(stub: Stub, keys: CallerKeys, label: str) -> tuple[str, Metadata]:
    """A new verified user, and the metadata of a call made with its own access token."""
    email = unique_email(label)
    user = await stub.RegisterUser(
        pb.RegisterUserRequest(
            email=email, password=PASSWORD, first_name="A", last_name="B", email_verified=True
        ),
        metadata=bearer(keys.admin),
        timeout=RPC_TIMEOUT,
    )
    signed_in = await stub.Authenticate(
        pb.AuthenticateRequest(email=email, password=PASSWORD),
        metadata=bearer(keys.plain),
        timeout=RPC_TIMEOUT,
    )
    return user.id, (*bearer(keys.plain), ("x-user-token", signed_in.access_token))


def _second_factor_calls(stub: Stub, user_id: str) -> dict[str, Any]:
    """Every RPC that reads or changes one user's factors, as a call taking the metadata."""
    passkey_id = "AAAAAAAAAAAAAAAAAAAAAA"
    return {
        "BeginTotpEnrollment": lambda md: stub.BeginTotpEnrollment(
            pb.BeginTotpEnrollmentRequest(user_id=user_id), metadata=md, timeout=RPC_TIMEOUT
        ),
        "ConfirmTotpEnrollment": lambda md: stub.ConfirmTotpEnrollment(
            pb.ConfirmTotpEnrollmentRequest(user_id=user_id, code="123456"),
            metadata=md,
            timeout=RPC_TIMEOUT,
        ),
        "DisableTotp": lambda md: stub.DisableTotp(
            pb.DisableTotpRequest(user_id=user_id, totp_code="123456"),
            metadata=md,
            timeout=RPC_TIMEOUT,
        ),
        "RegenerateRecoveryCodes": lambda md: stub.RegenerateRecoveryCodes(
            pb.RegenerateRecoveryCodesRequest(user_id=user_id, totp_code="123456"),
            metadata=md,
            timeout=RPC_TIMEOUT,
        ),
        "ResetSecondFactors": lambda md: stub.ResetSecondFactors(
            pb.ResetSecondFactorsRequest(user_id=user_id), metadata=md, timeout=RPC_TIMEOUT
        ),
        "BeginPasskeyRegistration": lambda md: stub.BeginPasskeyRegistration(
            pb.BeginPasskeyRegistrationRequest(user_id=user_id), metadata=md, timeout=RPC_TIMEOUT
        ),
        "FinishPasskeyRegistration": lambda md: stub.FinishPasskeyRegistration(
            pb.FinishPasskeyRegistrationRequest(user_id=user_id, credential_json="{}"),
            metadata=md,
            timeout=RPC_TIMEOUT,
        ),
        "ListPasskeys": lambda md: stub.ListPasskeys(
            pb.ListPasskeysRequest(user_id=user_id), metadata=md, timeout=RPC_TIMEOUT
        ),
        "RemovePasskey": lambda md: stub.RemovePasskey(
            pb.RemovePasskeyRequest(user_id=user_id, passkey_id=passkey_id),
            metadata=md,
            timeout=RPC_TIMEOUT,
        ),
    }


async def test_another_users_token_or_a_reader_role_changes_no_ones_factors(
    stub: Stub, keys: CallerKeys
) -> None:
    victim, _ = await _new_user(stub, keys, "victim")
    _, as_attacker = await _new_user(stub, keys, "attacker")

    for rpc, call in _second_factor_calls(stub, victim).items():
        callers = [as_attacker, bearer(keys.plain)]
        callers += [bearer(keys.reader)] if rpc != "ListPasskeys" else []
        for metadata in callers:
            refused = await rpc_error(call(metadata))
            assert refused.code() is Code.PERMISSION_DENIED, (rpc, metadata[0], refused)
    listed = await stub.ListPasskeys(
        pb.ListPasskeysRequest(user_id=victim), metadata=bearer(keys.reader), timeout=RPC_TIMEOUT
    )
    assert not listed.passkeys

    user = await stub.GetUser(
        pb.GetUserRequest(id=victim), metadata=bearer(keys.admin), timeout=RPC_TIMEOUT
    )
    assert not user.totp_enabled and user.passkey_count == 0


async def test_a_users_write_service_cannot_add_a_factor_it_could_sign_in_with(
    stub: Stub, keys: CallerKeys
) -> None:
    # A passkey a service registers for someone else signs in as them without a password (and
    # a TOTP secret it enrolls is one it holds): users:write edits profiles, it must not mint
    # credentials. The owner's own token still may.
    victim, as_victim = await _new_user(stub, keys, "victim")
    calls = _second_factor_calls(stub, victim)

    adding_or_removing = (
        "BeginPasskeyRegistration",
        "FinishPasskeyRegistration",
        "RemovePasskey",
        "BeginTotpEnrollment",
        "ConfirmTotpEnrollment",
    )
    for rpc in adding_or_removing:
        refused = await rpc_error(calls[rpc](bearer(keys.writer)))
        assert refused.code() is Code.PERMISSION_DENIED, (rpc, refused)

    began = await calls["BeginPasskeyRegistration"](as_victim)
    assert began.options_json


# --- replayed codes -----------------------------------------------------------------------------


async def test_one_totp_code_works_once_across_confirm_regenerate_and_disable(
    service: Service,
) -> None:
    account = await register(service, label="replay-across")
    secret = (await begin(service, account)).secret
    code = app_code(service, secret)
    await confirm(service, account, code)

    refusals = [
        await rpc_error(
            service.stub.RegenerateRecoveryCodes(
                pb.RegenerateRecoveryCodesRequest(user_id=account.id, totp_code=code),
                timeout=TIMEOUT,
            )
        ),
        await rpc_error(
            service.stub.DisableTotp(
                pb.DisableTotpRequest(user_id=account.id, totp_code=code), timeout=TIMEOUT
            )
        ),
    ]
    assert [error.code() for error in refusals] == [Code.UNAUTHENTICATED] * 2

    next_step(service)
    fresh = app_code(service, secret)
    await service.stub.RegenerateRecoveryCodes(
        pb.RegenerateRecoveryCodesRequest(user_id=account.id, totp_code=fresh), timeout=TIMEOUT
    )
    replayed = await rpc_error(
        service.stub.DisableTotp(
            pb.DisableTotpRequest(user_id=account.id, totp_code=fresh), timeout=TIMEOUT
        )
    )
    assert replayed.code() is Code.UNAUTHENTICATED
    user = await service.stub.GetUser(pb.GetUserRequest(id=account.id), timeout=TIMEOUT)
    assert user.totp_enabled


async def test_codes_of_a_replaced_or_earlier_enrollment_never_count(service: Service) -> None:
    account = await register(service, label="re-enroll")
    replaced = (await begin(service, account)).secret
    current = (await begin(service, account)).secret

    stale = await rpc_error(confirm(service, account, app_code(service, replaced)))
    assert stale.code() is Code.UNAUTHENTICATED

    confirmed = await confirm(service, account, app_code(service, current))
    next_step(service)
    await service.stub.DisableTotp(
        pb.DisableTotpRequest(user_id=account.id, recovery_code=confirmed.recovery_codes[0]),
        timeout=TIMEOUT,
    )
    again = (await begin(service, account)).secret
    await confirm(service, account, app_code(service, again))
    next_step(service)

    old_code = await rpc_error(
        service.stub.DisableTotp(
            pb.DisableTotpRequest(user_id=account.id, totp_code=app_code(service, current)),
            timeout=TIMEOUT,
        )
    )
    old_recovery = await rpc_error(
        service.stub.DisableTotp(
            pb.DisableTotpRequest(user_id=account.id, recovery_code=confirmed.recovery_codes[1]),
            timeout=TIMEOUT,
        )
    )
    assert old_code.code() is Code.UNAUTHENTICATED
    assert old_recovery.code() is Code.UNAUTHENTICATED
    user = await service.stub.GetUser(pb.GetUserRequest(id=account.id), timeout=TIMEOUT)
    assert user.totp_enabled and user.recovery_codes_remaining == 10


async def test_of_two_concurrent_uses_of_one_totp_code_on_two_channels_exactly_one_wins(
    service: Service,
) -> None:
    account, secret, _ = await enrolled(service)
    code = app_code(service, secret)
    request = pb.RegenerateRecoveryCodesRequest(user_id=account.id, totp_code=code)
    async with grpc.aio.insecure_channel(service.target) as other:
        second = user_service_pb2_grpc.UserServiceStub(other)
        outcomes = await asyncio.gather(
            service.stub.RegenerateRecoveryCodes(request, timeout=TIMEOUT),
            second.RegenerateRecoveryCodes(request, timeout=TIMEOUT),
            return_exceptions=True,
        )

    won = [o for o in outcomes if isinstance(o, pb.RegenerateRecoveryCodesResponse)]
    lost = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert lost[0].code() is Code.UNAUTHENTICATED
    # The winner's codes are the ones that work.
    await service.stub.DisableTotp(
        pb.DisableTotpRequest(user_id=account.id, recovery_code=won[0].recovery_codes[0]),
        timeout=TIMEOUT,
    )


# --- passkeys naming someone else -----------------------------------------------------------


async def test_a_credential_id_of_another_user_stays_theirs(service: Service) -> None:
    # With "none" attestation a registration is not signed: anyone may claim any credential id.
    # The attacker registers the victim's credential id, with a key of its own, on its own
    # account, then signs with it naming the victim's user handle: refused; the victim's
    # passkey still signs the victim in.
    victim = await register(service, label="victim")
    victims_browser = SoftAuthenticator()
    victims = await register_passkey(service, victim, victims_browser)
    attacker = await register(service, label="attacker")
    attackers_browser = SoftAuthenticator()
    begun = await service.stub.BeginPasskeyRegistration(
        pb.BeginPasskeyRegistrationRequest(user_id=attacker.id), timeout=TIMEOUT
    )
    credential = attackers_browser.create(
        begun.options_json,
        credential_id=from_b64url(victims.passkey_id),
        user_handle=uuid.UUID(victim.id).bytes,
    )
    await service.stub.FinishPasskeyRegistration(
        pb.FinishPasskeyRegistrationRequest(
            user_id=attacker.id, credential_json=json.dumps(credential)
        ),
        timeout=TIMEOUT,
    )
    victim_before = await stored_user(service, victim.id)

    as_victim = await rpc_error(sign_in_with(service, attackers_browser))
    as_attacker = await sign_in_with(
        service, attackers_browser, user_handle=uuid.UUID(attacker.id).bytes
    )

    assert as_victim.code() is Code.UNAUTHENTICATED
    assert as_attacker.user.id == attacker.id
    assert await stored_user(service, victim.id) == victim_before
    assert (await sign_in_with(service, victims_browser)).user.id == victim.id


async def test_another_users_handle_in_an_assertion_signs_nobody_in(service: Service) -> None:
    victim = await register(service, label="victim")
    await register_passkey(service, victim, SoftAuthenticator())
    attacker = await register(service, label="attacker")
    browser = SoftAuthenticator()
    await register_passkey(service, attacker, browser)
    before = await stored_user(service, victim.id)

    refused = await rpc_error(
        sign_in_with(service, browser, user_handle=uuid.UUID(victim.id).bytes)
    )

    assert refused.code() is Code.UNAUTHENTICATED
    assert await stored_user(service, victim.id) == before


async def test_a_ceremony_token_serves_one_sign_in_and_not_after_it_expires(
    service: Service,
) -> None:
    account = await register(service, label="ceremony")
    browser = SoftAuthenticator()
    await register_passkey(service, account, browser)
    begun = await service.stub.BeginPasskeySignIn(pb.BeginPasskeySignInRequest(), timeout=TIMEOUT)
    await finish(service, begun.ceremony_token, json.dumps(browser.get(begun.options_json)))

    twice = await rpc_error(
        finish(service, begun.ceremony_token, json.dumps(browser.get(begun.options_json)))
    )
    late = await service.stub.BeginPasskeySignIn(pb.BeginPasskeySignInRequest(), timeout=TIMEOUT)
    service.clock.advance(minutes=6)
    expired = await rpc_error(
        finish(service, late.ceremony_token, json.dumps(browser.get(late.options_json)))
    )

    assert twice.code() is Code.UNAUTHENTICATED
    assert expired.code() is Code.UNAUTHENTICATED


async def test_a_passkey_without_user_verification_is_no_password_but_still_a_second_factor(
    service: Service,
) -> None:
    # A security key without a PIN (UV unset) proves possession only: whoever holds it would sign
    # in with it alone. Without a password it must also verify the user (PIN, biometrics); after
    # the password it is the second factor it is.
    account = await register(service, label="no-uv")
    browser = SoftAuthenticator(user_verifying=False)
    await register_passkey(service, account, browser)
    begun = await service.stub.BeginPasskeySignIn(pb.BeginPasskeySignInRequest(), timeout=TIMEOUT)
    before = await stored_user(service, account.id)

    refused = await rpc_error(
        finish(service, begun.ceremony_token, json.dumps(browser.get(begun.options_json)))
    )

    assert json.loads(begun.options_json)["userVerification"] == "required"
    assert refused.code() is Code.UNAUTHENTICATED
    assert await stored_user(service, account.id) == before
    challenge = await password_sign_in(service, account)
    assert json.loads(challenge.passkey_request_options_json)["userVerification"] == "preferred"
    signed_in = await complete(
        service,
        challenge.challenge_token,
        json.dumps(browser.get(challenge.passkey_request_options_json)),
    )
    assert signed_in.user.id == account.id


# --- the user item's growth ---------------------------------------------------------------------


async def test_a_registration_cannot_stuff_the_user_item(service: Service) -> None:
    # A COSE key with a large unknown entry, a transport list repeated: both within the
    # credential JSON's 16 KiB, both kept on the user item (written, and paid for, at every
    # sign-in) unless bounded.
    account = await register(service, label="stuffing")
    size_before = len(json.dumps(await stored_user(service, account.id)))
    stuffed = SoftAuthenticator()
    begun = await service.stub.BeginPasskeyRegistration(
        pb.BeginPasskeyRegistrationRequest(user_id=account.id), timeout=TIMEOUT
    )
    credential = stuffed.create(begun.options_json, cose_extra={99: b"x" * 10_000})
    for copy in ("authenticatorData", "publicKey"):  # optional copies of the attested key
        del credential["response"][copy]
    refused = await rpc_error(
        service.stub.FinishPasskeyRegistration(
            pb.FinishPasskeyRegistrationRequest(
                user_id=account.id, credential_json=json.dumps(credential)
            ),
            timeout=TIMEOUT,
        )
    )
    assert refused.code() in (Code.INVALID_ARGUMENT, Code.UNAUTHENTICATED), refused

    begun = await service.stub.BeginPasskeyRegistration(
        pb.BeginPasskeyRegistrationRequest(user_id=account.id), timeout=TIMEOUT
    )
    repeated = SoftAuthenticator().create(begun.options_json, transports=["usb", "nfc"] * 1000)
    passkey = await service.stub.FinishPasskeyRegistration(
        pb.FinishPasskeyRegistrationRequest(
            user_id=account.id, credential_json=json.dumps(repeated), name="界" * 64
        ),
        timeout=TIMEOUT,
    )

    assert list(passkey.transports) == ["usb", "nfc"]
    grown = len(json.dumps(await stored_user(service, account.id))) - size_before
    assert grown < 1024, grown


# --- secrets when things go wrong ---------------------------------------------------------------


async def test_a_secret_whose_key_left_the_ring_fails_closed_and_leaks_nothing(
    service: Service, moto_endpoint: str, smtp_server: CapturingSmtpServer
) -> None:
    # An operator drops the key that sealed a stored secret: a replica with the new ring cannot
    # check the user's codes. It refuses (never turns TOTP off, never accepts), names the key id
    # in its log for the operator, and neither the reply nor any log line holds the secret, the
    # sealed value, the code or a recovery code.
    account, secret, recovery_codes = await enrolled(service)
    sealed = (await stored_user(service, account.id))["Totp"]["M"]["Secret"]["S"]
    other_ring = "rotated:" + base64.b64encode(b"another-totp-key-of-32-bytes-xyz").decode()
    tables = service.tables
    settings = service_settings(
        moto_endpoint,
        smtp_server,
        totp_encryption_keys=other_ring,
        table_name=tables.users,
        email_table_name=tables.emails,
        events_table_name=tables.events,
        sessions_table_name=tables.sessions,
    )
    code = app_code(service, secret)
    with everything_logged_at_debug() as logged:
        async with serving(settings, smtp_server, service.clock) as rotated:
            failed = await rpc_error(
                rotated.stub.DisableTotp(
                    pb.DisableTotpRequest(user_id=account.id, totp_code=code), timeout=TIMEOUT
                )
            )
            regenerate = await rpc_error(
                rotated.stub.RegenerateRecoveryCodes(
                    pb.RegenerateRecoveryCodesRequest(user_id=account.id, totp_code=code),
                    timeout=TIMEOUT,
                )
            )

    assert failed.code() is Code.INTERNAL and regenerate.code() is Code.INTERNAL
    lines = logged.getvalue()
    assert "no TOTP encryption key with the id 'e2e'" in lines  # for the operator
    replies = f"{failed.details()} {failed.debug_error_string()} {regenerate.details()}"
    for leaked in (secret, sealed, sealed.partition(":")[2], code, *recovery_codes):
        assert leaked not in lines and leaked not in replies
    user = await service.stub.GetUser(pb.GetUserRequest(id=account.id), timeout=TIMEOUT)
    assert user.totp_enabled and user.recovery_codes_remaining == 10


# --- guessing codes with a stolen access token ------------------------------------------------


async def test_wrong_codes_on_disable_and_regenerate_count_toward_the_lock_out(
    service: Service,
) -> None:
    # Whoever holds the owner's access token cannot try the million codes: five wrong ones in a
    # row (either RPC) begin the lock-out wait, during which the right code is refused as well
    # (and so is the right password: as with wrong passwords, the owner waits at most 15 minutes
    # at a time, which anyone who knows the address can already cause).
    account, secret, recovery_codes = await enrolled(service)
    wrong = f"{(int(app_code(service, secret)) + 1) % 1_000_000:06d}"
    for attempt in range(5):
        request: Any = (
            pb.DisableTotpRequest(user_id=account.id, totp_code=wrong)
            if attempt % 2
            else pb.RegenerateRecoveryCodesRequest(user_id=account.id, totp_code=wrong)
        )
        call = service.stub.DisableTotp if attempt % 2 else service.stub.RegenerateRecoveryCodes
        refused = await rpc_error(call(request, timeout=TIMEOUT))
        assert refused.code() is Code.UNAUTHENTICATED

    right = await rpc_error(
        service.stub.DisableTotp(
            pb.DisableTotpRequest(user_id=account.id, recovery_code=recovery_codes[0]),
            timeout=TIMEOUT,
        )
    )

    assert right.code() is Code.UNAUTHENTICATED
    stored = await stored_user(service, account.id)
    assert stored["FailedLogins"] == {"N": "6"}
    user = await service.stub.GetUser(pb.GetUserRequest(id=account.id), timeout=TIMEOUT)
    assert user.totp_enabled and user.recovery_codes_remaining == 10
    service.clock.advance(seconds=3)
    await service.stub.DisableTotp(
        pb.DisableTotpRequest(user_id=account.id, recovery_code=recovery_codes[0]),
        timeout=TIMEOUT,
    )


# --- registration responses replayed ------------------------------------------------------------


async def test_a_registration_response_serves_its_own_ceremony_once(service: Service) -> None:
    # Sent for another user (whose ceremony is under way), sent again, or sent twice at once on
    # two channels: one passkey, on the account whose ceremony it answered.
    owner = await register(service, label="owner")
    other = await register(service, label="other")
    begun = await service.stub.BeginPasskeyRegistration(
        pb.BeginPasskeyRegistrationRequest(user_id=owner.id), timeout=TIMEOUT
    )
    await service.stub.BeginPasskeyRegistration(
        pb.BeginPasskeyRegistrationRequest(user_id=other.id), timeout=TIMEOUT
    )
    credential = json.dumps(SoftAuthenticator().create(begun.options_json))

    def finish_for(user_id: str, stub: Stub) -> Any:
        return stub.FinishPasskeyRegistration(
            pb.FinishPasskeyRegistrationRequest(user_id=user_id, credential_json=credential),
            timeout=TIMEOUT,
        )

    other_before = await stored_user(service, other.id)
    elsewhere = await rpc_error(finish_for(other.id, service.stub))
    async with grpc.aio.insecure_channel(service.target) as channel:
        second = user_service_pb2_grpc.UserServiceStub(channel)
        outcomes = await asyncio.gather(
            finish_for(owner.id, service.stub), finish_for(owner.id, second), return_exceptions=True
        )
    again = await rpc_error(finish_for(owner.id, service.stub))

    assert elsewhere.code() is Code.UNAUTHENTICATED
    assert await stored_user(service, other.id) == other_before
    kept = [o for o in outcomes if isinstance(o, pb.Passkey)]
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(kept) == 1 and len(refused) == 1, outcomes
    assert refused[0].code() is Code.UNAUTHENTICATED
    assert again.code() is Code.UNAUTHENTICATED
    user = await service.stub.GetUser(pb.GetUserRequest(id=owner.id), timeout=TIMEOUT)
    assert user.passkey_count == 1
