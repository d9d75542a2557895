"""The one mapping between protobuf messages and domain objects."""

from __future__ import annotations

from datetime import datetime

from biome.user.v1 import user_service_pb2 as pb
from google.protobuf.timestamp_pb2 import Timestamp

from domain.session_use_cases import SessionTokens
from domain.use_cases import UserLookup, UsersPage
from domain.user import User, UserStatus

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


def refreshed_to_pb(tokens: SessionTokens) -> pb.RefreshSessionResponse:
    return pb.RefreshSessionResponse(
        access_token=tokens.access_token.value,
        refresh_token=tokens.refresh_token,
        expires_in=tokens.access_token.expires_in,
    )


def jwks_to_pb(keys: list[dict[str, str]]) -> pb.GetJwksResponse:
    return pb.GetJwksResponse(keys=[pb.Jwk(**key) for key in keys])


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp
