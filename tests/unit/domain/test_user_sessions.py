"""Sessions on the User aggregate: start, rotate, tolerate a lost race, detect reuse, expire, end
them all by moving the session epoch on; and the events each of those records (a rotation or a
lost race records none). The sessions are held by a SessionBook, as the store holds them."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from domain.errors import SessionNotFound
from domain.events import (
    DomainEvent,
    SessionEndReason,
    SessionRevoked,
    SessionsRevoked,
    SessionStarted,
)
from domain.policies import SessionPolicy
from domain.secret_tokens import IssuedToken, TokenLookup, issue_token, parse_token
from domain.user import RefreshResult, User
from domain.values import ClientDetails, Requester, Session
from tests.builders import T0, new_user
from tests.session_book import SessionBook

POLICY = SessionPolicy()
SECOND = timedelta(seconds=1)


def lookup(token: IssuedToken) -> TokenLookup:
    return parse_token(token.value)


def signed_in() -> tuple[SessionBook, Session, IssuedToken]:
    book = SessionBook(new_user(), POLICY)
    session, token = book.start(T0)
    return book, session, token


def events_after(user: User) -> list[DomainEvent]:
    """The events recorded since the last call (the user's pending list is emptied)."""
    recorded = list(user.events)
    user.events.clear()
    return recorded


def started(user: User, session: Session, at: datetime) -> SessionStarted:
    return SessionStarted(user.id.value, at, session_id=session.session_id)


def revoked(user: User, session_id: str, reason: SessionEndReason, at: datetime) -> SessionRevoked:
    return SessionRevoked(user.id.value, at, session_id=session_id, reason=reason)


def rotate(book: SessionBook, token: IssuedToken, at: timedelta) -> IssuedToken:
    outcome = book.refresh(token, T0 + at)
    assert outcome.result is RefreshResult.ROTATED and outcome.token is not None
    return outcome.token


def test_a_new_session_keeps_only_the_hash_of_a_token_naming_the_user_and_session() -> None:
    book = SessionBook(new_user(), POLICY)
    user = book.user
    user.events.clear()
    session, token = book.start(T0)

    assert user.events == [started(user, session, T0)]
    assert book.sessions() == (session,)
    assert session.token_hash == token.token_hash != token.value
    assert lookup(token).user_id == user.id
    assert lookup(token).session_id == session.session_id
    assert session.epoch == user.session_epoch == 0
    assert (session.created_at, session.last_used_at) == (T0, T0)
    assert session.expires_at == T0 + timedelta(days=30)
    assert session.previous_token_hash is None and session.retired_token_hashes == ()


def test_every_sign_in_opens_a_session_of_its_own() -> None:
    book, first, _ = signed_in()
    second, _ = book.start(T0 + SECOND)
    assert first.session_id != second.session_id
    assert book.sessions() == (first, second)


def test_the_eleventh_session_evicts_the_oldest() -> None:
    book = SessionBook(new_user(), POLICY)
    user = book.user
    opened = [book.start(T0 + i * SECOND)[0] for i in range(10)]
    events_after(user)

    eleventh, _ = book.start(T0 + 10 * SECOND)

    assert len(book.sessions()) == POLICY.max_sessions == 10
    assert book.sessions() == (*opened[1:], eleventh)
    at = T0 + 10 * SECOND
    assert events_after(user) == [
        revoked(user, opened[0].session_id, SessionEndReason.EVICTED, at),
        started(user, eleventh, at),
    ]


def test_a_lowered_limit_evicts_as_many_of_the_oldest_as_it_takes() -> None:
    book = SessionBook(new_user(), POLICY)
    user = book.user
    opened = [book.start(T0 + i * SECOND)[0] for i in range(4)]
    events_after(user)
    at = T0 + timedelta(minutes=1)

    newest, _ = book.start(at, SessionPolicy(max_sessions=2))

    assert book.sessions() == (opened[3], newest)
    assert events_after(user) == [
        *(revoked(user, s.session_id, SessionEndReason.EVICTED, at) for s in opened[:3]),
        started(user, newest, at),
    ]


def test_a_new_session_drops_the_expired_ones_as_expired() -> None:
    book, old, _ = signed_in()
    user = book.user
    events_after(user)
    at = T0 + timedelta(days=8)

    newer, _ = book.start(at)

    assert book.sessions() == (newer,)
    assert events_after(user) == [
        revoked(user, old.session_id, SessionEndReason.EXPIRED, at),
        started(user, newer, at),
    ]


def test_a_sign_in_ends_at_most_48_sessions_and_leaves_further_expired_ones_for_later() -> None:
    book = SessionBook(new_user(), SessionPolicy(max_sessions=50))
    opened = [book.start(T0 + i * SECOND)[0] for i in range(50)]
    events_after(book.user)
    at = T0 + timedelta(days=8)

    newer, _ = book.start(at)

    ended = [e for e in events_after(book.user) if isinstance(e, SessionRevoked)]
    assert len(ended) == 48
    assert book.sessions() == (*opened[48:], newer)


def test_sessions_of_an_earlier_epoch_are_neither_counted_nor_ended_at_sign_in() -> None:
    book, old, _ = signed_in()
    book.end_all(T0 + SECOND)
    events_after(book.user)

    newer, _ = book.start(T0 + 2 * SECOND, SessionPolicy(max_sessions=1))

    assert book.sessions() == (newer,)
    assert newer.epoch == book.user.session_epoch == 1
    assert events_after(book.user) == [started(book.user, newer, T0 + 2 * SECOND)]
    assert old in book.stored  # left for the store's TTL


def test_refreshing_with_the_current_token_rotates_it_within_the_same_session() -> None:
    book, session, token = signed_in()
    user = book.user
    events_after(user)
    at = T0 + timedelta(minutes=5)

    outcome = book.refresh(token, at)

    assert events_after(user) == []  # a rotation is no event
    assert outcome.result is RefreshResult.ROTATED
    assert outcome.token is not None and outcome.session is not None
    assert outcome.token.value != token.value
    assert outcome.previous == session
    rotated = book.sessions()[0]
    assert outcome.session == rotated
    assert rotated.session_id == session.session_id
    assert lookup(outcome.token).session_id == session.session_id
    assert rotated.token_hash == outcome.token.token_hash
    assert rotated.previous_token_hash == token.token_hash
    assert rotated.rotated_at == rotated.last_used_at == at
    assert rotated.expires_at == session.expires_at  # rotation never extends the absolute limit


def test_the_previous_token_within_the_grace_is_a_lost_race_and_changes_nothing() -> None:
    book, _, token = signed_in()
    newer = rotate(book, token, SECOND)
    before = book.sessions()

    events_after(book.user)
    outcome = book.refresh(token, T0 + SECOND + POLICY.reuse_grace)

    assert outcome.result is RefreshResult.RACED
    assert outcome.token is None
    assert book.sessions() == before
    assert events_after(book.user) == []
    assert book.holds(newer.token_hash)


def test_the_previous_token_after_the_grace_ends_the_session_as_reused() -> None:
    book, session, token = signed_in()
    newer = rotate(book, token, SECOND)
    after_grace = T0 + SECOND + POLICY.reuse_grace + timedelta(microseconds=1)
    events_after(book.user)

    outcome = book.refresh(token, after_grace)

    assert outcome.result is RefreshResult.REUSED
    assert book.sessions() == ()
    assert not book.holds(newer.token_hash)
    assert events_after(book.user) == [
        revoked(book.user, session.session_id, SessionEndReason.TOKEN_REUSED, after_grace)
    ]


def test_a_retired_token_ends_the_session_even_within_the_grace() -> None:
    book, _, first = signed_in()
    second = rotate(book, first, SECOND)
    rotate(book, second, 2 * SECOND)

    outcome = book.refresh(first, T0 + 2 * SECOND)

    assert outcome.result is RefreshResult.REUSED
    assert book.sessions() == ()


def test_reuse_ends_only_the_session_it_belongs_to() -> None:
    book, _, token = signed_in()
    other, _ = book.start(T0)
    rotate(book, token, SECOND)

    book.refresh(token, T0 + timedelta(minutes=1))

    assert book.sessions() == (other,)


def test_a_token_naming_a_session_that_never_held_it_changes_nothing() -> None:
    book, session, _ = signed_in()
    forged = issue_token(book.user.id, session.session_id)  # right ids, a secret never issued
    events_after(book.user)

    outcome = book.refresh(forged, T0 + SECOND)

    assert outcome.result is RefreshResult.UNKNOWN
    assert book.sessions() == (session,)
    assert events_after(book.user) == []


def test_a_session_remembers_only_the_latest_retired_tokens() -> None:
    book, _, token = signed_in()
    issued = [token]
    for i in range(1, 9):
        issued.append(rotate(book, issued[-1], i * SECOND))

    session = book.sessions()[0]
    kept = POLICY.retired_tokens_kept
    assert session.retired_token_hashes == tuple(t.token_hash for t in issued[-2 - kept : -2])
    assert session.previous_token_hash == issued[-2].token_hash


def test_an_unknown_token_changes_nothing() -> None:
    book, _, _ = signed_in()
    before = book.sessions()

    events_after(book.user)
    outcome = book.refresh(issue_token(book.user.id), T0)

    assert outcome.result is RefreshResult.UNKNOWN
    assert book.sessions() == before
    assert events_after(book.user) == []


def test_a_session_past_its_absolute_lifetime_expires_and_ends_even_if_in_use() -> None:
    book, session, token = signed_in()
    for day in range(6, 30, 6):
        token = rotate(book, token, timedelta(days=day))
    events_after(book.user)
    at = T0 + POLICY.absolute_lifetime

    outcome = book.refresh(token, at)

    assert outcome.result is RefreshResult.EXPIRED
    assert book.sessions() == ()
    assert events_after(book.user) == [
        revoked(book.user, session.session_id, SessionEndReason.EXPIRED, at)
    ]


def test_a_session_used_within_its_idle_lifetime_stays_alive() -> None:
    book, _, token = signed_in()
    token = rotate(book, token, timedelta(days=6))
    rotate(book, token, timedelta(days=12))
    assert len(book.sessions()) == 1


def test_a_session_idle_for_its_idle_lifetime_expires_and_ends() -> None:
    book, session, token = signed_in()
    events_after(book.user)
    at = T0 + POLICY.idle_lifetime

    outcome = book.refresh(token, at)

    assert outcome.result is RefreshResult.EXPIRED
    assert book.sessions() == ()
    assert events_after(book.user) == [
        revoked(book.user, session.session_id, SessionEndReason.EXPIRED, at)
    ]


def test_a_session_ends_at_its_absolute_end_or_idle_lifetime_after_its_last_use() -> None:
    book, session, token = signed_in()
    assert session.ends_at(POLICY.idle_lifetime) == T0 + POLICY.idle_lifetime
    for day in range(6, 30, 6):
        token = rotate(book, token, timedelta(days=day))
    rotated = book.sessions()[0]
    assert rotated.ends_at(POLICY.idle_lifetime) == session.expires_at


def test_ending_the_session_holding_a_token_works_with_its_previous_token_too() -> None:
    book, session, token = signed_in()
    other, _ = book.start(T0)
    rotate(book, token, SECOND)
    events_after(book.user)
    at = T0 + timedelta(minutes=1)

    assert book.logout(token, at)
    assert book.sessions() == (other,)
    assert events_after(book.user) == [
        revoked(book.user, session.session_id, SessionEndReason.LOGOUT, at)
    ]
    assert not book.logout(token, at)
    assert events_after(book.user) == []


def test_ending_every_session_moves_the_epoch_on_and_records_one_event() -> None:
    book, kept, _ = signed_in()
    book.start(T0)
    book.start(T0)
    user = book.user
    events_after(user)
    at = T0 + timedelta(minutes=1)

    ended = book.end_all(at, SessionEndReason.PASSWORD_CHANGED, keep_session_id=kept.session_id)

    assert ended == 2
    assert user.session_epoch == 1
    assert [s.session_id for s in book.sessions()] == [kept.session_id]
    assert book.sessions()[0].epoch == 1  # the kept one moved to the new epoch, token and all
    assert book.sessions()[0].token_hash == kept.token_hash
    assert events_after(user) == [
        SessionsRevoked(
            user.id.value,
            at,
            reason=SessionEndReason.PASSWORD_CHANGED,
            sessions_ended=2,
            kept_session_id=kept.session_id,
        )
    ]
    assert book.end_all(at) == 1
    assert book.sessions() == ()
    assert user.session_epoch == 2
    assert events_after(user) == [
        SessionsRevoked(user.id.value, at, reason=SessionEndReason.LOGOUT_ALL, sessions_ended=1)
    ]
    assert book.end_all(at) == 0
    assert user.session_epoch == 2  # nothing live to end: nothing changes
    assert events_after(user) == []


def test_ending_every_session_counts_only_the_live_ones() -> None:
    book, _, _ = signed_in()
    book.start(T0 + timedelta(days=5))
    events_after(book.user)

    assert book.end_all(T0 + timedelta(days=8)) == 1


def test_a_session_of_an_earlier_epoch_no_longer_refreshes() -> None:
    book, session, token = signed_in()
    book.end_all(T0 + SECOND)

    outcome = book.user.refresh_session(session, lookup(token), T0 + 2 * SECOND, POLICY)

    assert outcome.result is RefreshResult.UNKNOWN


def test_a_user_holds_its_current_previous_and_retired_tokens_only() -> None:
    book, _, first = signed_in()
    second = rotate(book, first, SECOND)
    third = rotate(book, second, 2 * SECOND)

    assert all(book.holds(t.token_hash) for t in (first, second, third))
    assert not book.holds(issue_token(book.user.id).token_hash)
    assert not book.holds(third.value)  # a raw token is never what is stored


# --- sessions by device ------------------------------------------------------------------------

PHONE = ClientDetails(user_agent="Phone/1.0", ip_address="2001:db8::1", device_label="Phone")


def test_a_session_keeps_its_client_details_through_rotations_and_an_epoch_move() -> None:
    book = SessionBook(new_user(), POLICY)
    start = book.user.start_session(T0, POLICY, (), PHONE)
    book.stored.append(start.session)
    assert start.session.client == PHONE

    token = rotate(book, start.token, SECOND)
    rotate(book, token, 2 * SECOND)
    book.start(T0 + 2 * SECOND)  # another, so that ending all but one moves the epoch on
    book.end_all(
        T0 + 3 * SECOND, SessionEndReason.PASSWORD_CHANGED, keep_session_id=start.session.session_id
    )

    (kept,) = book.sessions()
    assert kept.client == PHONE and kept.epoch == 1


def test_the_live_sessions_are_those_of_the_current_epoch_not_expired_newest_first() -> None:
    book, _, _ = signed_in()
    second, _ = book.start(T0 + timedelta(days=1))
    third, _ = book.start(T0 + timedelta(days=2))
    at = T0 + timedelta(days=7, hours=12)  # first idle for 7.5 days: over

    assert book.user.live_sessions(book.stored, at, POLICY) == [third, second]
    book.end_all(at)
    assert book.user.live_sessions(book.stored, at, POLICY) == []


def test_a_session_revoked_on_request_records_who_asked() -> None:
    book, session, _ = signed_in()
    other, _ = book.start(T0 + SECOND)
    events_after(book.user)
    at = T0 + 2 * SECOND

    assert book.user.revoke_session(session, Requester.USER, at, POLICY) == session
    assert book.user.revoke_session(other, Requester.ADMIN, at, POLICY) == other

    assert events_after(book.user) == [
        revoked(book.user, session.session_id, SessionEndReason.REVOKED_BY_USER, at),
        revoked(book.user, other.session_id, SessionEndReason.REVOKED_BY_ADMIN, at),
    ]


def test_only_a_live_session_can_be_revoked_on_request() -> None:
    book, session, _ = signed_in()
    expired_at = T0 + POLICY.idle_lifetime
    events_after(book.user)

    for gone, at in ((None, T0), (session, expired_at)):
        with pytest.raises(SessionNotFound):
            book.user.revoke_session(gone, Requester.USER, at, POLICY)
    book.end_all(T0 + SECOND)
    events_after(book.user)
    with pytest.raises(SessionNotFound):  # of an ended epoch
        book.user.revoke_session(session, Requester.ADMIN, T0 + SECOND, POLICY)
    assert events_after(book.user) == []
