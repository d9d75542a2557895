"""Changing a password with the current one, and resetting it with a mailed single-use token;
the events each records (never a password, a token or a hash)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.errors import (
    AuthenticationFailed,
    InvalidArgument,
    InvalidRefreshToken,
    InvalidResetToken,
)
from domain.events import (
    AccountLocked,
    PasswordChanged,
    PasswordChangeReason,
    PasswordResetRequested,
    SessionEndReason,
    SessionsRevoked,
    SessionStarted,
    UserDisabled,
    UserEnabled,
)
from domain.secret_tokens import issue_token, parse_token
from domain.use_cases import accounts
from domain.use_cases.passwords import change_password, request_password_reset, reset_password
from domain.user import User
from domain.values import UserId
from tests.unit.domain.use_cases.auth_kit import EMAIL, PASSWORD, WRONG_PASSWORD, AuthKit, fake_hash

NEW_PASSWORD = "Otter-Lantern-97"


@pytest.fixture
def kit() -> AuthKit:
    return AuthKit()


def fields_of(error: pytest.ExceptionInfo[InvalidArgument]) -> set[str]:
    return {violation.field for violation in error.value.violations}


async def change(
    kit: AuthKit,
    user: User,
    *,
    current: str = PASSWORD,
    new: str = NEW_PASSWORD,
    keep_session_id: str = "",
) -> None:
    await change_password(
        kit.uow(),
        kit.hasher,
        kit.clock,
        kit.policy,
        kit.notices,
        user_id=user.id.value,
        current_password=current,
        new_password=new,
        keep_session_id=keep_session_id,
    )


async def request_reset(kit: AuthKit, email: str = EMAIL) -> None:
    await request_password_reset(
        kit.uow(), kit.notifier, kit.clock, kit.policy, kit.after_reply, email=email
    )
    await kit.after_reply.run_all()


async def reset(kit: AuthKit, token: str, new: str = NEW_PASSWORD) -> None:
    await reset_password(
        kit.uow(),
        kit.hasher,
        kit.clock,
        kit.policy.sessions,
        reset_token=token,
        new_password=new,
    )


def mailed_token(kit: AuthKit) -> str:
    return kit.notifier.sent[-1].token


# --- change_password ---------------------------------------------------------------------------


async def test_change_password_replaces_the_hash_and_ends_every_other_session(kit: AuthKit) -> None:
    user = await kit.add_user()
    here, elsewhere = await kit.sign_in(), await kit.sign_in()
    kit.new_events(user)
    kit.later(minutes=1)

    await change(kit, user, keep_session_id=here.session_id)

    now, uid = kit.clock.now, user.id.value
    assert kit.new_events(user) == [
        PasswordChanged(uid, now, PasswordChangeReason.CHANGED),
        SessionsRevoked(
            uid, now, SessionEndReason.PASSWORD_CHANGED, 1, kept_session_id=here.session_id
        ),
    ]
    stored = kit.stored(user)
    assert stored.password_hash == fake_hash(NEW_PASSWORD)
    assert [s.session_id for s in kit.sessions(user)] == [here.session_id]
    assert kit.sessions(user)[0].epoch == stored.session_epoch == 1
    assert await kit.refresh(here.refresh_token)
    with pytest.raises(InvalidRefreshToken):
        await kit.refresh(elsewhere.refresh_token)
    assert await kit.sign_in(password=NEW_PASSWORD)
    with pytest.raises(AuthenticationFailed):
        await kit.sign_in(password=PASSWORD)


async def test_change_password_without_a_session_to_keep_ends_them_all(kit: AuthKit) -> None:
    user = await kit.add_user()
    signed_in = await kit.sign_in()
    kit.new_events(user)

    await change(kit, user)

    with pytest.raises(InvalidRefreshToken):
        await kit.refresh(signed_in.refresh_token)
    assert kit.sessions(user) == ()
    now, uid = kit.clock.now, user.id.value
    assert kit.new_events(user) == [
        PasswordChanged(uid, now, PasswordChangeReason.CHANGED),
        SessionsRevoked(uid, now, SessionEndReason.PASSWORD_CHANGED, 1),
    ]


async def test_change_password_with_a_wrong_current_one_fails_and_counts(kit: AuthKit) -> None:
    user = await kit.add_user()

    with pytest.raises(AuthenticationFailed, match="current password is incorrect"):
        await change(kit, user, current=WRONG_PASSWORD)

    stored = kit.stored(user)
    assert stored.password_hash == fake_hash(PASSWORD)
    assert stored.failed_logins == 1
    assert kit.new_events(user) == []


async def test_change_password_checks_the_current_password_before_the_new_one(
    kit: AuthKit,
) -> None:
    user = await kit.add_user()

    with pytest.raises(AuthenticationFailed, match="current password is incorrect"):
        await change(kit, user, current=WRONG_PASSWORD, new="password1")  # common, and short:
    with pytest.raises(AuthenticationFailed, match="current password is incorrect"):
        await change(kit, user, current=WRONG_PASSWORD, new="short")  # neither is said

    assert kit.stored(user).failed_logins == 2


async def test_change_password_shares_the_sign_in_lock_out_without_an_oracle(
    kit: AuthKit,
) -> None:
    user = await kit.add_user()
    for _ in range(4):
        with pytest.raises(AuthenticationFailed):
            await kit.sign_in(password=WRONG_PASSWORD)
    with pytest.raises(AuthenticationFailed) as fifth:
        await change(kit, user, current=WRONG_PASSWORD)  # the 5th failure, whichever RPC
    await kit.after_reply.run_all()
    assert len(kit.notifier.lock_notices) == 1

    with pytest.raises(AuthenticationFailed) as right:
        await change(kit, user, current=PASSWORD)  # during the delay: as wrong as any

    assert str(right.value) == str(fifth.value)
    stored = kit.stored(user)
    assert stored.password_hash == fake_hash(PASSWORD) and stored.failed_logins == 6
    kit.later(seconds=2)
    await change(kit, user)
    stored = kit.stored(user)
    assert stored.password_hash == fake_hash(NEW_PASSWORD)
    assert (stored.failed_logins, stored.locked_until) == (0, None)


@pytest.mark.parametrize("new", ["password1", "ADA.LOVELACE@example.com", "ada.lovelace", "short"])
async def test_change_password_refuses_a_common_password_or_the_email(
    kit: AuthKit, new: str
) -> None:
    user = await kit.add_user()
    commits = kit.store.commits

    with pytest.raises(InvalidArgument) as error:
        await change(kit, user, new=new)

    assert fields_of(error) == {"new_password"}
    assert kit.store.commits == commits
    assert kit.stored(user).password_hash == fake_hash(PASSWORD)
    assert kit.new_events(user) == []


async def test_change_password_clears_a_pending_reset(kit: AuthKit) -> None:
    user = await kit.add_user()
    await request_reset(kit)

    await change(kit, user)

    with pytest.raises(InvalidResetToken):
        await reset(kit, mailed_token(kit), "Heron-Basket-31")


# --- request_password_reset --------------------------------------------------------------------


async def test_a_reset_request_mails_one_single_use_token_to_an_active_account(
    kit: AuthKit,
) -> None:
    user = await kit.add_user()

    await request_reset(kit, " ADA.Lovelace@example.com")

    (mail,) = kit.notifier.sent
    assert mail.to == EMAIL
    assert mail.name == user.first_name.value  # the greeting's, and nothing else they chose
    assert mail.expires_at == kit.clock.now + kit.policy.password_reset_lifetime
    lookup = parse_token(mail.token)
    assert lookup.user_id == user.id
    pending = kit.stored(user).password_reset
    assert pending is not None and pending.token_hash == lookup.token_hash
    assert mail.token not in repr(mail)
    events = kit.new_events(user)
    assert events == [PasswordResetRequested(user.id.value, kit.clock.now, mail.expires_at)]
    assert mail.token not in repr(events) and lookup.token_hash not in repr(events)


async def test_a_reset_request_for_an_unknown_email_sends_and_writes_nothing(kit: AuthKit) -> None:
    await kit.add_user()
    commits = kit.store.commits

    await request_reset(kit, "nobody@example.com")

    assert kit.notifier.sent == []
    assert kit.store.commits == commits
    assert sum(len(events) for events in kit.store.events.values()) == 1  # the registration


async def test_a_reset_request_for_a_disabled_account_sends_and_writes_nothing(
    kit: AuthKit,
) -> None:
    user = await kit.add_user()
    await accounts.disable_user(kit.uow(), kit.clock, kit.policy.sessions, user_id=user.id.value)
    commits = kit.store.commits
    kit.new_events(user)

    await request_reset(kit)

    assert kit.notifier.sent == []
    assert kit.store.commits == commits
    assert kit.stored(user).password_reset is None
    assert kit.new_events(user) == []


async def test_a_reset_request_with_a_malformed_email_is_an_invalid_argument(kit: AuthKit) -> None:
    with pytest.raises(InvalidArgument) as error:
        await request_reset(kit, "nope")
    assert fields_of(error) == {"email"}


async def test_a_newer_reset_request_supersedes_the_older_token(kit: AuthKit) -> None:
    user = await kit.add_user()
    await request_reset(kit)
    older = mailed_token(kit)
    kit.later(minutes=1)
    await request_reset(kit)
    newer = mailed_token(kit)

    with pytest.raises(InvalidResetToken):
        await reset(kit, older)
    await reset(kit, newer)

    assert kit.stored(user).password_hash == fake_hash(NEW_PASSWORD)


async def test_a_repeated_request_within_the_cool_down_neither_mails_nor_replaces_the_token(
    kit: AuthKit,
) -> None:
    user = await kit.add_user()
    await request_reset(kit)
    first = mailed_token(kit)
    kit.new_events(user)
    commits = kit.store.commits

    kit.later(seconds=59)
    await request_reset(kit)

    assert len(kit.notifier.sent) == 1
    assert kit.store.commits == commits
    assert kit.new_events(user) == []
    await reset(kit, first)  # the link already sent still works
    assert kit.stored(user).password_hash == fake_hash(NEW_PASSWORD)


async def test_reset_mail_stops_at_the_hourly_maximum_and_resumes_an_hour_later(
    kit: AuthKit,
) -> None:
    await kit.add_user()
    for _ in range(7):
        await request_reset(kit)
        kit.later(minutes=2)
    assert len(kit.notifier.sent) == kit.policy.security_mail.max_per_window == 5
    stuck = mailed_token(kit)

    kit.later(minutes=60)
    await request_reset(kit)

    assert len(kit.notifier.sent) == 6
    assert mailed_token(kit) != stuck


async def test_a_reset_mail_is_recorded_on_the_user_in_the_same_write_as_its_token(
    kit: AuthKit,
) -> None:
    user = await kit.add_user()

    await request_reset(kit)

    stored = kit.stored(user)
    assert stored.security_mail_sent_at == (kit.clock.now,)
    assert stored.password_reset is not None and stored.password_reset.requested_at == kit.clock.now


# --- reset_password ----------------------------------------------------------------------------


async def test_a_reset_sets_the_password_ends_every_session_and_lifts_the_lock(
    kit: AuthKit,
) -> None:
    user = await kit.add_user()
    signed_in = await kit.sign_in()
    for _ in range(5):
        with pytest.raises(AuthenticationFailed):
            await kit.sign_in(password=WRONG_PASSWORD)
    assert kit.stored(user).locked_until is not None
    await request_reset(kit)  # within the lock notice's mail cool-down: no second mail
    await kit.after_reply.run_all()
    assert kit.notifier.sent == [] and len(kit.notifier.lock_notices) == 1

    kit.later(minutes=1)
    await reset(kit, kit.notifier.lock_notices[0].token)

    stored = kit.stored(user)
    assert stored.password_hash == fake_hash(NEW_PASSWORD)
    assert kit.sessions(user) == () and stored.password_reset is None
    assert (stored.failed_logins, stored.locked_until) == (0, None)
    t0, now, uid = kit.clock.now - timedelta(minutes=1), kit.clock.now, user.id.value
    lifetime, lock = kit.policy.password_reset_lifetime, timedelta(seconds=1)
    assert kit.new_events(user) == [
        SessionStarted(uid, t0, signed_in.session_id),
        AccountLocked(uid, t0, locked_until=t0 + lock),
        PasswordResetRequested(uid, t0, expires_at=t0 + lifetime),  # with the lock notice
        PasswordChanged(uid, now, PasswordChangeReason.RESET),
        SessionsRevoked(uid, now, SessionEndReason.PASSWORD_RESET, 1),
    ]
    with pytest.raises(InvalidRefreshToken):
        await kit.refresh(signed_in.refresh_token)
    assert await kit.sign_in(password=NEW_PASSWORD)


async def test_a_reset_token_works_only_once(kit: AuthKit) -> None:
    user = await kit.add_user()
    await request_reset(kit)
    token = mailed_token(kit)
    await reset(kit, token)
    kit.new_events(user)

    with pytest.raises(InvalidResetToken):
        await reset(kit, token, "Heron-Basket-31")

    assert kit.stored(user).password_hash == fake_hash(NEW_PASSWORD)
    assert kit.new_events(user) == []


async def test_a_reset_token_expires_after_an_hour(kit: AuthKit) -> None:
    user = await kit.add_user()
    await request_reset(kit)
    kit.later(hours=1)

    with pytest.raises(InvalidResetToken):
        await reset(kit, mailed_token(kit))

    assert kit.stored(user).password_hash == fake_hash(PASSWORD)


async def test_a_reset_token_is_usable_until_just_before_the_hour(kit: AuthKit) -> None:
    user = await kit.add_user()
    await request_reset(kit)
    kit.later(minutes=59, seconds=59)

    await reset(kit, mailed_token(kit))

    assert kit.stored(user).password_hash == fake_hash(NEW_PASSWORD)


@pytest.mark.parametrize("token", ["garbage", "not-a-uuid.secret", "3f2b8a3e-1c4d.x"])
async def test_a_malformed_reset_token_is_an_invalid_reset_token(kit: AuthKit, token: str) -> None:
    with pytest.raises(InvalidResetToken):
        await reset(kit, token)


async def test_a_well_formed_but_unknown_reset_token_is_refused(kit: AuthKit) -> None:
    user = await kit.add_user()
    await request_reset(kit)
    for token in (issue_token(user.id).value, issue_token(UserId.new()).value):
        with pytest.raises(InvalidResetToken):
            await reset(kit, token)


async def test_an_empty_reset_token_is_an_invalid_argument(kit: AuthKit) -> None:
    with pytest.raises(InvalidArgument) as error:
        await reset(kit, " ", "short")
    assert fields_of(error) == {"reset_token", "new_password"}


async def test_a_reset_refuses_a_common_password_and_keeps_the_token_usable(kit: AuthKit) -> None:
    user = await kit.add_user()
    await request_reset(kit)
    commits = kit.store.commits

    with pytest.raises(InvalidArgument) as error:
        await reset(kit, mailed_token(kit), "password1")

    assert fields_of(error) == {"new_password"}
    assert kit.store.commits == commits
    await reset(kit, mailed_token(kit))
    assert kit.stored(user).password_hash == fake_hash(NEW_PASSWORD)


async def test_disabling_an_account_voids_its_pending_reset(kit: AuthKit) -> None:
    user = await kit.add_user()
    await request_reset(kit)
    token = mailed_token(kit)
    kit.new_events(user)

    await accounts.disable_user(kit.uow(), kit.clock, kit.policy.sessions, user_id=user.id.value)
    await accounts.enable_user(kit.uow(), kit.clock, user_id=user.id.value)

    now, uid = kit.clock.now, user.id.value
    assert kit.new_events(user) == [UserDisabled(uid, now), UserEnabled(uid, now)]

    with pytest.raises(InvalidResetToken):
        await reset(kit, token)
    assert kit.stored(user).password_hash == fake_hash(PASSWORD)


async def test_a_reset_request_replies_before_looking_anything_up(kit: AuthKit) -> None:
    await kit.add_user()
    commits = kit.store.commits

    await request_password_reset(
        kit.uow(), kit.notifier, kit.clock, kit.policy, kit.after_reply, email=EMAIL
    )

    assert kit.notifier.sent == [] and kit.store.commits == commits
    await kit.after_reply.run_all()
    assert len(kit.notifier.sent) == 1
