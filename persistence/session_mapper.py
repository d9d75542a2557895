"""Maps a Session to its item in the sessions table and back, and reads the sessions a user item
of schema version 2 still holds; see persistence.schema."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from domain.errors import StorageError
from domain.values import AMR_PASSWORD, ClientDetails, Session
from persistence.schema import session_key
from persistence.user_mapper import optional_time_value, parse_time_value, time_value

Item = dict[str, Any]


def session_to_item(user_id: str, session: Session, *, idle_lifetime: timedelta) -> Item:
    """The item that stores ``session`` of user ``user_id``; its ExpireAt (the table's TTL) is
    when the session ends unless used again."""
    item: Item = {
        "UserId": {"S": user_id},
        "SessionKey": {"S": session_key(session.epoch, session.session_id)},
        **_session_fields(session),
        "ExpireAt": {"N": str(int(session.ends_at(idle_lifetime).timestamp()))},
    }
    return item


def item_to_session(item: Item) -> Session:
    """The session an item of the sessions table stores; StorageError if it is malformed."""
    try:
        epoch = int(item["SessionKey"]["S"].partition("#")[0])
        return _fields_to_session(item, epoch)
    except (KeyError, TypeError, ValueError) as error:
        raise StorageError(f"stored session item is malformed ({type(error).__name__})") from error


def item_embedded_sessions(user_item: Item) -> list[Session]:
    """The sessions a user item holds in ``Sessions`` (schema version 2, or an item an import
    wrote from a file), as sessions of the item's epoch (0 for version 2); [] for an item
    without them."""
    try:
        epoch = int(user_item.get("SessionEpoch", {"N": "0"})["N"])
        return [_fields_to_session(entry["M"], epoch) for entry in user_item["Sessions"]["L"]]
    except KeyError:
        if "Sessions" not in user_item:
            return []
        raise StorageError("stored user item has malformed Sessions") from None
    except (TypeError, ValueError) as error:
        raise StorageError(f"stored user item has malformed Sessions ({error!r})") from error


def session_to_embedded(session: Session) -> Item:
    """A session as a user item holds it in ``Sessions`` (schema version 2, and the lines of an
    export file)."""
    return {"M": _session_fields(session)}


def _session_fields(session: Session) -> Item:
    fields: Item = {
        "SessionId": {"S": session.session_id},
        "TokenHash": {"S": session.token_hash},
        "CreatedAt": time_value(session.created_at),
        "ExpiresAt": time_value(session.expires_at),
        "LastUsedAt": time_value(session.last_used_at),
    }
    if session.previous_token_hash is not None and session.rotated_at is not None:
        fields["PreviousTokenHash"] = {"S": session.previous_token_hash}
        fields["RotatedAt"] = time_value(session.rotated_at)
    if session.retired_token_hashes:
        # A list, not a string set: the order says which hashes are the oldest to drop.
        fields["RetiredTokenHashes"] = {"L": [{"S": h} for h in session.retired_token_hashes]}
    # A list: RFC 8176 values in the order the token's claim lists them.
    fields["Amr"] = {"L": [{"S": method} for method in session.amr]}
    # Each only when given (DynamoDB keeps no empty key attributes; an absent one reads as "").
    for name, value in _client_fields(session.client):
        if value:
            fields[name] = {"S": value}
    return fields


def _client_fields(client: ClientDetails) -> tuple[tuple[str, str], ...]:
    return (
        ("UserAgent", client.user_agent),
        ("IpAddress", client.ip_address),
        ("DeviceLabel", client.device_label),
    )


def _fields_to_client(fields: Item) -> ClientDetails:
    return ClientDetails(
        user_agent=fields["UserAgent"]["S"] if "UserAgent" in fields else "",
        ip_address=fields["IpAddress"]["S"] if "IpAddress" in fields else "",
        device_label=fields["DeviceLabel"]["S"] if "DeviceLabel" in fields else "",
    )


def _fields_to_session(fields: Item, epoch: int) -> Session:
    return Session(
        session_id=fields["SessionId"]["S"],
        token_hash=fields["TokenHash"]["S"],
        created_at=parse_time_value(fields["CreatedAt"]),
        expires_at=parse_time_value(fields["ExpiresAt"]),
        last_used_at=parse_time_value(fields["LastUsedAt"]),
        previous_token_hash=fields["PreviousTokenHash"]["S"]
        if "PreviousTokenHash" in fields
        else None,
        rotated_at=optional_time_value(fields, "RotatedAt"),
        retired_token_hashes=tuple(
            h["S"] for h in fields.get("RetiredTokenHashes", {"L": []})["L"]
        ),
        epoch=epoch,
        client=_fields_to_client(fields),
        # Sessions stored before sign-ins had second factors were all opened with a password.
        amr=tuple(m["S"] for m in fields["Amr"]["L"]) if "Amr" in fields else AMR_PASSWORD,
    )
