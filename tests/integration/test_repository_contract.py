"""One contract, two backends: the in-memory fake and DynamoDB (moto_server) must behave alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from domain.errors import ConcurrentWrite, EmailAlreadyRegistered, UserNotFound, VersionConflict
from domain.policies import SessionPolicy
from domain.ports import UnitOfWork
from domain.use_cases import accounts
from domain.user import User
from domain.values import ClientDetails, Email, PersonName, Session, UserId
from persistence.unit_of_work import DynamoUnitOfWork
from tests.builders import T0, new_user, password_reset, session, state_of
from tests.fakes import FakeUnitOfWork, InMemoryStore

NewUow = Callable[[], UnitOfWork]


@pytest.fixture(params=["fake", "dynamodb"])
def new_uow(request: pytest.FixtureRequest) -> NewUow:
    """Makes a fresh unit of work over one store shared by the whole test."""
    if request.param == "fake":
        store = InMemoryStore()
        return lambda: FakeUnitOfWork(store)
    client = request.getfixturevalue("dynamodb_client")
    tables = request.getfixturevalue("dynamodb_tables")
    return lambda: DynamoUnitOfWork(client, tables)


async def add(new_uow: NewUow, user: User) -> User:
    async with new_uow() as uow:
        await uow.users.add(user)
        await uow.commit()
    return user


async def by_id(new_uow: NewUow, user: User) -> User | None:
    async with new_uow() as uow:
        return await uow.users.get_by_id(user.id)


async def by_email(new_uow: NewUow, email: str) -> User | None:
    async with new_uow() as uow:
        return await uow.users.get_by_email(Email.parse(email))


async def rename(new_uow: NewUow, user: User, first_name: str) -> User:
    async with new_uow() as uow:
        stored = await uow.users.get_by_id(user.id)
        assert stored is not None
        later = T0 + timedelta(hours=1)
        stored.update_profile(first_name=PersonName.parse(first_name), last_name=None, now=later)
        await uow.users.update(stored)
        await uow.commit()
    return stored


async def delete(new_uow: NewUow, user: User) -> None:
    async with new_uow() as uow:
        stored = await uow.users.get_by_id(user.id)
        assert stored is not None
        await uow.users.delete(stored)
        await uow.commit()


async def test_added_user_is_found_by_id_and_by_email_in_any_case(new_uow: NewUow) -> None:
    user = new_user("Ada.Lovelace@Example.com")
    user.session_epoch = 4
    user.password_reset = password_reset("reset")
    user.failed_logins, user.locked_until = 6, T0

    await add(new_uow, user)

    assert user.version == 1
    stored = await by_id(new_uow, user)
    assert stored is not None and state_of(stored) == state_of(user)
    found = await by_email(new_uow, "ada.lovelace@EXAMPLE.COM")
    assert found is not None and found.id == user.id
    assert str(found.email) == "Ada.Lovelace@Example.com"


async def test_unknown_id_and_email_are_not_found(new_uow: NewUow) -> None:
    assert await by_id(new_uow, new_user()) is None
    assert await by_email(new_uow, "nobody@example.com") is None


async def test_registering_an_email_taken_in_another_case_is_refused_and_writes_nothing(
    new_uow: NewUow,
) -> None:
    first = await add(new_uow, new_user("grace@example.com"))
    second = new_user("GRACE@Example.COM", first_name="Other")

    with pytest.raises(EmailAlreadyRegistered):
        await add(new_uow, second)

    assert second.version == 0
    assert await by_id(new_uow, second) is None
    owner = await by_email(new_uow, "grace@example.com")
    assert owner is not None and owner.id == first.id


async def test_update_bumps_the_version(new_uow: NewUow) -> None:
    user = await add(new_uow, new_user())

    updated = await rename(new_uow, user, "Augusta")

    assert updated.version == 2
    stored = await by_id(new_uow, user)
    assert stored is not None and stored.version == 2 and str(stored.first_name) == "Augusta"


async def test_update_with_a_stale_version_is_refused_and_writes_nothing(new_uow: NewUow) -> None:
    user = await add(new_uow, new_user())
    async with new_uow() as stale_uow:
        stale = await stale_uow.users.get_by_id(user.id)
        assert stale is not None
        await rename(new_uow, user, "Winner")
        stale.update_profile(first_name=PersonName.parse("Loser"), last_name=None, now=T0)
        await stale_uow.users.update(stale)

        with pytest.raises(VersionConflict) as conflict:
            await stale_uow.commit()

    assert (conflict.value.expected, conflict.value.actual) == (1, 2)
    assert stale.version == 1
    stored = await by_id(new_uow, user)
    assert stored is not None and (stored.version, str(stored.first_name)) == (2, "Winner")


async def test_updating_a_user_deleted_meanwhile_is_a_conflict_with_no_stored_version(
    new_uow: NewUow,
) -> None:
    user = await add(new_uow, new_user())
    async with new_uow() as uow:
        stale = await uow.users.get_by_id(user.id)
        assert stale is not None
        await delete(new_uow, user)
        stale.update_profile(first_name=PersonName.parse("Ghost"), last_name=None, now=T0)
        await uow.users.update(stale)

        with pytest.raises(VersionConflict) as conflict:
            await uow.commit()

    assert (conflict.value.expected, conflict.value.actual) == (1, None)
    assert await by_id(new_uow, user) is None


async def test_changing_the_email_moves_the_guard(new_uow: NewUow) -> None:
    user = await add(new_uow, new_user("old@example.com"))

    async with new_uow() as uow:
        stored = await uow.users.get_by_id(user.id)
        assert stored is not None
        stored.change_email(Email.parse("New@Example.com"), now=T0)
        await uow.users.update(stored)
        await uow.commit()

    assert await by_email(new_uow, "old@example.com") is None
    moved = await by_email(new_uow, "new@example.com")
    assert moved is not None and moved.id == user.id and moved.version == 2
    await add(new_uow, new_user("OLD@example.com"))  # the old address is free again
    with pytest.raises(EmailAlreadyRegistered):
        await add(new_uow, new_user("new@EXAMPLE.com"))


async def test_changing_the_email_to_a_taken_one_is_refused_atomically(new_uow: NewUow) -> None:
    user = await add(new_uow, new_user("mine@example.com"))
    other = await add(new_uow, new_user("theirs@example.com"))

    async with new_uow() as uow:
        stored = await uow.users.get_by_id(user.id)
        assert stored is not None
        stored.update_profile(first_name=PersonName.parse("Changed"), last_name=None, now=T0)
        stored.change_email(Email.parse("THEIRS@example.com"), now=T0)
        await uow.users.update(stored)
        with pytest.raises(EmailAlreadyRegistered):
            await uow.commit()

    unchanged = await by_id(new_uow, user)
    assert unchanged is not None and state_of(unchanged) == state_of(user)
    mine = await by_email(new_uow, "mine@example.com")
    theirs = await by_email(new_uow, "theirs@example.com")
    assert mine is not None and mine.id == user.id
    assert theirs is not None and theirs.id == other.id


async def test_changing_only_the_letter_case_of_the_email_keeps_it_registered(
    new_uow: NewUow,
) -> None:
    user = await add(new_uow, new_user("case@example.com"))

    async with new_uow() as uow:
        stored = await uow.users.get_by_id(user.id)
        assert stored is not None
        stored.change_email(Email.parse("Case@Example.com"), now=T0)
        await uow.users.update(stored)
        await uow.commit()

    found = await by_email(new_uow, "CASE@example.com")
    assert found is not None and str(found.email) == "Case@Example.com"
    with pytest.raises(EmailAlreadyRegistered):
        await add(new_uow, new_user("case@example.com"))


async def test_delete_removes_the_user_and_frees_its_email(new_uow: NewUow) -> None:
    user = await add(new_uow, new_user("leaving@example.com"))

    await delete(new_uow, user)

    assert await by_id(new_uow, user) is None
    assert await by_email(new_uow, "leaving@example.com") is None
    await add(new_uow, new_user("Leaving@example.com"))


async def test_delete_with_a_stale_version_is_refused(new_uow: NewUow) -> None:
    user = await add(new_uow, new_user())
    async with new_uow() as uow:
        stale = await uow.users.get_by_id(user.id)
        assert stale is not None
        await rename(new_uow, user, "Renamed")
        await uow.users.delete(stale)

        with pytest.raises(VersionConflict) as conflict:
            await uow.commit()

    assert (conflict.value.expected, conflict.value.actual) == (1, 2)
    assert await by_id(new_uow, user) is not None


async def test_deleting_a_user_deleted_meanwhile_is_not_found(new_uow: NewUow) -> None:
    user = await add(new_uow, new_user())
    async with new_uow() as uow:
        stale = await uow.users.get_by_id(user.id)
        assert stale is not None
        await delete(new_uow, user)
        await uow.users.delete(stale)

        with pytest.raises(UserNotFound):
            await uow.commit()


async def test_leaving_without_commit_writes_nothing(new_uow: NewUow) -> None:
    user = new_user()
    async with new_uow() as uow:
        await uow.users.add(user)

    async with new_uow() as uow:
        await uow.users.add(user)
        await uow.rollback()
        await uow.commit()

    assert user.version == 0
    assert await by_id(new_uow, user) is None
    assert await by_email(new_uow, str(user.email)) is None


async def test_committing_twice_applies_the_writes_once(new_uow: NewUow) -> None:
    user = new_user()
    async with new_uow() as uow:
        await uow.users.add(user)
        await uow.commit()
        await uow.commit()

    async with new_uow() as uow:
        stored = await uow.users.get_by_id(user.id)
        assert stored is not None
        stored.update_profile(first_name=PersonName.parse("Once"), last_name=None, now=T0)
        await uow.users.update(stored)
        await uow.commit()
        await uow.commit()

    assert stored.version == 2
    again = await by_id(new_uow, user)
    assert again is not None and again.version == 2


async def list_all(new_uow: NewUow, limit: int) -> list[list[UserId]]:
    pages: list[list[UserId]] = []
    after: UserId | None = None
    async with new_uow() as uow:
        while True:
            page = await uow.users.list_page(limit, after)
            pages.append([user.id for user in page.users])
            if page.last_key is None:
                return pages
            assert page.last_key == page.users[-1].id
            after = page.last_key


@pytest.mark.parametrize("limit", [1, 3, 7, 10])
async def test_list_pages_cover_every_user_exactly_once_without_an_empty_last_page(
    new_uow: NewUow, limit: int
) -> None:
    users = [await add(new_uow, new_user(f"user{i}@example.com")) for i in range(7)]

    pages = await list_all(new_uow, limit)

    listed = [user_id for page in pages for user_id in page]
    assert sorted(user_id.value for user_id in listed) == sorted(user.id.value for user in users)
    assert all(pages) and len(pages) == -(-7 // limit)


async def test_listing_an_empty_store_gives_one_empty_last_page(new_uow: NewUow) -> None:
    assert await list_all(new_uow, 5) == [[]]


async def test_listing_continues_after_a_user_deleted_between_pages(new_uow: NewUow) -> None:
    added = [await add(new_uow, new_user(f"u{i}@example.com")) for i in range(6)]
    users = {user.id: user for user in added}
    async with new_uow() as uow:
        first = await uow.users.list_page(3, None)
    assert first.last_key is not None
    await delete(new_uow, users[first.last_key])  # the page's last key no longer exists

    async with new_uow() as uow:
        rest = await uow.users.list_page(10, first.last_key)

    assert rest.last_key is None
    assert {user.id for user in rest.users} == set(users) - {user.id for user in first.users}


async def sign_in(new_uow: NewUow, user: User, *sessions: Session) -> User:
    """Store ``sessions`` for ``user`` (of its epoch), with a write of the user, as sign-in does."""
    async with new_uow() as uow:
        stored = await uow.users.require(user.id)
        await uow.users.update(stored)
        for held in sessions:
            await uow.sessions.add(stored, held)
        await uow.commit()
    return stored


async def test_sessions_are_read_by_key_and_as_the_current_ones_the_instant_they_land(
    new_uow: NewUow,
) -> None:
    holder = await add(new_uow, new_user("holder@example.com"))
    other = await add(new_uow, new_user("other@example.com"))
    phone = ClientDetails("Mozilla/5.0 (iPhone)", "2001:db8::42", "Phone")
    current = replace(session("current", previous="previous"), client=phone)
    newer = session("other", minutes=5)
    await sign_in(new_uow, holder, current, newer)
    await sign_in(new_uow, other, session("theirs"))

    async with new_uow() as uow:
        user = await uow.users.require(holder.id)
        assert sorted(await uow.sessions.current(user), key=lambda s: s.created_at) == [
            current,
            newer,
        ]
        assert await uow.sessions.get(user, current.session_id) == current
        assert await uow.sessions.get(user, "session-theirs") is None  # another user's
        assert await uow.sessions.get(user, "never-issued") is None


async def test_a_rotation_lands_only_while_the_session_holds_the_token_it_rotates_away(
    new_uow: NewUow,
) -> None:
    user = await add(new_uow, new_user())
    original = session("first")
    await sign_in(new_uow, user, original)
    rotated = replace(original, token_hash="second", previous_token_hash="first", rotated_at=T0)
    async with new_uow() as winner, new_uow() as loser:
        for uow in (winner, loser):
            stored = await uow.users.require(user.id)
            assert await uow.sessions.get(stored, original.session_id) == original
            await uow.sessions.rotate(stored, original, rotated)
        await winner.commit()
        with pytest.raises(ConcurrentWrite):
            await loser.commit()

    async with new_uow() as uow:
        stored = await uow.users.require(user.id)
        assert await uow.sessions.get(stored, original.session_id) == rotated
    assert stored.version == 1  # a rotation is no change a caller sees


async def test_a_removed_session_is_gone_and_the_others_stay(new_uow: NewUow) -> None:
    user = await add(new_uow, new_user())
    live, kept = session("live"), session("kept", minutes=1)
    await sign_in(new_uow, user, live, kept)

    async with new_uow() as uow:
        stored = await uow.users.require(user.id)
        await uow.sessions.remove(stored, live)
        await uow.users.update(stored)
        await uow.commit()

    async with new_uow() as uow:
        stored = await uow.users.require(user.id)
        assert await uow.sessions.current(stored) == [kept]
        assert await uow.sessions.get(stored, live.session_id) is None


async def test_moving_the_epoch_on_ends_every_session_but_the_one_moved_with_it(
    new_uow: NewUow,
) -> None:
    user = await add(new_uow, new_user())
    kept, ended = session("kept"), session("ended", minutes=1)
    await sign_in(new_uow, user, kept, ended)

    async with new_uow() as uow:
        stored = await uow.users.require(user.id)
        outcome = stored.end_sessions(
            T0, SessionPolicy(), await uow.sessions.current(stored), keep_session_id="session-kept"
        )
        assert outcome.kept == kept and outcome.moved is not None
        await uow.users.update(stored)
        await uow.sessions.move(stored, outcome.kept, outcome.moved)
        await uow.commit()

    async with new_uow() as uow:
        stored = await uow.users.require(user.id)
        assert stored.session_epoch == 1
        assert await uow.sessions.current(stored) == [replace(kept, epoch=1)]
        assert await uow.sessions.get(stored, ended.session_id) is None


async def test_require_raises_user_not_found_for_an_unknown_id(new_uow: NewUow) -> None:
    async with new_uow() as uow:
        with pytest.raises(UserNotFound):
            await uow.users.require(UserId.new())


async def test_session_bookkeeping_keeps_the_version_but_still_guards_against_lost_updates(
    new_uow: NewUow,
) -> None:
    user = await add(new_uow, new_user())
    async with new_uow() as first, new_uow() as second:
        signing_in = await first.users.get_by_id(user.id)
        renaming = await second.users.get_by_id(user.id)
        assert signing_in is not None and renaming is not None
        start = signing_in.start_session(T0, SessionPolicy(), [])
        await first.users.update(signing_in)
        await first.sessions.add(signing_in, start.session)
        await first.commit()
        renaming.update_profile(first_name=PersonName.parse("Late"), last_name=None, now=T0)
        await second.users.update(renaming)
        with pytest.raises(VersionConflict):
            await second.commit()  # its read is older than the sign-in's write

    stored = await by_id(new_uow, user)
    assert stored is not None
    assert signing_in.version == stored.version == 1  # no change a caller can see
    assert stored.first_name.value == "Ada"
    async with new_uow() as uow:
        assert len(await uow.sessions.current(stored)) == 1


async def test_a_change_callers_see_moves_the_version_even_at_the_same_instant(
    new_uow: NewUow,
) -> None:
    user = await add(new_uow, new_user())  # updated_at is T0 already
    async with new_uow() as uow:
        stored = await uow.users.get_by_id(user.id)
        assert stored is not None
        stored.update_profile(first_name=PersonName.parse("Augusta"), last_name=None, now=T0)
        await uow.users.update(stored)
        await uow.commit()

    again = await by_id(new_uow, user)
    assert stored.version == 2 and again is not None and again.version == 2


async def test_get_many_finds_every_stored_user_by_id_and_leaves_out_unknown_ids(
    new_uow: NewUow,
) -> None:
    users = [await add(new_uow, new_user(f"many{i}@example.com")) for i in range(3)]
    unknown = UserId.new()

    async with new_uow() as uow:
        found = await uow.users.get_many([users[2].id, unknown, users[0].id, users[1].id])

    assert set(found) == {user.id for user in users}
    for user in users:
        assert state_of(found[user.id]) == state_of(user)


async def test_get_many_reads_an_id_given_twice_once(new_uow: NewUow) -> None:
    user = await add(new_uow, new_user())

    async with new_uow() as uow:
        found = await uow.users.get_many([user.id, user.id, user.id])

    assert list(found) == [user.id] and state_of(found[user.id]) == state_of(user)


async def test_get_many_of_unknown_ids_or_none_finds_nothing(new_uow: NewUow) -> None:
    async with new_uow() as uow:
        assert await uow.users.get_many([UserId.new(), UserId.new()]) == {}
        assert await uow.users.get_many([]) == {}


async def test_get_many_reads_more_ids_than_one_batch_request_takes(new_uow: NewUow) -> None:
    users = [await add(new_uow, new_user(f"big{i}@example.com")) for i in range(3)]
    ids = [UserId.new() for _ in range(150)] + [user.id for user in users]

    async with new_uow() as uow:
        found = await uow.users.get_many(ids)

    assert set(found) == {user.id for user in users}


async def test_get_many_sees_a_change_the_instant_it_is_committed(new_uow: NewUow) -> None:
    user = await add(new_uow, new_user())
    await rename(new_uow, user, "Augusta")

    async with new_uow() as uow:
        found = await uow.users.get_many([user.id])

    assert found[user.id].version == 2 and str(found[user.id].first_name) == "Augusta"


async def test_users_read_by_get_many_can_be_updated_and_deleted_in_the_same_unit_of_work(
    new_uow: NewUow,
) -> None:
    renamed = await add(new_uow, new_user("stay@example.com"))
    leaving = await add(new_uow, new_user("leave@example.com"))

    async with new_uow() as uow:
        found = await uow.users.get_many([renamed.id, leaving.id])
        found[renamed.id].update_profile(
            first_name=PersonName.parse("Kept"), last_name=None, now=T0
        )
        await uow.users.update(found[renamed.id])
        await uow.users.delete(found[leaving.id])
        await uow.commit()

    stored = await by_id(new_uow, renamed)
    assert stored is not None and (stored.version, str(stored.first_name)) == (2, "Kept")
    assert await by_id(new_uow, leaving) is None
    assert await by_email(new_uow, "leave@example.com") is None


async def test_a_user_read_by_get_many_and_changed_meanwhile_is_a_conflict_on_update(
    new_uow: NewUow,
) -> None:
    user = await add(new_uow, new_user())
    async with new_uow() as uow:
        stale = (await uow.users.get_many([user.id]))[user.id]
        await rename(new_uow, user, "Winner")
        stale.update_profile(first_name=PersonName.parse("Loser"), last_name=None, now=T0)
        await uow.users.update(stale)

        with pytest.raises(VersionConflict):
            await uow.commit()

    stored = await by_id(new_uow, user)
    assert stored is not None and str(stored.first_name) == "Winner"


async def test_batch_get_users_answers_each_requested_id_in_place_duplicates_and_missing_too(
    new_uow: NewUow,
) -> None:
    first = await add(new_uow, new_user("one@example.com"))
    second = await add(new_uow, new_user("two@example.com"))
    missing = UserId.new()
    ids = [second.id.value, missing.value, first.id.value.upper(), second.id.value]

    lookups = await accounts.batch_get_users(new_uow(), ids=ids)

    assert [lookup.user_id for lookup in lookups] == [second.id, missing, first.id, second.id]
    found = [lookup.user for lookup in lookups]
    assert [user.id if user else None for user in found] == [second.id, None, first.id, second.id]
    assert found[0] is not None and state_of(found[0]) == state_of(second)


async def test_moving_a_session_refreshed_since_it_was_read_fails_as_a_concurrent_write(
    new_uow: NewUow,
) -> None:
    user = await add(new_uow, new_user())
    kept, other = session("kept"), session("other", minutes=1)
    await sign_in(new_uow, user, kept, other)
    rotated = replace(kept, token_hash="kept-2", previous_token_hash="kept", rotated_at=T0)

    async with new_uow() as changing, new_uow() as refreshing:
        stored = await changing.users.require(user.id)
        outcome = stored.end_sessions(
            T0,
            SessionPolicy(),
            await changing.sessions.current(stored),
            keep_session_id=kept.session_id,
        )
        assert outcome.kept is not None and outcome.moved is not None
        await changing.users.update(stored)
        await changing.sessions.move(stored, outcome.kept, outcome.moved)
        # A refresh of the kept session lands in between.
        await refreshing.sessions.rotate(await refreshing.users.require(user.id), kept, rotated)
        await refreshing.commit()
        with pytest.raises(ConcurrentWrite):
            await changing.commit()

    async with new_uow() as uow:
        stored = await uow.users.require(user.id)
        assert stored.session_epoch == 0  # nothing of the move landed
        assert await uow.sessions.get(stored, kept.session_id) == rotated


async def test_a_pending_verification_and_its_wrong_codes_are_kept_without_a_new_version(
    new_uow: NewUow,
) -> None:
    user = new_user("Ada.Lovelace@Example.com")
    _, code = user.request_email_verification(T0, timedelta(hours=24))
    await add(new_uow, user)

    async with new_uow() as uow:
        stored = await uow.users.require(user.id)
        assert not stored.verify_email(f"{(int(code.value) + 1) % 10**6:06d}", T0, 5)
        await uow.users.update(stored)
        await uow.commit()

    counted = await by_id(new_uow, user)
    assert counted is not None and counted.version == 1  # bookkeeping: no new version
    assert counted.email_verification is not None
    assert counted.email_verification.wrong_codes == 1
    assert user.email_verification is not None
    assert counted.email_verification == replace(user.email_verification, wrong_codes=1)
    async with new_uow() as uow:
        stored = await uow.users.require(user.id)
        assert stored.verify_email(code.value, T0, 5)
        await uow.users.update(stored)
        await uow.commit()
    verified = await by_id(new_uow, user)
    assert verified is not None and verified.email_verified and verified.version == 2
    assert verified.email_verification is None
