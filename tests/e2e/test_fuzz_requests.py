"""Every RPC, fed hostile requests over a real channel, answers only with its documented codes."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import unicodedata
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TypeAlias

import grpc
import pyotp
import pytest
import pytest_asyncio
from biome.user.v1 import user_service_pb2 as pb
from biome.user.v1 import user_service_pb2_grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from hypothesis import event, given, settings
from hypothesis import strategies as st

from domain.values import (
    DEVICE_LABEL_MAX_LENGTH,
    EMAIL_MAX_LENGTH,
    NAME_MAX_LENGTH,
    USER_AGENT_MAX_LENGTH,
)
from server.app import running_service
from server.interceptors.request_size import MAX_REQUEST_BYTES
from tests.e2e.auth_helpers import PASSWORD, unique_email
from tests.e2e.harness import Service, service_settings
from tests.e2e.request_strategies import Known, client_details, requests
from tests.smtp_server import CapturingSmtpServer, reset_token_from, verification_code_from
from tests.webauthn_authenticator import SoftAuthenticator

pytestmark = pytest.mark.slow
in_module_loop = pytest.mark.asyncio(loop_scope="module")  # the loop the module's service runs in

RPC_TIMEOUT = 30  # seconds: generous, only there so that a hung server fails instead of stalling
Code: TypeAlias = grpc.StatusCode

# What each RPC may answer besides OK, from the proto's comments and the README's API table.
# INVALID_ARGUMENT is every RPC's answer to invalid input (the proto's header: "invalid input
# comes with a google.rpc.BadRequest"), even where the README's table leaves it out. UNAVAILABLE
# and DEADLINE_EXCEEDED, documented for a store that fails or is slow, are left out on purpose:
# the store here is healthy, so either would mean that an input broke the path to it.
DOCUMENTED: dict[str, frozenset[Code]] = {
    "RegisterUser": frozenset({Code.INVALID_ARGUMENT, Code.ALREADY_EXISTS, Code.PERMISSION_DENIED}),
    "GetUser": frozenset({Code.INVALID_ARGUMENT, Code.NOT_FOUND}),
    "GetUserByEmail": frozenset({Code.INVALID_ARGUMENT, Code.NOT_FOUND}),
    "BatchGetUsers": frozenset({Code.INVALID_ARGUMENT}),
    "UpdateProfile": frozenset({Code.INVALID_ARGUMENT, Code.NOT_FOUND, Code.ABORTED}),
    "ListUsers": frozenset({Code.INVALID_ARGUMENT}),
    "DeleteUser": frozenset({Code.INVALID_ARGUMENT, Code.NOT_FOUND, Code.ABORTED}),
    "Authenticate": frozenset(
        {
            Code.INVALID_ARGUMENT,
            Code.UNAUTHENTICATED,
            Code.PERMISSION_DENIED,
            Code.FAILED_PRECONDITION,
        }
    ),
    "RefreshSession": frozenset({Code.INVALID_ARGUMENT, Code.UNAUTHENTICATED, Code.ABORTED}),
    "Logout": frozenset({Code.INVALID_ARGUMENT}),
    "LogoutAll": frozenset({Code.INVALID_ARGUMENT, Code.NOT_FOUND}),
    "ListSessions": frozenset({Code.INVALID_ARGUMENT, Code.NOT_FOUND}),
    "EndSession": frozenset({Code.INVALID_ARGUMENT, Code.NOT_FOUND}),
    "ChangePassword": frozenset(
        {
            Code.INVALID_ARGUMENT,
            Code.UNAUTHENTICATED,
            Code.PERMISSION_DENIED,
            Code.NOT_FOUND,
        }
    ),
    "RequestPasswordReset": frozenset({Code.INVALID_ARGUMENT}),
    "ResetPassword": frozenset({Code.INVALID_ARGUMENT, Code.UNAUTHENTICATED}),
    "VerifyEmail": frozenset({Code.INVALID_ARGUMENT, Code.UNAUTHENTICATED, Code.ABORTED}),
    "ResendVerification": frozenset({Code.INVALID_ARGUMENT}),
    "DisableUser": frozenset({Code.INVALID_ARGUMENT, Code.NOT_FOUND}),
    "EnableUser": frozenset({Code.INVALID_ARGUMENT, Code.NOT_FOUND}),
    "GetJwks": frozenset(),
    "ListUserEvents": frozenset({Code.INVALID_ARGUMENT}),
    "WatchEvents": frozenset({Code.INVALID_ARGUMENT, Code.RESOURCE_EXHAUSTED}),
    "RequestEmailChange": frozenset(
        {
            Code.INVALID_ARGUMENT,
            Code.NOT_FOUND,
            Code.ABORTED,
            Code.ALREADY_EXISTS,
            Code.PERMISSION_DENIED,
            Code.RESOURCE_EXHAUSTED,
        }
    ),
    "ConfirmEmailChange": frozenset(
        {Code.INVALID_ARGUMENT, Code.UNAUTHENTICATED, Code.ALREADY_EXISTS}
    ),
    "CancelEmailChange": frozenset({Code.INVALID_ARGUMENT, Code.UNAUTHENTICATED}),
    "ChangeEmail": frozenset(
        {Code.INVALID_ARGUMENT, Code.NOT_FOUND, Code.ABORTED, Code.ALREADY_EXISTS}
    ),
    "BeginTotpEnrollment": frozenset(
        {Code.INVALID_ARGUMENT, Code.NOT_FOUND, Code.PERMISSION_DENIED, Code.FAILED_PRECONDITION}
    ),
    "ConfirmTotpEnrollment": frozenset(
        {
            Code.INVALID_ARGUMENT,
            Code.UNAUTHENTICATED,
            Code.NOT_FOUND,
            Code.PERMISSION_DENIED,
            Code.FAILED_PRECONDITION,
        }
    ),
    "DisableTotp": frozenset(
        {Code.INVALID_ARGUMENT, Code.UNAUTHENTICATED, Code.NOT_FOUND, Code.FAILED_PRECONDITION}
    ),
    "RegenerateRecoveryCodes": frozenset(
        {Code.INVALID_ARGUMENT, Code.UNAUTHENTICATED, Code.NOT_FOUND, Code.FAILED_PRECONDITION}
    ),
    "ResetSecondFactors": frozenset({Code.INVALID_ARGUMENT, Code.NOT_FOUND}),
    "CompleteSignIn": frozenset(
        {Code.INVALID_ARGUMENT, Code.UNAUTHENTICATED, Code.FAILED_PRECONDITION}
    ),
    "BeginPasskeyRegistration": frozenset(
        {Code.INVALID_ARGUMENT, Code.NOT_FOUND, Code.PERMISSION_DENIED, Code.FAILED_PRECONDITION}
    ),
    "FinishPasskeyRegistration": frozenset(
        {
            Code.INVALID_ARGUMENT,
            Code.NOT_FOUND,
            Code.PERMISSION_DENIED,
            Code.UNAUTHENTICATED,
            Code.FAILED_PRECONDITION,
        }
    ),
    "ListPasskeys": frozenset({Code.INVALID_ARGUMENT, Code.NOT_FOUND}),
    "RemovePasskey": frozenset({Code.INVALID_ARGUMENT, Code.NOT_FOUND}),
    "BeginPasskeySignIn": frozenset(),
    "FinishPasskeySignIn": frozenset(
        {
            Code.INVALID_ARGUMENT,
            Code.UNAUTHENTICATED,
            Code.PERMISSION_DENIED,
            Code.FAILED_PRECONDITION,
        }
    ),
}
METHODS = sorted(DOCUMENTED)
# Server-streaming RPCs: a request they take opens an endless stream; the test reads its first
# reply (or waits this long for one), then cancels it.
STREAMING = frozenset({"WatchEvents"})
STREAM_FIRST_REPLY_SECONDS = 0.5
ID_FIELDS = frozenset({"id", "user_id"})
ID_LIST_FIELDS = frozenset({"ids"})
_UUID_SPELLING = re.compile(r"(?:urn:uuid:)?\{?(?P<hex>[0-9a-fA-F-]+)\}?")

# Reproducible in CI: the same examples every run, nothing remembered between runs.
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None)


@dataclass
class Target:
    """The service under fuzz and, per RPC, accounts seeded for that RPC's requests alone."""

    service: Service
    strategies: dict[str, st.SearchStrategy[Message]] = field(default_factory=dict)
    client_fuzz_email: str = ""  # the account signed in with hostile client details

    async def requests_for(self, method: str) -> st.SearchStrategy[Message]:
        """Hostile requests for ``method``; its own accounts, since other RPCs may spoil theirs
        (disabled, deleted, every session ended)."""
        if method not in self.strategies:
            self.strategies[method] = requests(await _seed(self.service))[method]
        return self.strategies[method]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def target(moto_endpoint: str, smtp_server: CapturingSmtpServer) -> AsyncIterator[Target]:
    """One service for the whole module."""
    settings_ = service_settings(moto_endpoint, smtp_server)
    async with running_service(settings_, address="127.0.0.1:0") as running:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield Target(
                Service(
                    stub=user_service_pb2_grpc.UserServiceStub(channel),
                    channel=channel,
                    port=running.port,
                    dynamodb=running.client,
                    tables=running.tables,
                    smtp=smtp_server,
                )
            )


async def _seed(service: Service) -> Known:
    """Four users: the first with two sessions (one token already rotated) and a pending reset,
    registered with a vouched-for address; the second unverified, with its verification mail and
    a session; a third whose verification link was used, and a fourth whose verification has
    expired. A fifth, vouched-for (so no verification mail holds its mail back), with a pending
    email change."""
    stub = service.stub
    emails = tuple(unique_email(f"fuzz-{label}") for label in "abcd")
    users = [
        await stub.RegisterUser(
            pb.RegisterUserRequest(
                email=email,
                password=PASSWORD,
                first_name="F",
                last_name="Z",
                email_verified=email == emails[0],
            ),
            timeout=RPC_TIMEOUT,
        )
        for email in emails
    ]
    mails = [await service.smtp.wait_for_message(to=email, timeout=10) for email in emails[1:]]
    pending, used, expired = (reset_token_from(mail) for mail in mails)
    await stub.VerifyEmail(pb.VerifyEmailRequest(token=used), timeout=RPC_TIMEOUT)
    await _expire_verification(service, users[3].id)
    sign_ins = [
        await stub.Authenticate(
            pb.AuthenticateRequest(email=emails[0], password=PASSWORD), timeout=RPC_TIMEOUT
        )
        for _ in range(2)
    ]
    theirs = await stub.Authenticate(
        pb.AuthenticateRequest(email=emails[1], password=PASSWORD), timeout=RPC_TIMEOUT
    )
    rotated = await stub.RefreshSession(
        pb.RefreshSessionRequest(refresh_token=sign_ins[0].refresh_token), timeout=RPC_TIMEOUT
    )
    await stub.RequestPasswordReset(
        pb.RequestPasswordResetRequest(email=emails[0]), timeout=RPC_TIMEOUT
    )
    reset = reset_token_from(await service.smtp.wait_for_message(to=emails[0], timeout=10))
    mover_email, moving_to = unique_email("fuzz-mover"), unique_email("fuzz-moved")
    mover = await stub.RegisterUser(
        pb.RegisterUserRequest(
            email=mover_email, password=PASSWORD, first_name="M", last_name="V", email_verified=True
        ),
        timeout=RPC_TIMEOUT,
    )
    await stub.RequestEmailChange(
        pb.RequestEmailChangeRequest(id=mover.id, new_email=moving_to, expected_version=1),
        timeout=RPC_TIMEOUT,
    )
    confirm = reset_token_from(await service.smtp.wait_for_message(to=moving_to, timeout=10))
    cancel = reset_token_from(await service.smtp.wait_for_message(to=mover_email, timeout=10))
    totp_email = unique_email("fuzz-totp")
    totp_user = await stub.RegisterUser(
        pb.RegisterUserRequest(
            email=totp_email,
            password=PASSWORD,
            first_name="T",
            last_name="P",
            email_verified=True,
        ),
        timeout=RPC_TIMEOUT,
    )
    began = await stub.BeginTotpEnrollment(
        pb.BeginTotpEnrollmentRequest(user_id=totp_user.id), timeout=RPC_TIMEOUT
    )
    enrolled = await stub.ConfirmTotpEnrollment(
        pb.ConfirmTotpEnrollmentRequest(
            user_id=totp_user.id, code=pyotp.TOTP(began.secret).at(service.clock())
        ),
        timeout=RPC_TIMEOUT,
    )
    # Two sign-ins waiting on the code (wrong codes drop a challenge after 3; one may land).
    challenged = [
        await stub.Authenticate(
            pb.AuthenticateRequest(email=totp_email, password=PASSWORD), timeout=RPC_TIMEOUT
        )
        for _ in range(2)
    ]
    page = await stub.ListUsers(pb.ListUsersRequest(page_size=1), timeout=RPC_TIMEOUT)
    assert page.next_page_token
    events = await stub.ListUserEvents(
        pb.ListUserEventsRequest(user_id=users[0].id, page_size=1), timeout=RPC_TIMEOUT
    )
    passkeys = await _seed_passkeys(service)
    return Known(
        user_ids=tuple(user.id for user in users),
        emails=emails,
        passwords=(PASSWORD,),
        refresh_tokens=(
            sign_ins[0].refresh_token,
            rotated.refresh_token,
            sign_ins[1].refresh_token,
        ),
        reset_tokens=(reset,),
        email_change_tokens=(confirm, cancel),
        session_ids=tuple(sign_in.session_id for sign_in in sign_ins),
        page_tokens=(page.next_page_token,),
        event_page_tokens=(events.next_page_token,) if events.next_page_token else (),
        cursors=tuple(event.cursor for event in events.events),
        other_session_ids=(theirs.session_id,),
        verification_tokens=(pending, used, expired),
        verification_codes=tuple(verification_code_from(mail) for mail in mails),
        unverified_emails=emails[1:],
        totp_user_ids=(totp_user.id,),
        recovery_codes=tuple(enrolled.recovery_codes),
        challenge_tokens=tuple(reply.challenge.challenge_token for reply in challenged),
        **passkeys,
    )


async def _seed_passkeys(service: Service) -> dict[str, tuple[str, ...]]:
    """A user of its own (a passkey makes a password sign-in ask for a second factor, which the
    other users' sign-ins must not) with a passkey, a registration of another still open (its
    browser's answer not yet sent), and a passwordless sign-in begun with its assertion not yet
    sent."""
    stub, browser = service.stub, SoftAuthenticator()
    owner = await stub.RegisterUser(
        pb.RegisterUserRequest(
            email=unique_email("fuzz-passkey"),
            password=PASSWORD,
            first_name="P",
            last_name="K",
            email_verified=True,
        ),
        timeout=RPC_TIMEOUT,
    )
    user_id = owner.id
    registrations = []
    for finish, device in ((True, browser), (False, SoftAuthenticator())):
        begun = await stub.BeginPasskeyRegistration(
            pb.BeginPasskeyRegistrationRequest(user_id=user_id), timeout=RPC_TIMEOUT
        )
        registrations.append(json.dumps(device.create(begun.options_json)))
        if finish:
            await stub.FinishPasskeyRegistration(
                pb.FinishPasskeyRegistrationRequest(
                    user_id=user_id, credential_json=registrations[-1]
                ),
                timeout=RPC_TIMEOUT,
            )
    listed = await stub.ListPasskeys(pb.ListPasskeysRequest(user_id=user_id), timeout=RPC_TIMEOUT)
    sign_in = await stub.BeginPasskeySignIn(pb.BeginPasskeySignInRequest(), timeout=RPC_TIMEOUT)
    assertion = json.dumps(browser.get(sign_in.options_json))
    return {
        "passkey_user_ids": (user_id,),
        "passkey_ids": tuple(passkey.passkey_id for passkey in listed.passkeys),
        "passkey_registrations": tuple(registrations),
        "passkey_assertions": (assertion,),
        "ceremony_tokens": (sign_in.ceremony_token,),
    }


async def _expire_verification(service: Service, user_id: str) -> None:
    """Moves the user's pending verification's expiry into the past, as a day would."""
    await service.dynamodb.update_item(
        TableName=service.tables.users,
        Key={"Id": {"S": user_id}},
        UpdateExpression="SET EmailVerification.ExpiresAt = :past",
        ExpressionAttributeValues={":past": {"S": "2020-01-01T00:00:00.000000+00:00"}},
    )


def test_every_rpc_of_the_service_is_fuzzed() -> None:
    service = pb.DESCRIPTOR.services_by_name["UserService"]
    assert set(DOCUMENTED) == {method.name for method in service.methods}


@in_module_loop
@pytest.mark.parametrize("method", METHODS)
@FUZZ
@given(data=st.data())
async def test_hostile_requests_get_only_documented_status_codes(
    target: Target, method: str, data: st.DataObject
) -> None:
    request = data.draw(await target.requests_for(method), label="request")
    call = getattr(target.service.stub, method)
    try:
        if method in STREAMING:
            reply = await _first_reply(call(request, timeout=RPC_TIMEOUT))
            if reply is None:
                event("OK (stream open, no event yet)")
                _check_ids_refused(request, set())
                return
        else:
            reply = await call(request, timeout=RPC_TIMEOUT)
    except grpc.aio.AioRpcError as error:
        event(error.code().name)  # the spread of outcomes shows in --hypothesis-show-statistics
        violated = _check_refusal(method, request, error)
        _check_ids_refused(request, violated)
        return
    event("OK")
    _check_ids_refused(request, set())
    assert request.ByteSize() <= MAX_REQUEST_BYTES, "an oversized request was served"
    _check_reply(request, reply)
    if isinstance(request, pb.AuthenticateRequest):
        assert isinstance(reply, pb.AuthenticateResponse)
        await _check_stored_client(target.service, request, reply)


async def _first_reply(stream: grpc.aio.UnaryStreamCall[Message, Message]) -> Message | None:
    """The stream's first reply, or None when none comes soon; the stream is cancelled."""
    try:
        reply = await asyncio.wait_for(stream.read(), STREAM_FIRST_REPLY_SECONDS)
    except TimeoutError:
        return None
    finally:
        stream.cancel()
    assert isinstance(reply, Message), "an endless stream ended without a status"
    return reply


def _check_refusal(method: str, request: Message, error: grpc.aio.AioRpcError) -> set[str]:
    """Check the refusal against the documentation; the fields it names as invalid."""
    code = error.code()
    assert code not in (Code.UNKNOWN, Code.INTERNAL), f"{method}: {code} {error.details()!r}"
    if request.ByteSize() > MAX_REQUEST_BYTES:
        assert code is Code.RESOURCE_EXHAUSTED, f"{method}: oversized request got {code}"
        return set(request.DESCRIPTOR.fields_by_name)  # refused whole, before any check
    assert code in DOCUMENTED[method], f"{method}: undocumented {code} {error.details()!r}"
    status = rpc_status.from_call(error)  # type: ignore[arg-type, unused-ignore]
    assert status is not None, f"{method}: {code} without a google.rpc.Status"
    fields = _violated_fields(status.details)
    if code is Code.INVALID_ARGUMENT:
        assert fields, f"{method}: INVALID_ARGUMENT without field violations"
        assert {_field_of(f, request) for f in fields} <= set(request.DESCRIPTOR.fields_by_name), (
            f"{method}: {fields}"
        )
    if code is Code.RESOURCE_EXHAUSTED:
        assert any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status.details)
    return fields


def _field_of(violation: str, request: Message) -> str:
    """The field a violation names: ``ids[3]`` names ``ids``, at an index the request has;
    ``client.ip_address`` names ``client``, whose message has that field."""
    name, dot, inner = violation.partition(".")
    if dot:
        message_type = request.DESCRIPTOR.fields_by_name[name].message_type
        assert message_type is not None and inner in message_type.fields_by_name, violation
        return name
    name, bracket, index = violation.partition("[")
    if bracket:
        assert index.endswith("]") and 0 <= int(index[:-1]) < len(getattr(request, name)), violation
    return name


def _check_ids_refused(request: Message, violated: set[str]) -> None:
    """An id field that is no UUID (in any of its usual spellings) is always refused as such;
    in a list of ids, by its position, or (past the first ten, or in a list of the wrong size)
    by the list's name."""
    for name in ID_FIELDS & set(request.DESCRIPTOR.fields_by_name):
        value = getattr(request, name)
        assert name in violated or _spells_a_uuid(value), f"{name}={value!r} taken for a UUID"
    for name in ID_LIST_FIELDS & set(request.DESCRIPTOR.fields_by_name):
        for i, value in enumerate(getattr(request, name)):
            refused = f"{name}[{i}]" in violated or name in violated
            assert refused or _spells_a_uuid(value), f"{name}[{i}]={value!r} taken for a UUID"


def _spells_a_uuid(text: str) -> bool:
    """The spellings uuid.UUID documents: 32 ASCII hex digits, hyphens, braces, a URN prefix."""
    match = _UUID_SPELLING.fullmatch(text.strip())
    return match is not None and len(match["hex"].replace("-", "")) == 32


def _canonical(spelled: str) -> str:
    """The canonical form of an id the service took, worked out apart from its own parser."""
    match = _UUID_SPELLING.fullmatch(spelled.strip())
    assert match is not None
    return str(uuid.UUID(match["hex"].replace("-", "")))


def _violated_fields(details: object) -> set[str]:
    fields: set[str] = set()
    for detail in details:  # type: ignore[attr-defined]
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            fields.update(violation.field for violation in bad_request.field_violations)
    return fields


def _check_reply(request: Message, reply: Message) -> None:
    """What a successful reply to a hostile request must still look like."""
    if isinstance(reply, pb.User):
        _check_user(reply)
    if isinstance(reply, pb.ListUsersResponse):
        for user in reply.users:
            _check_user(user)
    if isinstance(request, pb.BatchGetUsersRequest):
        assert isinstance(reply, pb.BatchGetUsersResponse)
        assert 1 <= len(request.ids) <= 100
        assert [result.id for result in reply.results] == [_canonical(i) for i in request.ids]
        for result in reply.results:
            assert result.found is result.HasField("user"), result
            if result.found:
                assert result.user.id == result.id
                _check_user(result.user)
    if isinstance(request, pb.ListUserEventsRequest):
        assert isinstance(reply, pb.ListUserEventsResponse)
        assert {event.user_id for event in reply.events} <= {_canonical(request.user_id)}
        assert len(reply.events) <= (request.page_size or 25)
        sequences = [event.sequence for event in reply.events]
        assert sequences == sorted(set(sequences)) and all(s >= 1 for s in sequences)
    if isinstance(reply, pb.UserEvent):
        assert isinstance(request, pb.WatchEventsRequest)
        assert reply.WhichOneof("kind") is not None and reply.sequence >= 1
        assert not request.after_cursor or reply.cursor > request.after_cursor
    if isinstance(request, pb.ListSessionsRequest):
        assert isinstance(reply, pb.ListSessionsResponse)
        created = [s.created_at.ToDatetime() for s in reply.sessions]
        assert created == sorted(created, reverse=True)
        for session in reply.sessions:
            assert str(uuid.UUID(session.session_id)) == session.session_id
            _check_client(session.client)
    if isinstance(request, pb.VerifyEmailRequest):
        assert isinstance(reply, pb.User) and reply.email_verified
    if isinstance(request, pb.CompleteSignInRequest):
        # A guessed code may be right (one in a million or so): then it signs in, as documented.
        assert isinstance(reply, pb.AuthenticateResponse) and not reply.HasField("challenge")
        assert reply.access_token and reply.refresh_token and reply.user.id
    if isinstance(request, pb.RegisterUserRequest):
        assert isinstance(reply, pb.User)
        assert reply.email_verified is request.email_verified
        assert reply.email == unicodedata.normalize("NFC", request.email.strip())
        assert reply.first_name == unicodedata.normalize("NFC", request.first_name.strip())
        assert reply.last_name == unicodedata.normalize("NFC", request.last_name.strip())
        assert reply.version == 1
    if isinstance(request, (pb.DisableTotpRequest, pb.ResetSecondFactorsRequest)):
        assert isinstance(reply, pb.User)
        assert not reply.totp_enabled and reply.recovery_codes_remaining == 0
    if isinstance(request, pb.RegenerateRecoveryCodesRequest):
        assert isinstance(reply, pb.RegenerateRecoveryCodesResponse)
        assert len(set(reply.recovery_codes)) == 10
    if isinstance(request, pb.BeginTotpEnrollmentRequest):
        assert isinstance(reply, pb.BeginTotpEnrollmentResponse)
        assert reply.secret and reply.otpauth_uri.startswith("otpauth://totp/")


async def _check_stored_client(
    service: Service, request: pb.AuthenticateRequest, reply: pb.AuthenticateResponse
) -> None:
    """The client details a sign-in took are stored as given, trimmed, the address canonical."""
    listed = await service.stub.ListSessions(
        pb.ListSessionsRequest(user_id=reply.user.id), timeout=RPC_TIMEOUT
    )
    (stored,) = [s.client for s in listed.sessions if s.session_id == reply.session_id]
    _check_client(stored)
    given = request.client
    assert stored.user_agent == given.user_agent.strip()
    assert stored.device_label == unicodedata.normalize("NFC", given.device_label.strip())
    expected_ip = _canonical_ip(given.ip_address) if given.ip_address else ""
    assert stored.ip_address == expected_ip


def _check_client(client: pb.ClientDetails) -> None:
    """Stored client details meet the API's rules, checked independently."""
    assert len(client.user_agent) <= USER_AGENT_MAX_LENGTH
    assert len(client.device_label) <= DEVICE_LABEL_MAX_LENGTH
    for text in (client.user_agent, client.device_label):
        assert text == text.strip() and text.isprintable(), repr(text)
    if client.ip_address:
        assert client.ip_address == _canonical_ip(client.ip_address), client.ip_address


def _canonical_ip(text: str) -> str:
    """RFC 5952: lower case, zeros compressed, an IPv4-mapped address with its IPv4 part dotted."""
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return address.compressed


def _check_user(user: pb.User) -> None:
    """Whatever hostile input got stored still meets the API's rules, checked independently."""
    assert str(uuid.UUID(user.id)) == user.id
    assert user.status in (pb.USER_STATUS_ACTIVE, pb.USER_STATUS_DISABLED)
    assert user.version >= 1
    assert len(user.email) <= EMAIL_MAX_LENGTH and "@" in user.email
    assert len(user.first_name) <= NAME_MAX_LENGTH and len(user.last_name) <= NAME_MAX_LENGTH
    for text in (user.email, user.first_name, user.last_name):
        assert text and text == text.strip() and text == unicodedata.normalize("NFC", text)
        assert not any(unicodedata.category(ch).startswith("C") for ch in text), repr(text)


@in_module_loop
@FUZZ
@given(client=client_details())
async def test_hostile_client_details_are_refused_on_their_field_or_stored_canonical(
    target: Target, client: pb.ClientDetails | None
) -> None:
    """The right password with hostile client details: refused on a ``client.*`` field before the
    password is checked (no session), or signed in with the details stored in canonical form."""
    service = target.service
    email = target.client_fuzz_email or await _client_fuzz_account(target)
    request = pb.AuthenticateRequest(email=email, password=PASSWORD, client=client)
    try:
        reply = await service.stub.Authenticate(request, timeout=RPC_TIMEOUT)
    except grpc.aio.AioRpcError as error:
        event(error.code().name)
        assert error.code() is Code.INVALID_ARGUMENT, f"{error.code()} {error.details()!r}"
        status = rpc_status.from_call(error)  # type: ignore[arg-type, unused-ignore]
        assert status is not None
        fields = _violated_fields(status.details)
        assert fields and all(f.startswith("client.") for f in fields), fields
        for violation in fields:
            _field_of(violation, request)
        return
    event("OK")
    await _check_stored_client(service, request, reply)


async def _client_fuzz_account(target: Target) -> str:
    email = unique_email("fuzz-client")
    await target.service.stub.RegisterUser(
        pb.RegisterUserRequest(email=email, password=PASSWORD, first_name="F", last_name="Z"),
        timeout=RPC_TIMEOUT,
    )
    target.client_fuzz_email = email
    return email


@in_module_loop
async def test_the_service_still_serves_and_its_tables_hold_together_after_the_fuzzing(
    target: Target,
) -> None:
    service = target.service
    email = unique_email("after-fuzz")
    user = await service.stub.RegisterUser(
        pb.RegisterUserRequest(email=email, password=PASSWORD, first_name="A", last_name="B"),
        timeout=RPC_TIMEOUT,
    )
    assert (await service.stub.GetUser(pb.GetUserRequest(id=user.id), timeout=RPC_TIMEOUT)) == user
    health = await health_pb2_grpc.HealthStub(service.channel).Check(  # type: ignore[attr-defined, unused-ignore]
        health_pb2.HealthCheckRequest(), timeout=RPC_TIMEOUT
    )
    assert health.status == health_pb2.HealthCheckResponse.SERVING

    users = await service.scan(service.tables.users)
    guards = await service.scan(service.tables.emails)
    assert {(u["Id"]["S"], u["EmailIndex"]["S"]) for u in users} == {
        (g["UserId"]["S"], g["Email"]["S"]) for g in guards
    }, "a user without its email guard, or a guard without its user"
