"""Email change use cases over the in-memory fakes: the request and its two mails, confirm, cancel,
the administrator's change, and every refusal changing nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from domain.errors import (
    AccountDisabled,
    EmailAlreadyRegistered,
    InvalidArgument,
    InvalidEmailChangeToken,
    SecurityMailLimited,
    StaleVersion,
    UserNotFound,
)
from domain.events import EmailChangeCancelled, EmailChanged, EmailChangeRequested, EmailVerified
from domain.secret_tokens import hash_token, issue_token
from domain.use_cases import email_change
from domain.use_cases.passwords import request_password_reset
from domain.user import User, UserStatus
from domain.values import UserId
from tests.builders import T0, state_of
from tests.unit.domain.use_cases.auth_kit import EMAIL, AuthKit

NEW_EMAIL = "Ada.New@Example.org"


@pytest.fixture
def kit() -> AuthKit:
    return AuthKit()


async def request(
    kit: AuthKit, user: User, new_email: str = NEW_EMAIL, *, version: int = 1
) -> None:
    await email_change.request_email_change(
        kit.uow(),
        kit.notifier,
        kit.clock,
        kit.policy,
        kit.after_reply,
        user_id=user.id.value,
        new_email=new_email,
        expected_version=version,
    )


async def requested(kit: AuthKit, user: User, new_email: str = NEW_EMAIL) -> tuple[str, str]:
    """Request a change and deliver its mail: (the confirm token, the cancel token)."""
    await request(kit, user, new_email)
    await kit.after_reply.run_all()
    return kit.notifier.email_changes[-1].token, kit.notifier.email_change_notices[-1].cancel_token


def fields_of(error: pytest.ExceptionInfo[InvalidArgument]) -> set[str]:
    return {violation.field for violation in error.value.violations}


async def test_a_request_mails_the_new_address_a_confirm_link_and_the_old_one_a_notice(
    kit: AuthKit,
) -> None:
    user = await kit.add_user()

    expires_at = await email_change.request_email_change(
        kit.uow(),
        kit.notifier,
        kit.clock,
        kit.policy,
        kit.after_reply,
        user_id=user.id.value,
        new_email=f"  {NEW_EMAIL} ",
        expected_version=1,
    )

    assert expires_at == T0 + timedelta(hours=24)
    assert kit.notifier.email_changes == []  # only after the reply
    await kit.after_reply.run_all()
    [to_new] = kit.notifier.email_changes
    [to_old] = kit.notifier.email_change_notices
    assert (to_new.to, to_new.name, to_new.expires_at) == (NEW_EMAIL, "Ada", expires_at)
    assert (to_old.to, to_old.name) == (EMAIL, "Ada")
    stored = kit.stored(user)
    pending = stored.pending_email_change
    assert pending is not None
    assert pending.confirm_token_hash == hash_token(to_new.token)
    assert pending.cancel_token_hash == hash_token(to_old.cancel_token)
    assert stored.email.value == EMAIL and stored.version == 1  # nothing callers see moved
    assert stored.security_mail_sent_at == (T0,)
    assert kit.new_events(user) == [
        EmailChangeRequested(user.id.value, T0, new_email=NEW_EMAIL, expires_at=expires_at)
    ]


async def test_confirming_moves_the_account_and_frees_the_old_address(kit: AuthKit) -> None:
    user = await kit.add_user()
    confirm, _ = await requested(kit, user)
    kit.new_events(user)
    kit.later(hours=1)

    moved = await email_change.confirm_email_change(kit.uow(), kit.clock, token=confirm)

    assert (moved.email.value, moved.email_verified, moved.version) == (NEW_EMAIL, True, 2)
    assert kit.store.emails == {"ada.new@example.org": user.id.value}
    assert [type(event) for event in kit.new_events(user)] == [EmailChanged, EmailVerified]
    with pytest.raises(InvalidEmailChangeToken):  # used
        await email_change.confirm_email_change(kit.uow(), kit.clock, token=confirm)


async def test_confirming_voids_the_reset_link_mailed_to_the_old_address(kit: AuthKit) -> None:
    user = await kit.add_user()
    await request_password_reset(
        kit.uow(), kit.notifier, kit.clock, kit.policy, kit.after_reply, email=EMAIL
    )
    await kit.after_reply.run_all()
    assert kit.stored(user).password_reset is not None
    kit.later(minutes=2)  # past the security mail cool-down
    confirm, _ = await requested(kit, user)

    await email_change.confirm_email_change(kit.uow(), kit.clock, token=confirm)

    assert kit.stored(user).password_reset is None


async def test_cancelling_keeps_the_address_and_voids_the_confirm_link(kit: AuthKit) -> None:
    user = await kit.add_user()
    confirm, cancel = await requested(kit, user)
    kit.new_events(user)

    await email_change.cancel_email_change(kit.uow(), kit.clock, token=cancel)

    assert kit.stored(user).pending_email_change is None
    assert kit.new_events(user) == [EmailChangeCancelled(user.id.value, T0, new_email=NEW_EMAIL)]
    for token in (confirm, cancel):
        with pytest.raises(InvalidEmailChangeToken):
            await email_change.confirm_email_change(kit.uow(), kit.clock, token=token)
        with pytest.raises(InvalidEmailChangeToken):
            await email_change.cancel_email_change(kit.uow(), kit.clock, token=token)
    assert kit.stored(user).email.value == EMAIL


async def test_confirming_an_address_taken_since_the_request_changes_nothing(
    kit: AuthKit,
) -> None:
    user = await kit.add_user()
    confirm, cancel = await requested(kit, user)
    await kit.add_user(NEW_EMAIL.upper())
    before, commits = state_of(kit.stored(user)), kit.store.commits

    with pytest.raises(EmailAlreadyRegistered):
        await email_change.confirm_email_change(kit.uow(), kit.clock, token=confirm)

    assert state_of(kit.stored(user)) == before and kit.store.commits == commits
    await email_change.cancel_email_change(kit.uow(), kit.clock, token=cancel)  # still pending


async def test_two_users_confirming_the_same_address_at_once_one_wins(kit: AuthKit) -> None:
    first, second = await kit.add_user(), await kit.add_user("grace@example.com")
    tokens = [(await requested(kit, user))[0] for user in (first, second)]

    results = await asyncio.gather(
        *(email_change.confirm_email_change(kit.uow(), kit.clock, token=t) for t in tokens),
        return_exceptions=True,
    )

    [winner] = [result for result in results if isinstance(result, User)]
    [loser_error] = [result for result in results if not isinstance(result, User)]
    assert isinstance(loser_error, EmailAlreadyRegistered)
    loser = second if winner.id == first.id else first
    assert kit.stored(winner).email.value == NEW_EMAIL
    assert kit.stored(loser).email == loser.email  # unchanged, its change still pending
    assert kit.stored(loser).pending_email_change is not None
    assert kit.store.emails == {
        "ada.new@example.org": winner.id.value,
        loser.email.normalized: loser.id.value,
    }


@pytest.mark.parametrize(
    "new_email",
    ["ada.lovelace@example.com", "ADA.LOVELACE@EXAMPLE.COM", "  Ada.Lovelace@example.com"],
)
async def test_asking_for_the_address_in_use_is_invalid_and_changes_nothing(
    kit: AuthKit, new_email: str
) -> None:
    user = await kit.add_user()
    with pytest.raises(InvalidArgument) as error:
        await request(kit, user, new_email)
    assert fields_of(error) == {"new_email"}
    assert kit.stored(user).pending_email_change is None and kit.new_events(user) == []


async def test_malformed_input_names_every_field(kit: AuthKit) -> None:
    with pytest.raises(InvalidArgument) as error:
        await email_change.request_email_change(
            kit.uow(),
            kit.notifier,
            kit.clock,
            kit.policy,
            kit.after_reply,
            user_id="nope",
            new_email="no at sign",
            expected_version=0,
        )
    assert fields_of(error) == {"id", "new_email", "expected_version"}
    with pytest.raises(InvalidArgument) as error:
        await email_change.change_email(
            kit.uow(), kit.clock, user_id="", email="", expected_version=-1
        )
    assert fields_of(error) == {"id", "email", "expected_version"}


async def test_a_stale_version_an_unknown_user_and_a_taken_address_are_refused(
    kit: AuthKit,
) -> None:
    user = await kit.add_user()
    await kit.add_user("taken@example.com")
    with pytest.raises(StaleVersion):
        await request(kit, user, version=2)
    with pytest.raises(UserNotFound):
        await email_change.request_email_change(
            kit.uow(),
            kit.notifier,
            kit.clock,
            kit.policy,
            kit.after_reply,
            user_id=UserId.new().value,
            new_email=NEW_EMAIL,
            expected_version=1,
        )
    with pytest.raises(EmailAlreadyRegistered):
        await request(kit, user, "TAKEN@example.com")
    assert kit.stored(user).pending_email_change is None
    await kit.after_reply.run_all()
    assert kit.notifier.email_changes == [] and kit.notifier.email_change_notices == []


async def test_a_disabled_account_cannot_ask_for_a_change(kit: AuthKit) -> None:
    user = await kit.add_user()
    kit.store.users[user.id.value].status = UserStatus.DISABLED
    with pytest.raises(AccountDisabled):
        await request(kit, user)


async def test_a_second_request_within_the_cool_down_is_held_back_and_says_when(
    kit: AuthKit,
) -> None:
    user = await kit.add_user()
    confirm, _ = await requested(kit, user)
    kit.later(seconds=20)

    with pytest.raises(SecurityMailLimited) as limited:
        await request(kit, user, "elsewhere@example.net")

    assert limited.value.retry_after == timedelta(seconds=40)
    await kit.after_reply.run_all()
    assert len(kit.notifier.email_changes) == 1  # no more mail
    kit.later(seconds=40)
    newer, _ = await requested(kit, user, "elsewhere@example.net")
    with pytest.raises(InvalidEmailChangeToken):  # the newer request replaced the first
        await email_change.confirm_email_change(kit.uow(), kit.clock, token=confirm)
    moved = await email_change.confirm_email_change(kit.uow(), kit.clock, token=newer)
    assert moved.email.value == "elsewhere@example.net"


@pytest.mark.parametrize(
    "token",
    [
        "x",
        ".",
        "not-a-token",
        f"{UserId.new().value}.{'A' * 43}",
        f"{UserId.new().value}.{UserId.new().value}.{'A' * 43}",
        "A" * 201,
    ],
)
async def test_tokens_that_are_none_of_ours_are_refused_as_invalid(
    kit: AuthKit, token: str
) -> None:
    with pytest.raises(InvalidEmailChangeToken):
        await email_change.confirm_email_change(kit.uow(), kit.clock, token=token)
    with pytest.raises(InvalidEmailChangeToken):
        await email_change.cancel_email_change(kit.uow(), kit.clock, token=token)


@pytest.mark.parametrize("token", ["", "  ", "\t\n"])
async def test_an_empty_token_is_invalid_input(kit: AuthKit, token: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        await email_change.confirm_email_change(kit.uow(), kit.clock, token=token)
    assert fields_of(error) == {"token"}


async def test_expired_and_forged_tokens_change_nothing(kit: AuthKit) -> None:
    user = await kit.add_user()
    confirm, cancel = await requested(kit, user)
    forged = issue_token(user.id).value
    before = state_of(kit.stored(user))
    for token in (forged,):
        with pytest.raises(InvalidEmailChangeToken):
            await email_change.confirm_email_change(kit.uow(), kit.clock, token=token)
    kit.later(hours=24)
    for token in (confirm, cancel):
        with pytest.raises(InvalidEmailChangeToken):
            await email_change.confirm_email_change(kit.uow(), kit.clock, token=token)
        with pytest.raises(InvalidEmailChangeToken):
            await email_change.cancel_email_change(kit.uow(), kit.clock, token=token)
    assert state_of(kit.stored(user)) == before


async def test_an_administrator_sets_a_verified_address_at_once(kit: AuthKit) -> None:
    user = await kit.add_user()
    confirm, _ = await requested(kit, user)
    kit.new_events(user)

    changed = await email_change.change_email(
        kit.uow(), kit.clock, user_id=user.id.value, email="Support@Example.net", expected_version=1
    )

    assert (changed.email.value, changed.email_verified, changed.version) == (
        "Support@Example.net",
        True,
        2,
    )
    assert changed.pending_email_change is None
    assert kit.store.emails == {"support@example.net": user.id.value}
    assert [type(event) for event in kit.new_events(user)] == [EmailChanged, EmailVerified]
    with pytest.raises(InvalidEmailChangeToken):
        await email_change.confirm_email_change(kit.uow(), kit.clock, token=confirm)


async def test_the_administrator_s_change_is_refused_for_the_same_a_taken_or_a_stale_state(
    kit: AuthKit,
) -> None:
    user = await kit.add_user()
    await kit.add_user("taken@example.com")

    async def change(email: str, version: int = 1) -> User:
        return await email_change.change_email(
            kit.uow(), kit.clock, user_id=user.id.value, email=email, expected_version=version
        )

    before = state_of(kit.stored(user))
    with pytest.raises(InvalidArgument) as error:
        await change(EMAIL.upper())
    assert fields_of(error) == {"email"}
    with pytest.raises(EmailAlreadyRegistered):
        await change("Taken@Example.com")
    with pytest.raises(StaleVersion):
        await change("free@example.com", version=3)
    assert state_of(kit.stored(user)) == before
