"""Adding or removing a second factor, or moving the account's address, on the user's own token
needs a recent sign-in (the token's auth_time), over a real gRPC channel with API keys: a fresh
sign-in's token may; the token of a session refreshed after the window may not
(FAILED_PRECONDITION RECENT_SIGN_IN_REQUIRED, nothing changed), and neither may a token without
auth_time, which still reads the user; a caller holding users:admin is not affected; a sign-in
completed with a second factor (CompleteSignIn) counts as recent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import jwt
import pyotp
import pytest_asyncio
from biome.user.v1 import user_service_pb2 as pb
from pydantic import SecretStr

from server.crypto.access_tokens import SigningKeys, generate_signing_keys, signing_key_pem
from server.crypto.api_keys import api_key_sha256, new_api_key
from server.settings import ApiKey
from tests.e2e.auth_helpers import PASSWORD, TIMEOUT, unique_email
from tests.e2e.conftest import serving
from tests.e2e.harness import Service, rpc_error, service_settings
from tests.e2e.secured_service import CallerKeys, bearer
from tests.e2e.test_second_factor_flows import error_reason
from tests.smtp_server import CapturingSmtpServer
from tests.webauthn_authenticator import SoftAuthenticator

Code = grpc.StatusCode
WINDOW_SECONDS = 900  # USER_SERVICE_RECENT_SIGN_IN_SECONDS's default
Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Keyed:
    """The service with API keys (the front end's holds no role), and its signing key."""

    service: Service
    keys: CallerKeys
    support: str  # an API key holding users:admin
    signing: SigningKeys

    async def signed_up(self) -> tuple[pb.User, str]:
        email = unique_email("recent")
        user = await self.service.stub.RegisterUser(
            pb.RegisterUserRequest(
                email=email, password=PASSWORD, first_name="Ada", last_name="B", email_verified=True
            ),
            metadata=bearer(self.keys.admin),
            timeout=TIMEOUT,
        )
        return user, email

    async def signed_in(self, email: str) -> pb.AuthenticateResponse:
        return await self.service.stub.Authenticate(
            pb.AuthenticateRequest(email=email, password=PASSWORD),
            metadata=bearer(self.keys.plain),
            timeout=TIMEOUT,
        )

    async def refreshed(self, refresh_token: str) -> pb.RefreshSessionResponse:
        return await self.service.stub.RefreshSession(
            pb.RefreshSessionRequest(refresh_token=refresh_token),
            metadata=bearer(self.keys.plain),
            timeout=TIMEOUT,
        )

    def as_user(self, access_token: str) -> Metadata:
        """The front end's key (no role) with the user's own token."""
        return (*bearer(self.keys.plain), ("x-user-token", access_token))

    async def user(self, user_id: str) -> pb.User:
        return await self.service.stub.GetUser(
            pb.GetUserRequest(id=user_id), metadata=bearer(self.keys.admin), timeout=TIMEOUT
        )

    async def stored(self, user_id: str) -> dict[str, Any]:
        """The user's item as DynamoDB holds it (a pending email change included)."""
        reply = await self.service.dynamodb.get_item(
            TableName=self.service.tables.users, Key={"Id": {"S": user_id}}, ConsistentRead=True
        )
        item: dict[str, Any] = reply["Item"]
        return item

    async def passkeys(self, user_id: str) -> list[pb.Passkey]:
        reply = await self.service.stub.ListPasskeys(
            pb.ListPasskeysRequest(user_id=user_id),
            metadata=bearer(self.keys.admin),
            timeout=TIMEOUT,
        )
        return list(reply.passkeys)

    async def add_passkey(
        self, user_id: str, metadata: Metadata, browser: SoftAuthenticator | None = None
    ) -> pb.Passkey:
        stub = self.service.stub
        begun = await stub.BeginPasskeyRegistration(
            pb.BeginPasskeyRegistrationRequest(user_id=user_id), metadata=metadata, timeout=TIMEOUT
        )
        credential = (browser or SoftAuthenticator()).create(begun.options_json)
        return await stub.FinishPasskeyRegistration(
            pb.FinishPasskeyRegistrationRequest(
                user_id=user_id, credential_json=json.dumps(credential), name="Laptop"
            ),
            metadata=metadata,
            timeout=TIMEOUT,
        )

    async def passkey_signed_in(self, browser: SoftAuthenticator) -> pb.AuthenticateResponse:
        """A sign-in without a password (with a passkey, the password alone opens none)."""
        stub, front_end = self.service.stub, bearer(self.keys.plain)
        begun = await stub.BeginPasskeySignIn(
            pb.BeginPasskeySignInRequest(), metadata=front_end, timeout=TIMEOUT
        )
        return await stub.FinishPasskeySignIn(
            pb.FinishPasskeySignInRequest(
                ceremony_token=begun.ceremony_token,
                credential_json=json.dumps(browser.get(begun.options_json)),
            ),
            metadata=front_end,
            timeout=TIMEOUT,
        )


@pytest_asyncio.fixture
async def keyed(moto_endpoint: str, smtp_server: CapturingSmtpServer) -> AsyncIterator[Keyed]:
    keys, support, signing = CallerKeys.fresh(), new_api_key(), generate_signing_keys()
    api_keys = [
        *keys.settings(),
        ApiKey(name="support", sha256=api_key_sha256(support), roles=("users:admin",)),
    ]
    settings = service_settings(
        moto_endpoint,
        smtp_server,
        api_keys=api_keys,
        jwt_signing_keys=SecretStr(signing_key_pem(signing)),
    )
    async with serving(settings, smtp_server) as service:
        yield Keyed(service, keys, support, signing)


def changes(keyed: Keyed, user: pb.User) -> list[tuple[str, Callable[[Metadata], Awaitable[Any]]]]:
    """Each RPC that needs a recent sign-in, as a call on ``user`` with some metadata."""
    stub, user_id = keyed.service.stub, user.id
    credential = json.dumps({"id": "AAAA", "rawId": "AAAA", "type": "public-key", "response": {}})
    return [
        (
            "BeginTotpEnrollment",
            lambda md: stub.BeginTotpEnrollment(
                pb.BeginTotpEnrollmentRequest(user_id=user_id), metadata=md, timeout=TIMEOUT
            ),
        ),
        (
            "ConfirmTotpEnrollment",
            lambda md: stub.ConfirmTotpEnrollment(
                pb.ConfirmTotpEnrollmentRequest(user_id=user_id, code="123456"),
                metadata=md,
                timeout=TIMEOUT,
            ),
        ),
        (
            "BeginPasskeyRegistration",
            lambda md: stub.BeginPasskeyRegistration(
                pb.BeginPasskeyRegistrationRequest(user_id=user_id), metadata=md, timeout=TIMEOUT
            ),
        ),
        (
            "FinishPasskeyRegistration",
            lambda md: stub.FinishPasskeyRegistration(
                pb.FinishPasskeyRegistrationRequest(user_id=user_id, credential_json=credential),
                metadata=md,
                timeout=TIMEOUT,
            ),
        ),
        (
            "RemovePasskey",
            lambda md: stub.RemovePasskey(
                pb.RemovePasskeyRequest(user_id=user_id, passkey_id="AAAA"),
                metadata=md,
                timeout=TIMEOUT,
            ),
        ),
        (
            "RequestEmailChange",
            lambda md: stub.RequestEmailChange(
                pb.RequestEmailChangeRequest(
                    id=user_id, new_email=unique_email("moved"), expected_version=user.version
                ),
                metadata=md,
                timeout=TIMEOUT,
            ),
        ),
    ]


async def assert_each_needs_a_recent_sign_in(
    keyed: Keyed, user: pb.User, metadata: Metadata
) -> None:
    for rpc, call in changes(keyed, user):
        error = await rpc_error(call(metadata))
        assert (error.code(), error_reason(error)) == (
            Code.FAILED_PRECONDITION,
            "RECENT_SIGN_IN_REQUIRED",
        ), rpc


async def test_a_fresh_sign_in_adds_a_passkey_begins_totp_and_requests_an_email_change(
    keyed: Keyed,
) -> None:
    user, email = await keyed.signed_up()
    signed_in = await keyed.signed_in(email)
    as_user = keyed.as_user(signed_in.access_token)
    stub = keyed.service.stub

    passkey = await keyed.add_passkey(user.id, as_user)
    began = await stub.BeginTotpEnrollment(
        pb.BeginTotpEnrollmentRequest(user_id=user.id), metadata=as_user, timeout=TIMEOUT
    )
    await stub.ConfirmTotpEnrollment(
        pb.ConfirmTotpEnrollmentRequest(
            user_id=user.id, code=pyotp.TOTP(began.secret).at(keyed.service.clock())
        ),
        metadata=as_user,
        timeout=TIMEOUT,
    )
    version = (await keyed.user(user.id)).version
    requested = await stub.RequestEmailChange(
        pb.RequestEmailChangeRequest(
            id=user.id, new_email=unique_email("moved"), expected_version=version
        ),
        metadata=as_user,
        timeout=TIMEOUT,
    )
    await stub.RemovePasskey(
        pb.RemovePasskeyRequest(user_id=user.id, passkey_id=passkey.passkey_id),
        metadata=as_user,
        timeout=TIMEOUT,
    )

    after = await keyed.user(user.id)
    assert after.totp_enabled and requested.HasField("expires_at")
    assert "PendingEmailChange" in await keyed.stored(user.id)
    assert await keyed.passkeys(user.id) == []


async def test_a_session_refreshed_after_the_window_changes_no_factor_nor_the_address(
    keyed: Keyed,
) -> None:
    user, email = await keyed.signed_up()
    signed_in = await keyed.signed_in(email)
    browser = SoftAuthenticator()
    passkey = await keyed.add_passkey(user.id, keyed.as_user(signed_in.access_token), browser)
    keyed.service.clock.advance(seconds=WINDOW_SECONDS + 1)
    refreshed = await keyed.refreshed(signed_in.refresh_token)
    before = await keyed.stored(user.id)

    await assert_each_needs_a_recent_sign_in(
        keyed, await keyed.user(user.id), keyed.as_user(refreshed.access_token)
    )

    claims = jwt.decode(refreshed.access_token, options={"verify_signature": False})
    assert claims["iat"] - claims["auth_time"] > WINDOW_SECONDS
    assert await keyed.stored(user.id) == before
    assert [p.passkey_id for p in await keyed.passkeys(user.id)] == [passkey.passkey_id]
    # Signing in again (here with the passkey) makes the same change possible.
    again = await keyed.passkey_signed_in(browser)
    await keyed.service.stub.RemovePasskey(
        pb.RemovePasskeyRequest(user_id=user.id, passkey_id=passkey.passkey_id),
        metadata=keyed.as_user(again.access_token),
        timeout=TIMEOUT,
    )
    assert await keyed.passkeys(user.id) == []


async def test_a_users_admin_caller_without_a_user_token_is_not_affected(keyed: Keyed) -> None:
    user, email = await keyed.signed_up()
    await keyed.signed_in(email)
    keyed.service.clock.advance(seconds=2 * WINDOW_SECONDS)
    support = bearer(keyed.support)

    passkey = await keyed.add_passkey(user.id, support)
    await keyed.service.stub.BeginTotpEnrollment(
        pb.BeginTotpEnrollmentRequest(user_id=user.id), metadata=support, timeout=TIMEOUT
    )
    await keyed.service.stub.RemovePasskey(
        pb.RemovePasskeyRequest(user_id=user.id, passkey_id=passkey.passkey_id),
        metadata=support,
        timeout=TIMEOUT,
    )
    version = (await keyed.user(user.id)).version
    requested = await keyed.service.stub.RequestEmailChange(
        pb.RequestEmailChangeRequest(
            id=user.id, new_email=unique_email("moved"), expected_version=version
        ),
        metadata=bearer(keyed.keys.admin),
        timeout=TIMEOUT,
    )

    assert requested.HasField("expires_at")
    assert "PendingEmailChange" in await keyed.stored(user.id)


async def test_a_token_without_auth_time_reads_the_user_but_changes_no_factor(
    keyed: Keyed,
) -> None:
    user, email = await keyed.signed_up()
    signed_in = await keyed.signed_in(email)
    claims = jwt.decode(signed_in.access_token, options={"verify_signature": False})
    del claims["auth_time"]
    older_shape = jwt.encode(
        claims, keyed.signing.signer, algorithm="EdDSA", headers={"kid": keyed.signing.kid}
    )
    as_user = keyed.as_user(older_shape)
    before = await keyed.stored(user.id)

    read = await keyed.service.stub.GetUser(
        pb.GetUserRequest(id=user.id), metadata=as_user, timeout=TIMEOUT
    )
    await assert_each_needs_a_recent_sign_in(keyed, read, as_user)

    assert read.id == user.id
    assert await keyed.stored(user.id) == before


async def test_a_sign_in_completed_with_a_second_factor_is_recent(keyed: Keyed) -> None:
    user, email = await keyed.signed_up()
    stub, clock = keyed.service.stub, keyed.service.clock
    first = keyed.as_user((await keyed.signed_in(email)).access_token)
    began = await stub.BeginTotpEnrollment(
        pb.BeginTotpEnrollmentRequest(user_id=user.id), metadata=first, timeout=TIMEOUT
    )
    app = pyotp.TOTP(began.secret)
    await stub.ConfirmTotpEnrollment(
        pb.ConfirmTotpEnrollmentRequest(user_id=user.id, code=app.at(clock())),
        metadata=first,
        timeout=TIMEOUT,
    )
    clock.advance(seconds=WINDOW_SECONDS + 30)

    challenged = await keyed.signed_in(email)
    completed = await stub.CompleteSignIn(
        pb.CompleteSignInRequest(
            challenge_token=challenged.challenge.challenge_token, totp_code=app.at(clock())
        ),
        metadata=bearer(keyed.keys.plain),
        timeout=TIMEOUT,
    )
    begun = await stub.BeginPasskeyRegistration(
        pb.BeginPasskeyRegistrationRequest(user_id=user.id),
        metadata=keyed.as_user(completed.access_token),
        timeout=TIMEOUT,
    )

    assert begun.options_json
    claims = jwt.decode(completed.access_token, options={"verify_signature": False})
    assert claims["auth_time"] == claims["iat"]
