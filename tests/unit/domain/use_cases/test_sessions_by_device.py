"""Sessions by device on in-memory fakes: the client details a sign-in keeps, the live sessions
listed, one of them ended on request (and why), and bad input that changes nothing."""

from __future__ import annotations

import pytest

from domain.errors import InvalidArgument, InvalidRefreshToken, SessionNotFound, UserNotFound
from domain.events import SessionEndReason, SessionRevoked
from domain.use_cases.sessions import SessionView, end_session, list_sessions, session_in_force
from domain.values import ClientDetails, Requester, UserId
from tests.unit.domain.use_cases.auth_kit import EMAIL, PASSWORD, AuthKit

LAPTOP = {"user_agent": "Firefox/128.0", "ip_address": "192.0.2.7", "device_label": "Laptop"}
PHONE = {"user_agent": "Safari/17", "ip_address": "2001:DB8::0042", "device_label": " Phone "}


@pytest.fixture
def kit() -> AuthKit:
    return AuthKit()


async def listed(kit: AuthKit, user_id: str) -> list[SessionView]:
    return await list_sessions(kit.uow(), kit.clock, kit.policy.sessions, user_id=user_id)


async def end(kit: AuthKit, user_id: str, session_id: str, by: Requester = Requester.USER) -> None:
    await end_session(
        kit.uow(), kit.clock, kit.policy.sessions, user_id=user_id, session_id=session_id, by=by
    )


async def test_a_sign_in_keeps_the_client_details_validated_and_canonical(kit: AuthKit) -> None:
    user = await kit.add_user()

    await kit.sign_in(**PHONE)

    (stored,) = kit.sessions(user)
    assert stored.client == ClientDetails("Safari/17", "2001:db8::42", "Phone")


async def test_a_sign_in_without_client_details_keeps_none(kit: AuthKit) -> None:
    user = await kit.add_user()
    await kit.sign_in()
    assert kit.sessions(user)[0].client.is_empty


@pytest.mark.parametrize(
    ("client", "field"),
    [
        ({"user_agent": "x" * 513}, "client.user_agent"),
        ({"user_agent": "bad\r\nheader"}, "client.user_agent"),
        ({"ip_address": "300.1.1.1"}, "client.ip_address"),
        ({"ip_address": "192.0.2.1:8080"}, "client.ip_address"),
        ({"device_label": "x" * 65}, "client.device_label"),
        ({"device_label": "\x00"}, "client.device_label"),
    ],
)
async def test_bad_client_details_are_refused_before_anything_changes(
    kit: AuthKit, client: dict[str, str], field: str
) -> None:
    user = await kit.add_user()
    commits = kit.store.commits

    with pytest.raises(InvalidArgument) as error:
        await kit.sign_in(**client)

    assert [v.field for v in error.value.violations] == [field]
    assert kit.hasher.verified == []  # refused before the password was even checked
    assert kit.store.commits == commits
    assert kit.sessions(user) == ()


async def test_every_bad_client_detail_is_reported_at_once(kit: AuthKit) -> None:
    with pytest.raises(InvalidArgument) as error:
        await kit.sign_in(
            EMAIL, PASSWORD, user_agent="\x07", ip_address="nope", device_label="x" * 99
        )
    assert {v.field for v in error.value.violations} == {
        "client.user_agent",
        "client.ip_address",
        "client.device_label",
    }


async def test_the_client_details_outlive_a_refresh(kit: AuthKit) -> None:
    user = await kit.add_user()
    signed_in = await kit.sign_in(**LAPTOP)
    kit.later(minutes=5)

    await kit.refresh(signed_in.refresh_token)

    (stored,) = kit.sessions(user)
    assert stored.client == ClientDetails(**LAPTOP)
    assert stored.last_used_at == kit.clock.now


async def test_the_live_sessions_are_listed_newest_first_with_their_details(kit: AuthKit) -> None:
    user = await kit.add_user()
    laptop = await kit.sign_in(**LAPTOP)
    laptop_at = kit.clock.now
    kit.later(hours=1)
    phone = await kit.sign_in(**PHONE)
    kit.later(hours=1)
    await kit.refresh(laptop.refresh_token)

    sessions = await listed(kit, user.id.value.upper())  # another spelling of the same id

    assert [s.session_id for s in sessions] == [phone.session_id, laptop.session_id]
    assert sessions[0].client.device_label == "Phone"
    assert sessions[1].client == ClientDetails(**LAPTOP)
    assert sessions[1].created_at == laptop_at
    assert sessions[1].last_used_at == kit.clock.now
    idle = kit.policy.sessions.idle_lifetime
    assert sessions[1].ends_at == kit.clock.now + idle  # idle lifetime after its last use
    assert "token" not in repr(sessions).lower()  # a view holds no token nor a hash of one


async def test_expired_and_ended_sessions_are_not_listed(kit: AuthKit) -> None:
    user = await kit.add_user()
    await kit.sign_in()
    kit.later(days=8)  # idle for longer than the idle lifetime
    fresh = await kit.sign_in()
    assert [s.session_id for s in await listed(kit, user.id.value)] == [fresh.session_id]

    await end(kit, user.id.value, fresh.session_id)

    assert await listed(kit, user.id.value) == []


async def test_listing_needs_a_user_id_of_someone(kit: AuthKit) -> None:
    with pytest.raises(InvalidArgument) as error:
        await listed(kit, "not-a-uuid")
    assert [v.field for v in error.value.violations] == ["user_id"]
    with pytest.raises(UserNotFound):
        await listed(kit, UserId.new().value)


@pytest.mark.parametrize(
    ("by", "reason"),
    [
        (Requester.USER, SessionEndReason.REVOKED_BY_USER),
        (Requester.ADMIN, SessionEndReason.REVOKED_BY_ADMIN),
    ],
)
async def test_ending_one_session_drops_it_records_why_and_keeps_the_others(
    kit: AuthKit, by: Requester, reason: SessionEndReason
) -> None:
    user = await kit.add_user()
    leaving, staying = await kit.sign_in(**PHONE), await kit.sign_in(**LAPTOP)
    kit.new_events(user)
    commits = kit.store.commits

    await end(kit, user.id.value, leaving.session_id, by)

    assert kit.store.commits == commits + 1  # the item and the event in one write
    assert [s.session_id for s in kit.sessions(user)] == [staying.session_id]
    assert kit.new_events(user) == [
        SessionRevoked(user.id.value, kit.clock.now, session_id=leaving.session_id, reason=reason)
    ]
    with pytest.raises(InvalidRefreshToken):
        await kit.refresh(leaving.refresh_token)
    assert await kit.refresh(staying.refresh_token)
    in_force = await session_in_force(
        kit.uow(), kit.clock, kit.policy, user_id=user.id.value, session_id=leaving.session_id
    )
    assert not in_force  # its access tokens are refused as x-user-token


async def test_a_session_that_is_not_a_live_one_of_this_user_is_not_found(kit: AuthKit) -> None:
    ada = await kit.add_user()
    grace = await kit.add_user("grace@example.com")
    theirs = await kit.sign_in("grace@example.com")
    ended = await kit.sign_in()
    await end(kit, ada.id.value, ended.session_id)
    expired = await kit.sign_in()
    kit.later(days=8)
    kit.new_events(ada)
    commits = kit.store.commits

    for session_id in (theirs.session_id, ended.session_id, expired.session_id, str(UserId.new())):
        with pytest.raises(SessionNotFound):
            await end(kit, ada.id.value, session_id)

    assert kit.store.commits == commits
    assert kit.new_events(ada) == []
    assert [s.session_id for s in kit.sessions(grace)] == [theirs.session_id]


async def test_ending_a_session_needs_well_formed_ids_and_an_existing_user(kit: AuthKit) -> None:
    with pytest.raises(InvalidArgument) as error:
        await end(kit, "", "1234")
    assert {v.field for v in error.value.violations} == {"user_id", "session_id"}
    with pytest.raises(UserNotFound):
        await end(kit, UserId.new().value, str(UserId.new()))
