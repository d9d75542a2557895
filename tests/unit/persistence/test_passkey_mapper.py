"""A user's passkeys, its registration under way and its spent sign-in challenges survive the
user item's round trip; a user without any stores no passkey attribute; and the item of a user
with ten passkeys stays small."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from domain.passkeys import (
    MAX_PASSKEYS,
    Passkey,
    PasskeyRegistration,
    b64url,
    challenge_digest,
)
from persistence.user_mapper import item_to_user, user_to_item
from tests.builders import T0, new_user, state_of

# What a P-256 key weighs in COSE (77 bytes), and a credential id as platforms make them (16).
COSE_P256_BYTES = 77


def passkey(number: int, *, used: bool = True) -> Passkey:
    return Passkey(
        passkey_id=b64url(secrets.token_bytes(16)),
        public_key=secrets.token_bytes(COSE_P256_BYTES),
        sign_count=number,
        name=f"Anna's phone {number}",
        created_at=T0,
        last_used_at=T0 + timedelta(days=number) if used else None,
        transports=("hybrid", "internal") if number % 2 else (),
        backup_eligible=bool(number % 2),
        backed_up=bool(number % 3),
    )


def item_bytes(item: dict[str, Any]) -> int:
    """The item's size as DynamoDB counts it: each attribute's name and value, a map's or a
    list's 3 bytes and 1 per element, a number's digits about half a byte each."""
    return sum(len(name.encode()) + _value_bytes(value) for name, value in item.items())


def _value_bytes(value: dict[str, Any]) -> int:
    [(kind, inner)] = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return (len(inner.lstrip("-")) + 1) // 2 + 1
    if kind == "BOOL":
        return 1
    if kind == "L":
        return 3 + sum(1 + _value_bytes(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_bytes(v) for k, v in inner.items())
    raise AssertionError(kind)


def test_passkeys_a_registration_and_spent_challenges_survive_the_round_trip() -> None:
    user = new_user()
    user.passkeys = (passkey(1), passkey(2, used=False), passkey(3))
    user.passkey_registration = PasskeyRegistration(secrets.token_bytes(32), T0)
    user.spent_sign_in_challenges = (
        (challenge_digest(b"a"), T0),
        (challenge_digest(b"b"), T0 + timedelta(minutes=1)),
    )
    user.version = 1
    item = user_to_item(user, version=1, revision=1, event_seq=1)
    assert state_of(item_to_user(item)) == state_of(user)


def test_a_user_without_passkeys_stores_no_passkey_attribute() -> None:
    item = user_to_item(new_user(), version=1, revision=1, event_seq=1)
    assert not {"Passkeys", "PasskeyRegistration", "PasskeySignIns"} & set(item)
    assert item_to_user(item).passkeys == ()


def test_what_passkeys_add_to_the_user_item() -> None:
    bare = item_bytes(user_to_item(new_user(), version=1, revision=1, event_seq=1))
    user = new_user()
    user.passkeys = (passkey(1),)
    one = item_bytes(user_to_item(user, version=1, revision=1, event_seq=1)) - bare
    user.passkeys = tuple(passkey(n) for n in range(1, MAX_PASSKEYS + 1))
    user.passkey_registration = PasskeyRegistration(secrets.token_bytes(32), T0)
    user.spent_sign_in_challenges = ((challenge_digest(b"a"), T0),)
    ten = item_bytes(user_to_item(user, version=1, revision=1, event_seq=1)) - bare
    # One passkey: its id, key, name, times, counter, flags and transports: about 300 bytes.
    assert one <= 320, one
    # Ten, a registration under way (about 120 bytes) and a spent sign-in challenge (about 70):
    # about 3 KB, so a user with ten passkeys costs 3 write units more per write of the item.
    assert ten <= 3100, ten
