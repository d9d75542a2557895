"""Maps a User to its DynamoDB item (typed AttributeValues) and back; see persistence.schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from domain.errors import StorageError
from domain.second_factors import (
    RECOVERY_HASH_BYTES,
    PendingTotpEnrollment,
    SealedSecret,
    TotpFactor,
)
from domain.sign_in_challenges import SignInChallenge
from domain.user import User, UserStatus
from domain.values import (
    Email,
    EmailVerification,
    PasswordReset,
    PendingEmailChange,
    PersonName,
    UserId,
)
from persistence.item_upgrades import upgrade_item
from persistence.passkey_mapper import (
    passkey_attributes,
    passkeys_of,
    registration_of,
    spent_sign_ins_of,
)
from persistence.schema import EMAIL_INDEX, SCHEMA_VERSION

Item = dict[str, Any]


def user_to_item(user: User, *, version: int, revision: int, event_seq: int) -> Item:
    """The item that stores ``user`` at ``version`` (what callers see), ``revision`` (every
    write) and ``event_seq`` (the number of its last recorded domain event)."""
    item: Item = {
        "Id": _s(user.id.value),
        "Email": _s(user.email.value),
        EMAIL_INDEX: _s(user.email.normalized),
        "FirstName": _s(user.first_name.value),
        "LastName": _s(user.last_name.value),
        "PasswordHash": _s(user.password_hash),
        "Status": _s(user.status.value),
        "Version": _n(version),
        "Revision": _n(revision),
        "CreatedAt": _time(user.created_at),
        "UpdatedAt": _time(user.updated_at),
        "SessionEpoch": _n(user.session_epoch),
        "EventSeq": _n(event_seq),
        "SchemaVersion": _n(SCHEMA_VERSION),
    }
    # The counters only while one counts: both absent read as 0 (here and in every earlier
    # reader), and 29 bytes less keeps more items within the 1 KB a write unit covers. Both or
    # neither: FailedGuesses alone absent would read as FailedLogins (item_to_user).
    if user.failed_logins or user.failed_guesses:
        item["FailedLogins"] = _n(user.failed_logins)
        item["FailedGuesses"] = _n(user.failed_guesses)
    if user.email_verified:
        item["EmailVerified"] = {"BOOL": True}
    if user.email_verified_at is not None:
        item["EmailVerifiedAt"] = _time(user.email_verified_at)
    if user.locked_until is not None:
        item["LockedUntil"] = _time(user.locked_until)
    if user.password_reset is not None:
        item["PasswordReset"] = _reset_to_map(user.password_reset)
    if user.pending_email_change is not None:
        item["PendingEmailChange"] = _pending_change_to_map(user.pending_email_change)
    if user.email_verification is not None:
        item["EmailVerification"] = _verification_to_map(user.email_verification)
    if user.totp is not None:
        item["Totp"] = _totp_to_map(user.totp)
    if user.pending_totp is not None:
        item["PendingTotp"] = _pending_totp_to_map(user.pending_totp)
    if user.recovery_code_hashes:
        # One binary value, 16 bytes a hash: 160 bytes for ten (a list of hex strings: 666).
        item["RecoveryCodes"] = {"B": b"".join(bytes.fromhex(h) for h in user.recovery_code_hashes)}
    if user.sign_in_challenges:
        item["SignInChallenges"] = {
            "L": [_challenge_to_map(challenge) for challenge in user.sign_in_challenges]
        }
    item.update(
        passkey_attributes(
            user.passkeys, user.passkey_registration, user.spent_sign_in_challenges, _time
        )
    )
    if user.security_mail_sent_at:
        item["SecurityMailSentAt"] = {"L": [_time(sent) for sent in user.security_mail_sent_at]}
    # No REFRESH_TOKEN_INDEX attribute: no request path reads that index, and writing its key
    # changed on every sign-in and refresh, a delete and an insert in the index each time
    # (persistence.schema). Left out, the index stays empty: sparse.
    return item


def item_to_user(item: Item) -> User:
    """The User an item stores, whatever schema version wrote it (upgraded on read);
    StorageError if it is not a user item this code understands."""
    try:
        item = upgrade_item(item)
        reset = item.get("PasswordReset")
        pending_change = item.get("PendingEmailChange")
        verification = item.get("EmailVerification")
        totp, pending_totp = item.get("Totp"), item.get("PendingTotp")
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
            session_epoch=int(item["SessionEpoch"]["N"]),
            password_reset=_map_to_reset(reset) if reset is not None else None,
            failed_logins=int(item.get("FailedLogins", _n(0))["N"]),
            # Absent on items written before waits stopped growing with refused attempts: then
            # every failure counted as a guess.
            failed_guesses=int(
                (item.get("FailedGuesses") or item.get("FailedLogins") or _n(0))["N"]
            ),
            locked_until=_optional_time(item, "LockedUntil"),
            # Absent until verified (and on every item written before verification existed).
            email_verified=bool(item.get("EmailVerified", {"BOOL": False})["BOOL"]),
            email_verified_at=_optional_time(item, "EmailVerifiedAt"),
            # Absent when no change is pending (and on every item from before changes existed).
            pending_email_change=(
                _map_to_pending_change(pending_change) if pending_change is not None else None
            ),
            email_verification=(
                _map_to_verification(verification) if verification is not None else None
            ),
            # Absent on items written before the limit existed, and when no mail went out lately.
            security_mail_sent_at=tuple(
                _parse_time(sent) for sent in item.get("SecurityMailSentAt", {"L": []})["L"]
            ),
            # Absent while the factor is off, none is pending, no codes remain (and on every
            # item written before second factors existed).
            totp=_map_to_totp(totp) if totp is not None else None,
            pending_totp=_map_to_pending_totp(pending_totp) if pending_totp is not None else None,
            recovery_code_hashes=_recovery_hashes(item.get("RecoveryCodes", {"B": b""})["B"]),
            # Absent when no sign-in waits on a second factor.
            sign_in_challenges=tuple(
                _map_to_challenge(entry) for entry in item.get("SignInChallenges", {"L": []})["L"]
            ),
            # Absent when the user has none (and on every item from before passkeys existed).
            passkeys=passkeys_of(item, _parse_time),
            passkey_registration=registration_of(item, _parse_time),
            spent_sign_in_challenges=spent_sign_ins_of(item, _parse_time),
        )
    except (KeyError, TypeError, ValueError) as error:
        item_id = item.get("Id", {}).get("S", "?")
        problem = type(error).__name__
        raise StorageError(f"stored user item {item_id} is malformed ({problem})") from error


def item_revision(item: Item) -> int:
    """The item's revision: the count of all its writes (items from before it existed: Version)."""
    return int(upgrade_item(item)["Revision"]["N"])


def item_event_seq(item: Item) -> int:
    """The sequence number of the last domain event recorded for the item's user (0: none)."""
    return int(upgrade_item(item)["EventSeq"]["N"])


def _reset_to_map(reset: PasswordReset) -> Item:
    return {
        "M": {
            "TokenHash": _s(reset.token_hash),
            "RequestedAt": _time(reset.requested_at),
            "ExpiresAt": _time(reset.expires_at),
        }
    }


def _map_to_reset(value: Item) -> PasswordReset:
    fields = value["M"]
    return PasswordReset(
        token_hash=fields["TokenHash"]["S"],
        requested_at=_parse_time(fields["RequestedAt"]),
        expires_at=_parse_time(fields["ExpiresAt"]),
    )


def _pending_change_to_map(pending: PendingEmailChange) -> Item:
    return {
        "M": {
            "NewEmail": _s(pending.new_email.value),
            "ConfirmTokenHash": _s(pending.confirm_token_hash),
            "CancelTokenHash": _s(pending.cancel_token_hash),
            "RequestedAt": _time(pending.requested_at),
            "ExpiresAt": _time(pending.expires_at),
        }
    }


def _verification_to_map(verification: EmailVerification) -> Item:
    return {
        "M": {
            "Email": _s(verification.email),
            "TokenHash": _s(verification.token_hash),
            "CodeHash": _s(verification.code_hash),
            "CodeSalt": _s(verification.code_salt),
            "RequestedAt": _time(verification.requested_at),
            "ExpiresAt": _time(verification.expires_at),
            "WrongCodes": _n(verification.wrong_codes),
        }
    }


def _map_to_pending_change(value: Item) -> PendingEmailChange:
    fields = value["M"]
    return PendingEmailChange(
        new_email=Email(fields["NewEmail"]["S"]),
        confirm_token_hash=fields["ConfirmTokenHash"]["S"],
        cancel_token_hash=fields["CancelTokenHash"]["S"],
        requested_at=_parse_time(fields["RequestedAt"]),
        expires_at=_parse_time(fields["ExpiresAt"]),
    )


def _map_to_verification(value: Item) -> EmailVerification:
    fields = value["M"]
    return EmailVerification(
        email=fields["Email"]["S"],
        token_hash=fields["TokenHash"]["S"],
        code_hash=fields["CodeHash"]["S"],
        code_salt=fields["CodeSalt"]["S"],
        requested_at=_parse_time(fields["RequestedAt"]),
        expires_at=_parse_time(fields["ExpiresAt"]),
        wrong_codes=int(fields["WrongCodes"]["N"]),
    )


def _challenge_to_map(challenge: SignInChallenge) -> Item:
    # Kept small (a user with TOTP is near 1 KB, where a write costs a second unit): the hash
    # as its 32 bytes, the expiry in epoch seconds (whole: see User.issue_sign_in_challenge), no
    # count while no wrong code was tried, an empty WebAuthn challenge for a user without passkeys
    # (kept as an empty value, which every earlier reader reads).
    fields: Item = {
        "TokenHash": {"B": bytes.fromhex(challenge.token_hash)},
        "ExpiresAt": _n(int(challenge.expires_at.timestamp())),
        "WebAuthn": {"B": challenge.webauthn_challenge},
    }
    if challenge.wrong_codes:
        fields["WrongCodes"] = _n(challenge.wrong_codes)
    return {"M": fields}


def _map_to_challenge(value: Item) -> SignInChallenge:
    fields = value["M"]
    return SignInChallenge(
        token_hash=bytes(fields["TokenHash"]["B"]).hex(),
        expires_at=datetime.fromtimestamp(int(fields["ExpiresAt"]["N"]), UTC),
        webauthn_challenge=bytes(fields["WebAuthn"]["B"]),
        wrong_codes=int(fields.get("WrongCodes", _n(0))["N"]),
    )


def _totp_to_map(factor: TotpFactor) -> Item:
    fields: Item = {
        "Secret": _s(factor.sealed_secret.value),
        "ConfirmedAt": _time(factor.confirmed_at),
    }
    if factor.last_used_step is not None:
        fields["LastStep"] = _n(factor.last_used_step)
    return {"M": fields}


def _map_to_totp(value: Item) -> TotpFactor:
    fields = value["M"]
    return TotpFactor(
        sealed_secret=SealedSecret(fields["Secret"]["S"]),
        confirmed_at=_parse_time(fields["ConfirmedAt"]),
        last_used_step=int(fields["LastStep"]["N"]) if "LastStep" in fields else None,
    )


def _recovery_hashes(packed: bytes) -> tuple[str, ...]:
    if len(packed) % RECOVERY_HASH_BYTES:
        raise ValueError("RecoveryCodes is not a whole number of hashes")
    return tuple(
        packed[i : i + RECOVERY_HASH_BYTES].hex()
        for i in range(0, len(packed), RECOVERY_HASH_BYTES)
    )


def _pending_totp_to_map(pending: PendingTotpEnrollment) -> Item:
    return {
        "M": {
            "Secret": _s(pending.sealed_secret.value),
            "BegunAt": _time(pending.begun_at),
            "ExpiresAt": _time(pending.expires_at),
        }
    }


def _map_to_pending_totp(value: Item) -> PendingTotpEnrollment:
    fields = value["M"]
    return PendingTotpEnrollment(
        sealed_secret=SealedSecret(fields["Secret"]["S"]),
        begun_at=_parse_time(fields["BegunAt"]),
        expires_at=_parse_time(fields["ExpiresAt"]),
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


def _optional_time(fields: Item, name: str) -> datetime | None:
    return _parse_time(fields[name]) if name in fields else None


# The time encoding, shared with the sessions' items (persistence.session_mapper).
time_value = _time
parse_time_value = _parse_time
optional_time_value = _optional_time
