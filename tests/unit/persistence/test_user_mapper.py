"""The user item: fields survive the round trip, GSI keys follow the aggregate, times are UTC."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from domain.errors import StorageError
from domain.second_factors import (
    PendingTotpEnrollment,
    SealedSecret,
    TotpFactor,
    issue_recovery_codes,
)
from domain.values import Email
from persistence.session_mapper import (
    item_embedded_sessions,
    item_to_session,
    session_to_embedded,
    session_to_item,
)
from persistence.user_mapper import item_to_user, user_to_item
from tests.builders import T0, new_user, password_reset, session, state_of
from tools.capacity.item_size import item_size

BASE_ATTRIBUTES = {
    "Id", "Email", "EmailIndex", "FirstName", "LastName", "PasswordHash", "Status",
    "Version", "Revision", "CreatedAt", "UpdatedAt", "SessionEpoch", "SchemaVersion",
    "EventSeq",
}  # fmt: skip


def test_a_user_with_a_session_epoch_a_reset_and_a_lock_out_survives_the_round_trip() -> None:
    user = new_user("Ada.Lovelace@Example.com")
    user.session_epoch = 3
    user.password_reset = password_reset("r")
    user.failed_logins = 7
    user.locked_until = T0 + timedelta(minutes=20)
    user.security_mail_sent_at = (T0, T0 + timedelta(minutes=5))

    restored = item_to_user(user_to_item(user, version=4, revision=4, event_seq=0))

    assert state_of(restored) == {**state_of(user), "version": 4}
    assert restored.email.normalized == "ada.lovelace@example.com"
    assert restored.session_epoch == 3


def test_a_pending_email_change_survives_the_round_trip_as_a_map_of_hashes() -> None:
    user = new_user("Ada@Example.com")
    user.request_email_change(Email.parse("Ada.New@Example.org"), T0, timedelta(hours=24))

    item = user_to_item(user, version=2, revision=3, event_seq=2)
    restored = item_to_user(item)

    assert state_of(restored) == {**state_of(user), "version": 2}
    pending = item["PendingEmailChange"]["M"]
    assert set(pending) == {
        "NewEmail", "ConfirmTokenHash", "CancelTokenHash", "RequestedAt", "ExpiresAt",
    }  # fmt: skip
    assert pending["NewEmail"] == {"S": "Ada.New@Example.org"}
    assert pending["ExpiresAt"] == {"S": "2026-11-27T09:30:15.123456+00:00"}
    assert len(pending["ConfirmTokenHash"]["S"]) == 64 != pending["CancelTokenHash"]
    assert item["SchemaVersion"] == {"N": "5"}


def test_an_item_without_a_pending_email_change_reads_as_none() -> None:
    user = new_user()
    item = user_to_item(user, version=1, revision=1, event_seq=0)
    assert "PendingEmailChange" not in item
    assert item_to_user(item).pending_email_change is None


def test_a_new_user_item_has_only_the_base_attributes_with_their_types() -> None:
    user = new_user("Grace@Example.com")

    item = user_to_item(user, version=1, revision=1, event_seq=0)

    assert set(item) == BASE_ATTRIBUTES
    assert item["Id"] == {"S": user.id.value}
    assert item["Email"] == {"S": "Grace@Example.com"}
    assert item["EmailIndex"] == {"S": "grace@example.com"}
    assert item["Status"] == {"S": "ACTIVE"}
    assert item["Version"] == {"N": "1"} and item["SchemaVersion"] == {"N": "5"}
    assert item["SessionEpoch"] == {"N": "0"}  # no sessions in the user item: their own table
    # No failure counters while none counts (29 bytes): absent reads as 0.
    assert item_to_user(item).failed_logins == 0 == item_to_user(item).failed_guesses


def test_the_failure_counters_are_written_together_so_neither_reads_as_the_other() -> None:
    user = new_user()
    user.failed_logins, user.failed_guesses = 2, 0  # refused attempts, no guess among them

    item = user_to_item(user, version=1, revision=1, event_seq=0)

    assert item["FailedLogins"] == {"N": "2"} and item["FailedGuesses"] == {"N": "0"}
    assert item_to_user(item).failed_guesses == 0


def test_a_verified_totp_user_with_a_pending_challenge_fits_one_write_unit() -> None:
    # DynamoDB bills a write per started KB (transactions twice): the item of a verified user
    # with TOTP, ten recovery codes, a sent notice and the challenge of a sign-in under way must
    # stay within 1,024 bytes, or every step of a TOTP sign-in costs double.
    user = new_user("capacity-1765079000-12@bench.example.com")
    user.password_hash = "$argon2id$v=19$m=19456,t=2,p=1$" + "s" * 22 + "$" + "h" * 43
    user.email_verified, user.email_verified_at = True, T0
    user.totp = TotpFactor(
        SealedSecret("2026-12:" + "x" * 64), confirmed_at=T0, last_used_step=59_000_000
    )
    user.recovery_code_hashes = issue_recovery_codes(user.id.value).hashes
    user.security_mail_sent_at = (T0, T0 + timedelta(minutes=1))
    user.issue_sign_in_challenge(T0, timedelta(minutes=5))

    size = item_size(user_to_item(user, version=9, revision=12, event_seq=11))

    assert size <= 1024, size


def test_the_refresh_token_index_key_is_never_written_so_that_index_stays_empty() -> None:
    # Its key changed on every sign-in and refresh (an index delete and insert) for an index
    # no request path reads (persistence.schema).
    user = new_user()
    assert "RefreshTokenIndex" not in user_to_item(user, version=1, revision=1, event_seq=0)


def test_a_session_item_stores_its_previous_and_retired_hashes_only_once_rotated() -> None:
    user = new_user()
    idle = timedelta(days=7)

    fresh = session_to_item(user.id.value, session("fresh"), idle_lifetime=idle)
    rotated = session_to_item(
        user.id.value, replace(session("rotated", previous="older"), epoch=12), idle_lifetime=idle
    )

    assert set(fresh) == {
        "UserId", "SessionKey", "SessionId", "TokenHash", "CreatedAt", "ExpiresAt", "LastUsedAt",
        "Amr", "ExpireAt",
    }  # fmt: skip
    assert fresh["SessionKey"] == {"S": "0000000000#session-fresh"}
    assert fresh["ExpireAt"] == {"N": str(int((T0 + idle).timestamp()))}
    assert rotated["SessionKey"] == {"S": "0000000012#session-rotated"}
    assert rotated["PreviousTokenHash"] == {"S": "older"}
    assert rotated["RotatedAt"] == {"S": "2026-11-26T09:30:16.123456+00:00"}
    assert rotated["RetiredTokenHashes"] == {"L": [{"S": "r1rotated"}, {"S": "r2rotated"}]}
    assert item_to_session(rotated) == replace(session("rotated", previous="older"), epoch=12)


def test_the_sessions_a_version_2_item_holds_read_as_sessions_of_epoch_0() -> None:
    user = new_user()
    held = (session("a"), session("b", minutes=3, previous="a-before"))
    item = user_to_item(user, version=1, revision=1, event_seq=0)
    item["SchemaVersion"] = {"N": "2"}
    del item["SessionEpoch"]
    item["Sessions"] = {"L": [session_to_embedded(s) for s in held]}

    assert item_to_user(item).session_epoch == 0
    assert item_embedded_sessions(item) == list(held)
    assert item_embedded_sessions(user_to_item(user, version=1, revision=1, event_seq=0)) == []


def test_lock_out_times_are_stored_only_while_set() -> None:
    user = new_user()
    user.failed_logins, user.failed_guesses = 9, 6
    user.locked_until = T0 + timedelta(minutes=15)

    item = user_to_item(user, version=1, revision=1, event_seq=0)

    assert item["FailedLogins"] == {"N": "9"}
    assert item["FailedGuesses"] == {"N": "6"}
    assert item_to_user(item).failed_guesses == 6
    assert item["LockedUntil"] == {"S": "2026-11-26T09:45:15.123456+00:00"}
    assert "FailuresStartedAt" not in item  # the flat lock's window: no longer written
    user.record_successful_login()
    assert set(user_to_item(user, version=1, revision=1, event_seq=0)) == BASE_ATTRIBUTES


def test_an_item_from_the_flat_lock_reads_its_count_and_lock_and_drops_the_window() -> None:
    user = new_user()
    item = user_to_item(user, version=1, revision=1, event_seq=0)
    item |= {
        "FailedLogins": {"N": "3"},
        "FailuresStartedAt": {"S": "2026-11-26T09:30:15.123456+00:00"},
        "LockedUntil": {"S": "2026-11-26T09:45:15.123456+00:00"},
    }  # and no FailedGuesses: written before it existed

    restored = item_to_user(item)

    assert restored.failed_logins == 3
    assert restored.failed_guesses == 3  # no FailedGuesses yet: every failure was a guess
    assert restored.locked_until == T0 + timedelta(minutes=15)
    rewritten = user_to_item(restored, version=1, revision=2, event_seq=0)
    assert "FailuresStartedAt" not in rewritten


def test_a_password_reset_is_stored_as_a_map_and_absent_when_none() -> None:
    user = new_user()
    user.password_reset = password_reset("reset-hash")

    item = user_to_item(user, version=1, revision=1, event_seq=0)

    assert item["PasswordReset"]["M"]["TokenHash"] == {"S": "reset-hash"}
    assert "UsedAt" not in item["PasswordReset"]["M"]


def test_security_mail_times_are_stored_as_a_list_and_absent_when_none() -> None:
    user = new_user()
    user.security_mail_sent_at = (T0, T0 + timedelta(minutes=2))

    item = user_to_item(user, version=1, revision=1, event_seq=0)

    assert item["SecurityMailSentAt"] == {
        "L": [{"S": "2026-11-26T09:30:15.123456+00:00"}, {"S": "2026-11-26T09:32:15.123456+00:00"}]
    }
    assert item_to_user(item).security_mail_sent_at == user.security_mail_sent_at
    user.security_mail_sent_at = ()
    assert set(user_to_item(user, version=1, revision=1, event_seq=0)) == BASE_ATTRIBUTES


def test_an_item_stored_before_the_security_mail_limit_reads_as_never_mailed() -> None:
    item = user_to_item(new_user(), version=1, revision=1, event_seq=0)
    assert "SecurityMailSentAt" not in item

    assert item_to_user(item).security_mail_sent_at == ()


def test_times_are_stored_as_iso_8601_utc_with_microseconds() -> None:
    user = new_user()
    user.updated_at = T0.astimezone(timezone(timedelta(hours=2)))

    item = user_to_item(user, version=1, revision=1, event_seq=0)

    assert item["CreatedAt"] == {"S": "2026-11-26T09:30:15.123456+00:00"}
    assert item["UpdatedAt"] == {"S": "2026-11-26T09:30:15.123456+00:00"}
    assert item_to_user(item).updated_at.utcoffset() == timedelta(0)


def test_a_naive_time_is_refused() -> None:
    user = new_user()
    user.updated_at = datetime(2026, 1, 1)

    with pytest.raises(ValueError, match="naive"):
        user_to_item(user, version=1, revision=1, event_seq=0)


def test_a_malformed_item_is_a_storage_error_keeping_the_cause() -> None:
    item = user_to_item(new_user(), version=1, revision=1, event_seq=0)
    del item["PasswordHash"]

    with pytest.raises(StorageError) as error:
        item_to_user(item)

    assert isinstance(error.value.__cause__, KeyError)


def test_an_item_of_a_newer_schema_version_is_a_storage_error() -> None:
    item = {
        **user_to_item(new_user(), version=1, revision=1, event_seq=0),
        "SchemaVersion": {"N": "6"},
    }

    with pytest.raises(StorageError):
        item_to_user(item)


def test_a_verified_address_survives_the_round_trip_and_an_older_item_reads_unverified() -> None:
    user = new_user()
    verified_at = user.created_at + timedelta(hours=1)
    user.mark_email_verified(verified_at)
    item = user_to_item(user, version=2, revision=2, event_seq=2)
    restored = item_to_user(item)
    assert (restored.email_verified, restored.email_verified_at) == (True, verified_at)
    older = {k: v for k, v in item.items() if k not in ("EmailVerified", "EmailVerifiedAt")}
    older["SchemaVersion"] = {"N": "3"}
    assert (item_to_user(older).email_verified, item_to_user(older).email_verified_at) == (
        False,
        None,
    )


def test_a_pending_verification_is_stored_as_a_map_of_hashes_and_survives_the_round_trip() -> None:
    user = new_user("Ada.Lovelace@Example.com")
    token, code = user.request_email_verification(T0, timedelta(hours=24))
    user.verify_email(f"{(int(code.value) + 1) % 10**6:06d}", T0, 5)  # one wrong code

    item = user_to_item(user, version=1, revision=3, event_seq=2)

    stored = item["EmailVerification"]["M"]
    assert set(stored) == {
        "Email", "TokenHash", "CodeHash", "CodeSalt", "RequestedAt", "ExpiresAt", "WrongCodes",
    }  # fmt: skip
    assert stored["Email"] == {"S": "ada.lovelace@example.com"}
    assert stored["WrongCodes"] == {"N": "1"}
    assert token.value not in str(item) and code.value not in str(stored)
    restored = item_to_user(item)
    assert restored.email_verification == user.email_verification
    assert state_of(restored) == {**state_of(user), "version": 1}
    assert restored.verify_email(code.value, T0, 5)


def test_no_pending_verification_leaves_the_attribute_out_also_on_older_items() -> None:
    user = new_user()
    item = user_to_item(user, version=1, revision=1, event_seq=1)
    assert "EmailVerification" not in item
    assert item_to_user({**item, "SchemaVersion": {"N": "3"}}).email_verification is None


def test_second_factors_survive_the_round_trip_sealed_and_hashed() -> None:
    user = new_user()
    user.totp = TotpFactor(SealedSecret("k1:c2VhbGVk"), confirmed_at=T0, last_used_step=59_000_000)
    user.pending_totp = PendingTotpEnrollment(
        SealedSecret("k2:b3RoZXI"), begun_at=T0, expires_at=T0 + timedelta(minutes=15)
    )
    user.recovery_code_hashes = issue_recovery_codes(user.id.value).hashes

    item = user_to_item(user, version=2, revision=3, event_seq=2)
    restored = item_to_user(item)

    assert state_of(restored) == {**state_of(user), "version": 2}
    assert item["Totp"] == {
        "M": {
            "Secret": {"S": "k1:c2VhbGVk"},
            "ConfirmedAt": {"S": "2026-11-26T09:30:15.123456+00:00"},
            "LastStep": {"N": "59000000"},
        }
    }
    assert set(item["PendingTotp"]["M"]) == {"Secret", "BegunAt", "ExpiresAt"}
    assert item["RecoveryCodes"]["B"] == bytes.fromhex("".join(user.recovery_code_hashes))
    assert len(item["RecoveryCodes"]["B"]) == 160  # ten 16-byte hashes


def test_a_confirmed_totp_without_a_used_step_has_no_last_step_and_none_reads_as_off() -> None:
    user = new_user()
    user.totp = TotpFactor(SealedSecret("k1:x"), confirmed_at=T0)
    item = user_to_item(user, version=1, revision=1, event_seq=0)

    assert "LastStep" not in item["Totp"]["M"]
    assert item_to_user(item).totp == user.totp
    bare = user_to_item(new_user(), version=1, revision=1, event_seq=0)
    assert not {"Totp", "PendingTotp", "RecoveryCodes"} & set(bare)
    assert item_to_user(bare).second_factor_kinds() == frozenset()


def test_totp_and_ten_recovery_codes_grow_the_item_by_under_400_bytes() -> None:
    # DynamoDB bills a write per started KB: a verified user's item (about 560 bytes) with TOTP on
    # stays under 1 KB. (Sizes as tools.capacity counts them, DynamoDB's own rules.)
    user = new_user()
    before = item_size(user_to_item(user, version=1, revision=1, event_seq=1))
    user.totp = TotpFactor(
        SealedSecret("2026-12:" + "x" * 64), confirmed_at=T0, last_used_step=59_000_000
    )
    user.recovery_code_hashes = issue_recovery_codes(user.id.value).hashes

    grown = item_size(user_to_item(user, version=1, revision=1, event_seq=1)) - before

    assert grown < 400, grown  # 314 with this key id


def test_a_recovery_codes_value_that_is_not_whole_hashes_is_a_storage_error() -> None:
    item = user_to_item(new_user(), version=1, revision=1, event_seq=0)
    item["RecoveryCodes"] = {"B": b"\x00" * 12}
    with pytest.raises(StorageError):
        item_to_user(item)
