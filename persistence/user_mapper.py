"""Maps a User to its DynamoDB item (typed AttributeValues) and back; see persistence.schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from domain.errors import StorageError
from domain.user import User, UserStatus
from domain.values import Email, PasswordReset, PersonName, RefreshToken, UserId
from persistence.schema import EMAIL_INDEX, REFRESH_TOKEN_INDEX, SCHEMA_VERSION

Item = dict[str, Any]


def user_to_item(user: User, version: int) -> Item:
    """The item that stores ``user`` at ``version``."""
    item: Item = {
        "Id": _s(user.id.value),
        "Email": _s(user.email.value),
        EMAIL_INDEX: _s(user.email.normalized),
        "FirstName": _s(user.first_name.value),
        "LastName": _s(user.last_name.value),
        "PasswordHash": _s(user.password_hash),
        "Status": _s(user.status.value),
        "Version": _n(version),
        "CreatedAt": _time(user.created_at),
        "UpdatedAt": _time(user.updated_at),
        "RefreshTokens": {"L": [_token_to_map(token) for token in user.refresh_tokens]},
        "SchemaVersion": _n(SCHEMA_VERSION),
    }
    if user.password_reset is not None:
        item["PasswordReset"] = _reset_to_map(user.password_reset)
    current = user.current_refresh_token()
    if current is not None:
        item[REFRESH_TOKEN_INDEX] = _s(current.token_hash)
    return item


def item_to_user(item: Item) -> User:
    """The User an item stores; StorageError if it is not a user item this code understands."""
    try:
        schema_version = int(item.get("SchemaVersion", _n(SCHEMA_VERSION))["N"])
        if schema_version != SCHEMA_VERSION:
            raise ValueError(f"unsupported SchemaVersion {schema_version}")
        tokens = item.get("RefreshTokens", {"L": []})["L"]
        reset = item.get("PasswordReset")
        return User(
            id=UserId(item["Id"]["S"]),
            email=Email(item["Email"]["S"]),
            first_name=PersonName(item["FirstName"]["S"]),
            last_name=PersonName(item["LastName"]["S"]),
            password_hash=item["PasswordHash"]["S"],
            status=UserStatus(item["Status"]["S"]),
            created_at=_parse_time(item["CreatedAt"]),
            updated_at=_parse_time(item["UpdatedAt"]),
            version=int(item["Version"]["N"]),
            refresh_tokens=tuple(_map_to_token(entry) for entry in tokens),
            password_reset=_map_to_reset(reset) if reset is not None else None,
        )
    except (KeyError, TypeError, ValueError) as error:
        item_id = item.get("Id", {}).get("S", "?")
        problem = type(error).__name__
        raise StorageError(f"stored user item {item_id} is malformed ({problem})") from error


def _token_to_map(token: RefreshToken) -> Item:
    fields: Item = {
        "TokenHash": _s(token.token_hash),
        "SessionId": _s(token.session_id),
        "CreatedAt": _time(token.created_at),
        "ExpiresAt": _time(token.expires_at),
    }
    if token.revoked_at is not None:
        fields["RevokedAt"] = _time(token.revoked_at)
    return {"M": fields}


def _map_to_token(value: Item) -> RefreshToken:
    fields = value["M"]
    return RefreshToken(
        token_hash=fields["TokenHash"]["S"],
        session_id=fields["SessionId"]["S"],
        created_at=_parse_time(fields["CreatedAt"]),
        expires_at=_parse_time(fields["ExpiresAt"]),
        revoked_at=_parse_time(fields["RevokedAt"]) if "RevokedAt" in fields else None,
    )


def _reset_to_map(reset: PasswordReset) -> Item:
    fields: Item = {
        "TokenHash": _s(reset.token_hash),
        "RequestedAt": _time(reset.requested_at),
        "ExpiresAt": _time(reset.expires_at),
    }
    if reset.used_at is not None:
        fields["UsedAt"] = _time(reset.used_at)
    return {"M": fields}


def _map_to_reset(value: Item) -> PasswordReset:
    fields = value["M"]
    return PasswordReset(
        token_hash=fields["TokenHash"]["S"],
        requested_at=_parse_time(fields["RequestedAt"]),
        expires_at=_parse_time(fields["ExpiresAt"]),
        used_at=_parse_time(fields["UsedAt"]) if "UsedAt" in fields else None,
    )


def _s(value: str) -> Item:
    return {"S": value}


def _n(value: int) -> Item:
    return {"N": str(value)}


def _time(moment: datetime) -> Item:
    if moment.tzinfo is None:
        raise ValueError("refusing to store a naive datetime; the clock must give aware UTC times")
    return _s(moment.astimezone(UTC).isoformat(timespec="microseconds"))


def _parse_time(value: Item) -> datetime:
    moment = datetime.fromisoformat(value["S"])
    if moment.tzinfo is None:
        raise ValueError("stored time has no offset")
    return moment.astimezone(UTC)
