"""Upgrades a stored user item, written by any earlier schema version, to the current one.

Each item carries ``SchemaVersion``. Code reads every version up to its own: ``upgrade_item``
applies the steps below one after the other, so reading never depends on whether the table has
been migrated (``user-service migrate`` rewrites old items in place). An item from a NEWER
schema than this code knows is refused (ValueError), never read nor overwritten.

Versions:
  1  the first slice. Items written before sign-in existed lack ``Revision``: their ``Version``
     then counted every write, so it stands in for the revision.
  2  the event outbox: ``EventSeq`` counts the domain events recorded for the user (0 for an
     item written by version 1, which recorded none), and ``Revision`` is always present.
     Since growing lock-out delays, ``FailedLogins`` counts failures in a row and
     ``FailuresStartedAt`` (the old window's start) is no longer written; where an older item
     still has it, it is ignored, and its ``FailedLogins`` and ``LockedUntil`` read as they are
     (a flat lock still running ends when it said). No new version: the layout is the same and
     code of either kind reads the other's items.
  3  sessions in their own table (persistence.schema, ``UserSessions``), ended all at once by the
     user's ``SessionEpoch`` (0 when absent). A version 2 item may hold ``Sessions`` (a list in
     the item): they read as sessions of epoch 0 (persistence.user_mapper.item_embedded_sessions),
     and the user's next write, or ``user-service migrate``, moves them to session items in the
     same transaction as the user Put, which no longer has the attribute. Code of version 2
     refuses a version 3 item (never overwriting it): a user written by version 3 errors on a
     version 2 replica, so every replica runs version 3 before users are written by it
     (docs/production.md).
  4  verified addresses: ``EmailVerified`` (a boolean, absent: not verified) and
     ``EmailVerifiedAt``, and the pending verification and email change of a user. An item of
     version 3 has none of them: its address reads as unverified. Code of version 3 refuses a
     version 4 item, so it never overwrites one and drops what version 4 recorded.
  5  second factors: ``Totp`` (the confirmed factor: its sealed secret, when it was confirmed,
     the last time step a code was accepted at), ``PendingTotp`` (an enrollment not yet
     confirmed), ``RecoveryCodes`` (hashes of the unused codes), ``SignInChallenges`` (sign-ins
     waiting on a second factor, their tokens as hashes), and the passkeys' attributes
     (persistence.schema). An item of version 4 has none: its user has no second factor. Code of
     version 4 refuses a version 5 item, so it never overwrites one and drops the user's second
     factors (which would let a password alone sign in again).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from persistence.schema import SCHEMA_VERSION

Item = dict[str, Any]


def item_schema_version(item: Item) -> int:
    """The schema version an item was written with (1 when it predates the attribute)."""
    return int(item.get("SchemaVersion", {"N": "1"})["N"])


def needs_upgrade(item: Item) -> bool:
    """Whether the item was written by an older schema version than the current one."""
    return item_schema_version(item) < SCHEMA_VERSION


def upgrade_item(item: Item) -> Item:
    """The item in the current schema (the same object when it is current already).

    ValueError when the item comes from a newer schema, or its version is not a known one.
    """
    version = item_schema_version(item)
    if version > SCHEMA_VERSION:
        raise ValueError(
            f"item written by schema version {version}; this code knows up to {SCHEMA_VERSION}"
        )
    if version < 1:
        raise ValueError(f"unknown schema version {version}")
    while version < SCHEMA_VERSION:
        item = _STEPS[version](item)
        version += 1
    return item


def _v1_to_v2(item: Item) -> Item:
    upgraded = dict(item)
    upgraded.setdefault("Revision", item["Version"])
    upgraded.setdefault("EventSeq", {"N": "0"})
    upgraded["SchemaVersion"] = {"N": "2"}
    return upgraded


def _v2_to_v3(item: Item) -> Item:
    # Sessions, if any, stay in the upgraded item: the repository moves them (see above).
    upgraded = dict(item)
    upgraded.setdefault("SessionEpoch", {"N": "0"})
    upgraded["SchemaVersion"] = {"N": "3"}
    return upgraded


def _v3_to_v4(item: Item) -> Item:
    # Nothing to add: every attribute version 4 introduced is optional, absent meaning "none".
    upgraded = dict(item)
    upgraded["SchemaVersion"] = {"N": "4"}
    return upgraded


def _v4_to_v5(item: Item) -> Item:
    # Nothing to add: every attribute version 5 introduced is optional, absent meaning "none".
    upgraded = dict(item)
    upgraded["SchemaVersion"] = {"N": "5"}
    return upgraded


# _STEPS[n] turns an item of version n into one of version n + 1.
_STEPS: dict[int, Callable[[Item], Item]] = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4, 4: _v4_to_v5}
