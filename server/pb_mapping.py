"""The one mapping between protobuf messages and domain objects."""

from __future__ import annotations

import dataclasses
import enum
import re
from datetime import UTC, datetime
from typing import Any

from biome.user.v1 import user_service_pb2 as pb
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from domain.events import DomainEvent, RecordedEvent
from domain.passkeys import Passkey
from domain.sign_in_challenges import SignInFactor
from domain.use_cases.accounts import UserLookup, UsersPage
from domain.use_cases.events import UserEventsPage
from domain.use_cases.passkeys import PasskeyRegistrationBegun, PasskeySignInBegun
from domain.use_cases.second_factor_sign_in import Proof, ProofKind
from domain.use_cases.second_factors import RecoveryCodesIssued, TotpEnrollment
from domain.use_cases.sessions import SessionTokens, SessionView, SignInChallenged
from domain.user import User, UserStatus
from domain.values import ClientDetails

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STATUS_TO_PB: dict[UserStatus, pb.UserStatus.ValueType] = {
    UserStatus.ACTIVE: pb.USER_STATUS_ACTIVE,
    UserStatus.DISABLED: pb.USER_STATUS_DISABLED,
}


def user_to_pb(user: User) -> pb.User:
    """The caller's view of a user: never the password hash, tokens or pending resets."""
    return pb.User(
        id=user.id.value,
        email=user.email.value,
        first_name=user.first_name.value,
        last_name=user.last_name.value,
        status=_STATUS_TO_PB[user.status],
        version=user.version,
        created_at=_timestamp(user.created_at),
        updated_at=_timestamp(user.updated_at),
        email_verified=user.email_verified,
        email_verified_at=(
            _timestamp(user.email_verified_at) if user.email_verified_at is not None else None
        ),
        totp_enabled=user.totp is not None,
        recovery_codes_remaining=user.recovery_codes_remaining,
        passkey_count=len(user.passkeys),
    )


def users_page_to_pb(page: UsersPage) -> pb.ListUsersResponse:
    return pb.ListUsersResponse(
        users=[user_to_pb(user) for user in page.users], next_page_token=page.next_page_token
    )


def lookups_to_pb(lookups: list[UserLookup]) -> pb.BatchGetUsersResponse:
    return pb.BatchGetUsersResponse(results=[_lookup_to_pb(lookup) for lookup in lookups])


def _lookup_to_pb(lookup: UserLookup) -> pb.BatchGetUsersResult:
    if lookup.user is None:
        return pb.BatchGetUsersResult(id=lookup.user_id.value, found=False)
    return pb.BatchGetUsersResult(id=lookup.user_id.value, found=True, user=user_to_pb(lookup.user))


def authenticated_to_pb(tokens: SessionTokens) -> pb.AuthenticateResponse:
    return pb.AuthenticateResponse(
        access_token=tokens.access_token.value,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.access_token.expires_in,
        user=user_to_pb(tokens.user),
        session_id=tokens.session_id,
    )


def signed_in_to_pb(
    outcome: SessionTokens | SignInChallenged, passkey_request_options_json: str = ""
) -> pb.AuthenticateResponse:
    """Authenticate's reply: the tokens, or (no token, no user) the challenge that waits on a
    second factor, with the request options for the user's passkeys when it has any."""
    if isinstance(outcome, SessionTokens):
        return authenticated_to_pb(outcome)
    issued = outcome.challenge
    return pb.AuthenticateResponse(
        challenge=pb.SignInChallenge(
            challenge_token=issued.token,
            factors=[_FACTOR_TO_PB[factor] for factor in issued.factors],
            expires_at=_timestamp(issued.expires_at),
            passkey_request_options_json=passkey_request_options_json,
        )
    )


_FACTOR_TO_PB: dict[SignInFactor, pb.SignInFactor.ValueType] = {
    factor: pb.SignInFactor.Value(f"SIGN_IN_FACTOR_{factor.name}") for factor in SignInFactor
}


def refreshed_to_pb(tokens: SessionTokens) -> pb.RefreshSessionResponse:
    return pb.RefreshSessionResponse(
        access_token=tokens.access_token.value,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.access_token.expires_in,
    )


def sessions_to_pb(listed: list[SessionView]) -> pb.ListSessionsResponse:
    return pb.ListSessionsResponse(sessions=[_session_to_pb(view) for view in listed])


def _session_to_pb(view: SessionView) -> pb.SessionInfo:
    """A live session as callers see it: no token, no hash."""
    return pb.SessionInfo(
        session_id=view.session_id,
        created_at=_timestamp(view.created_at),
        last_used_at=_timestamp(view.last_used_at),
        expires_at=_timestamp(view.ends_at),
        client=_client_to_pb(view.client),
    )


def _client_to_pb(client: ClientDetails) -> pb.ClientDetails:
    return pb.ClientDetails(
        user_agent=client.user_agent,
        ip_address=client.ip_address,
        device_label=client.device_label,
    )


def email_change_requested_to_pb(expires_at: datetime) -> pb.RequestEmailChangeResponse:
    return pb.RequestEmailChangeResponse(expires_at=_timestamp(expires_at))


def totp_enrollment_to_pb(
    enrollment: TotpEnrollment, qr_code_svg: bytes
) -> pb.BeginTotpEnrollmentResponse:
    return pb.BeginTotpEnrollmentResponse(
        secret=enrollment.secret,
        otpauth_uri=enrollment.uri,
        qr_code_svg=qr_code_svg,
        expires_at=_timestamp(enrollment.expires_at),
    )


def totp_confirmed_to_pb(confirmed: RecoveryCodesIssued) -> pb.ConfirmTotpEnrollmentResponse:
    return pb.ConfirmTotpEnrollmentResponse(
        recovery_codes=list(confirmed.recovery_codes), user=user_to_pb(confirmed.user)
    )


def recovery_codes_to_pb(issued: RecoveryCodesIssued) -> pb.RegenerateRecoveryCodesResponse:
    return pb.RegenerateRecoveryCodesResponse(recovery_codes=list(issued.recovery_codes))


def jwks_to_pb(keys: list[dict[str, str]]) -> pb.GetJwksResponse:
    return pb.GetJwksResponse(keys=[pb.Jwk(**key) for key in keys])


def user_events_page_to_pb(page: UserEventsPage) -> pb.ListUserEventsResponse:
    return pb.ListUserEventsResponse(
        events=[event_to_pb(event) for event in page.events],
        next_page_token=page.next_page_token,
    )


def event_to_pb(recorded: RecordedEvent) -> pb.UserEvent:
    """A recorded domain event as a UserEvent: the common fields, and the kind's own message in
    the ``kind`` oneof (the field named for the event's class: UserRegistered -> user_registered,
    its message UserEvent.UserRegistered with the event's own fields)."""
    event = recorded.event
    kind = type(event).__name__
    what: dict[str, Any] = {_snake_case(kind): _event_fields(event, getattr(pb.UserEvent, kind))}
    return pb.UserEvent(
        user_id=event.user_id,
        sequence=recorded.sequence,
        cursor=recorded.cursor,
        occurred_at=_timestamp(event.occurred_at),
        recorded_at=_timestamp(recorded.recorded_at),
        **what,
    )


_COMMON_EVENT_FIELDS = frozenset(field.name for field in dataclasses.fields(DomainEvent))
_WORD_START = re.compile(r"(?<!^)(?=[A-Z])")


def _event_fields(event: DomainEvent, message: type[Message]) -> Message:
    fields: dict[str, object] = {}
    for field in dataclasses.fields(event):
        if field.name in _COMMON_EVENT_FIELDS:
            continue
        value = getattr(event, field.name)
        if value is None:
            continue  # an optional field left unset (proto3: the empty default)
        if isinstance(value, datetime):
            value = _timestamp(value)
        elif isinstance(value, enum.Enum):
            # PasswordChangeReason.RESET -> PASSWORD_CHANGE_REASON_RESET
            enum_type = getattr(pb, type(value).__name__)
            value = enum_type.Value(f"{_snake_case(type(value).__name__).upper()}_{value.name}")
        fields[field.name] = value
    return message(**fields)


def _snake_case(name: str) -> str:
    return _WORD_START.sub("_", name).lower()


def _timestamp(moment: datetime) -> Timestamp:
    """``moment`` as a Timestamp, as ``Timestamp.FromDatetime`` makes it (a naive moment is
    UTC), by arithmetic on the difference from the epoch: FromDatetime builds a time tuple and
    calls ``calendar.timegm``, about 5 us a timestamp, three in every User (issue 20's profile)."""
    since_epoch = (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)) - _EPOCH
    return Timestamp(
        seconds=since_epoch.days * 86_400 + since_epoch.seconds,
        nanos=since_epoch.microseconds * 1_000,
    )


def proof_from_pb(request: pb.CompleteSignInRequest) -> Proof | None:
    """The second factor CompleteSignIn was given (None: none)."""
    which = request.WhichOneof("proof")
    if which == "totp_code":
        return Proof(ProofKind.TOTP_CODE, request.totp_code)
    if which == "recovery_code":
        return Proof(ProofKind.RECOVERY_CODE, request.recovery_code)
    if which == "passkey_credential_json":
        return Proof(ProofKind.PASSKEY, request.passkey_credential_json)
    return None


def passkey_to_pb(passkey: Passkey) -> pb.Passkey:
    """A passkey as its owner sees it: never its public key."""
    return pb.Passkey(
        passkey_id=passkey.passkey_id,
        name=passkey.name,
        created_at=_timestamp(passkey.created_at),
        last_used_at=(
            _timestamp(passkey.last_used_at) if passkey.last_used_at is not None else None
        ),
        transports=list(passkey.transports),
        backup_eligible=passkey.backup_eligible,
        backed_up=passkey.backed_up,
    )


def passkeys_to_pb(passkeys: tuple[Passkey, ...]) -> pb.ListPasskeysResponse:
    return pb.ListPasskeysResponse(passkeys=[passkey_to_pb(p) for p in passkeys])


def passkey_registration_to_pb(
    begun: PasskeyRegistrationBegun,
) -> pb.BeginPasskeyRegistrationResponse:
    return pb.BeginPasskeyRegistrationResponse(
        options_json=begun.options_json, expires_at=_timestamp(begun.expires_at)
    )


def passkey_sign_in_to_pb(begun: PasskeySignInBegun) -> pb.BeginPasskeySignInResponse:
    return pb.BeginPasskeySignInResponse(
        options_json=begun.options_json,
        ceremony_token=begun.ceremony_token,
        expires_at=_timestamp(begun.expires_at),
    )
