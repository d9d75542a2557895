"""Maps a user's passkeys, its registration ceremony under way and its spent sign-in challenges
to the user item's attributes and back (persistence.schema: Passkeys, PasskeyRegistration,
PasskeySignIns); persistence.user_mapper calls it."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime
from typing import Any

from domain.passkeys import Passkey, PasskeyRegistration, b64url

Item = dict[str, Any]
TimeValue = Callable[[datetime], Item]
ParseTime = Callable[[Item], datetime]

# The BE and BS flags of a passkey in one number: bit 0 backup eligible, bit 1 backed up.
_ELIGIBLE, _BACKED_UP = 1, 2


def passkey_attributes(
    passkeys: tuple[Passkey, ...],
    registration: PasskeyRegistration | None,
    spent: tuple[tuple[str, datetime], ...],
    time_value: TimeValue,
) -> Item:
    """The attributes to set on the item (none of them when there is nothing to keep)."""
    item: Item = {}
    if passkeys:
        item["Passkeys"] = {"L": [_passkey_to_map(p, time_value) for p in passkeys]}
    if registration is not None:
        item["PasskeyRegistration"] = {
            "M": {
                "Challenge": {"S": b64url(registration.challenge)},
                "ExpiresAt": time_value(registration.expires_at),
            }
        }
    if spent:
        item["PasskeySignIns"] = {"M": {digest: time_value(until) for digest, until in spent}}
    return item


def passkeys_of(item: Item, parse_time: ParseTime) -> tuple[Passkey, ...]:
    return tuple(
        _map_to_passkey(value["M"], parse_time) for value in item.get("Passkeys", {"L": []})["L"]
    )


def registration_of(item: Item, parse_time: ParseTime) -> PasskeyRegistration | None:
    value = item.get("PasskeyRegistration")
    if value is None:
        return None
    fields = value["M"]
    return PasskeyRegistration(_bytes(fields["Challenge"]["S"]), parse_time(fields["ExpiresAt"]))


def spent_sign_ins_of(item: Item, parse_time: ParseTime) -> tuple[tuple[str, datetime], ...]:
    spent = item.get("PasskeySignIns", {"M": {}})["M"]
    return tuple(
        sorted(((digest, parse_time(until)) for digest, until in spent.items()), key=lambda s: s[1])
    )


def _passkey_to_map(passkey: Passkey, time_value: TimeValue) -> Item:
    fields: Item = {
        "Id": {"S": passkey.passkey_id},
        "PublicKey": {"S": b64url(passkey.public_key)},
        "SignCount": {"N": str(passkey.sign_count)},
        "Name": {"S": passkey.name},
        "CreatedAt": time_value(passkey.created_at),
        "Backup": {"N": str(_ELIGIBLE * passkey.backup_eligible + _BACKED_UP * passkey.backed_up)},
    }
    if passkey.last_used_at is not None:
        fields["LastUsedAt"] = time_value(passkey.last_used_at)
    if passkey.transports:
        fields["Transports"] = {"S": ",".join(passkey.transports)}
    return {"M": fields}


def _map_to_passkey(fields: Item, parse_time: ParseTime) -> Passkey:
    backup = int(fields["Backup"]["N"])
    transports = fields.get("Transports", {"S": ""})["S"]
    return Passkey(
        passkey_id=fields["Id"]["S"],
        public_key=_bytes(fields["PublicKey"]["S"]),
        sign_count=int(fields["SignCount"]["N"]),
        name=fields["Name"]["S"],
        created_at=parse_time(fields["CreatedAt"]),
        last_used_at=parse_time(fields["LastUsedAt"]) if "LastUsedAt" in fields else None,
        transports=tuple(transports.split(",")) if transports else (),
        backup_eligible=bool(backup & _ELIGIBLE),
        backed_up=bool(backup & _BACKED_UP),
    )


def _bytes(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
