"""Sessions on the User aggregate: start, rotate, tolerate a lost race, detect reuse, expire;
and the events each of those records (a rotation or a lost race records none)."""

from __future__ import annotations

from datetime import datetime, timedelta

from domain.events import DomainEvent, SessionEndReason, SessionRevoked, SessionStarted
from domain.policies import SessionPolicy
from domain.secret_tokens import IssuedToken, TokenLookup, issue_token, parse_token
from domain.user import RefreshResult, User
from domain.values import Session
from tests.builders import T0, new_user

POLICY = SessionPolicy()
SECOND = timedelta(seconds=1)


def lookup(token: IssuedToken) -> TokenLookup:
    return parse_token(token.value)


def signed_in(user: User | None = None) -> tuple[User, Session, IssuedToken]:
    user = user or new_user()
    session, token = user.start_session(T0, POLICY)
    return user, session, token


def events_after(user: User) -> list[DomainEvent]:
    """The events recorded since the last call (the user's pending list is emptied)."""
    recorded = list(user.events)
    user.events.clear()
    return recorded


def started(user: User, session: Session, at: datetime) -> SessionStarted:
    return SessionStarted(user.id.value, at, session_id=session.session_id)


def revoked(user: User, session_id: str, reason: SessionEndReason, at: datetime) -> SessionRevoked:
    return SessionRevoked(user.id.value, at, session_id=session_id, reason=reason)


def rotate(user: User, token: IssuedToken, at: timedelta) -> IssuedToken:
    outcome = user.refresh_session(lookup(token), T0 + at, POLICY)
    assert outcome.result is RefreshResult.ROTATED and outcome.token is not None
    return outcome.token


def test_a_new_session_keeps_only_the_hash_of_a_token_naming_the_user() -> None:
    user = new_user()
    user.events.clear()
    session, token = user.start_session(T0, POLICY)

    assert user.events == [started(user, session, T0)]
    assert user.sessions == (session,)
    assert session.token_hash == token.token_hash != token.value
    assert lookup(token).user_id == user.id
    assert (session.created_at, session.last_used_at) == (T0, T0)
    assert session.expires_at == T0 + timedelta(days=30)
    assert session.previous_token_hash is None and session.retired_token_hashes == ()


def test_every_sign_in_opens_a_session_of_its_own() -> None:
    user, first, _ = signed_in()
    second, _ = user.start_session(T0 + SECOND, POLICY)
    assert first.session_id != second.session_id
    assert user.sessions == (first, second)


def test_the_eleventh_session_evicts_the_oldest() -> None:
    user = new_user()
    opened = [user.start_session(T0 + i * SECOND, POLICY)[0] for i in range(10)]
    events_after(user)

    eleventh, _ = user.start_session(T0 + 10 * SECOND, POLICY)

    assert len(user.sessions) == POLICY.max_sessions == 10
    assert [s.session_id for s in user.sessions] == [s.session_id for s in opened[1:]] + [
        eleventh.session_id
    ]
    at = T0 + 10 * SECOND
    assert events_after(user) == [
        revoked(user, opened[0].session_id, SessionEndReason.EVICTED, at),
        started(user, eleventh, at),
    ]


def test_a_lowered_limit_evicts_as_many_of_the_oldest_as_it_takes() -> None:
    user = new_user()
    opened = [user.start_session(T0 + i * SECOND, POLICY)[0] for i in range(4)]
    events_after(user)
    at = T0 + timedelta(minutes=1)

    newest, _ = user.start_session(at, SessionPolicy(max_sessions=2))

    assert user.sessions == (opened[3], newest)
    assert events_after(user) == [
        *(revoked(user, s.session_id, SessionEndReason.EVICTED, at) for s in opened[:3]),
        started(user, newest, at),
    ]


def test_a_new_session_drops_the_expired_ones_as_expired() -> None:
    user, old, _ = signed_in()
    events_after(user)
    at = T0 + timedelta(days=8)

    newer, _ = user.start_session(at, POLICY)

    assert user.sessions == (newer,)
    assert events_after(user) == [
        revoked(user, old.session_id, SessionEndReason.EXPIRED, at),
        started(user, newer, at),
    ]


def test_refreshing_with_the_current_token_rotates_it_within_the_same_session() -> None:
    user, session, token = signed_in()
    events_after(user)
    at = T0 + timedelta(minutes=5)

    outcome = user.refresh_session(lookup(token), at, POLICY)

    assert events_after(user) == []  # a rotation is no event
    assert outcome.result is RefreshResult.ROTATED
    assert outcome.token is not None and outcome.session is not None
    assert outcome.token.value != token.value
    rotated = user.sessions[0]
    assert outcome.session == rotated
    assert rotated.session_id == session.session_id
    assert rotated.token_hash == outcome.token.token_hash
    assert rotated.previous_token_hash == token.token_hash
    assert rotated.rotated_at == rotated.last_used_at == at
    assert rotated.expires_at == session.expires_at  # rotation never extends the absolute limit


def test_the_previous_token_within_the_grace_is_a_lost_race_and_changes_nothing() -> None:
    user, _, token = signed_in()
    newer = rotate(user, token, SECOND)
    before = user.sessions

    events_after(user)
    outcome = user.refresh_session(lookup(token), T0 + SECOND + POLICY.reuse_grace, POLICY)

    assert outcome.result is RefreshResult.RACED
    assert outcome.token is None
    assert user.sessions == before
    assert events_after(user) == []
    assert user.holds_token(newer.token_hash)


def test_the_previous_token_after_the_grace_ends_the_session_as_reused() -> None:
    user, session, token = signed_in()
    newer = rotate(user, token, SECOND)
    after_grace = T0 + SECOND + POLICY.reuse_grace + timedelta(microseconds=1)
    events_after(user)

    outcome = user.refresh_session(lookup(token), after_grace, POLICY)

    assert outcome.result is RefreshResult.REUSED
    assert user.sessions == ()
    assert not user.holds_token(newer.token_hash)
    assert events_after(user) == [
        revoked(user, session.session_id, SessionEndReason.TOKEN_REUSED, after_grace)
    ]


def test_a_retired_token_ends_the_session_even_within_the_grace() -> None:
    user, _, first = signed_in()
    second = rotate(user, first, SECOND)
    rotate(user, second, 2 * SECOND)

    outcome = user.refresh_session(lookup(first), T0 + 2 * SECOND, POLICY)

    assert outcome.result is RefreshResult.REUSED
    assert user.sessions == ()


def test_reuse_ends_only_the_session_it_belongs_to() -> None:
    user, _, token = signed_in()
    other, _ = user.start_session(T0, POLICY)
    rotate(user, token, SECOND)

    user.refresh_session(lookup(token), T0 + timedelta(minutes=1), POLICY)

    assert user.sessions == (other,)


def test_a_session_remembers_only_the_latest_retired_tokens() -> None:
    user, _, token = signed_in()
    issued = [token]
    for i in range(1, 9):
        issued.append(rotate(user, issued[-1], i * SECOND))

    session = user.sessions[0]
    kept = POLICY.retired_tokens_kept
    assert session.retired_token_hashes == tuple(t.token_hash for t in issued[-2 - kept : -2])
    assert session.previous_token_hash == issued[-2].token_hash


def test_an_unknown_token_changes_nothing() -> None:
    user, _, _ = signed_in()
    before = user.sessions

    events_after(user)
    outcome = user.refresh_session(lookup(issue_token(user.id)), T0, POLICY)

    assert outcome.result is RefreshResult.UNKNOWN
    assert user.sessions == before
    assert events_after(user) == []


def test_a_session_past_its_absolute_lifetime_expires_and_ends_even_if_in_use() -> None:
    user, session, token = signed_in()
    for day in range(6, 30, 6):
        token = rotate(user, token, timedelta(days=day))
    events_after(user)
    at = T0 + POLICY.absolute_lifetime

    outcome = user.refresh_session(lookup(token), at, POLICY)

    assert outcome.result is RefreshResult.EXPIRED
    assert user.sessions == ()
    assert events_after(user) == [revoked(user, session.session_id, SessionEndReason.EXPIRED, at)]


def test_a_session_used_within_its_idle_lifetime_stays_alive() -> None:
    user, _, token = signed_in()
    token = rotate(user, token, timedelta(days=6))
    rotate(user, token, timedelta(days=12))
    assert len(user.sessions) == 1


def test_a_session_idle_for_its_idle_lifetime_expires_and_ends() -> None:
    user, session, token = signed_in()
    events_after(user)
    at = T0 + POLICY.idle_lifetime

    outcome = user.refresh_session(lookup(token), at, POLICY)

    assert outcome.result is RefreshResult.EXPIRED
    assert user.sessions == ()
    assert events_after(user) == [revoked(user, session.session_id, SessionEndReason.EXPIRED, at)]


def test_ending_the_session_holding_a_token_works_with_its_previous_token_too() -> None:
    user, session, token = signed_in()
    other, _ = user.start_session(T0, POLICY)
    rotate(user, token, SECOND)
    events_after(user)
    at = T0 + timedelta(minutes=1)

    assert user.end_session_holding(token.token_hash, at)
    assert user.sessions == (other,)
    assert events_after(user) == [revoked(user, session.session_id, SessionEndReason.LOGOUT, at)]
    assert not user.end_session_holding(token.token_hash, at)
    assert events_after(user) == []


def test_ending_every_session_can_keep_one_and_records_each_with_its_reason() -> None:
    user, kept, _ = signed_in()
    second, _ = user.start_session(T0, POLICY)
    third, _ = user.start_session(T0, POLICY)
    events_after(user)
    at = T0 + timedelta(minutes=1)

    ended = user.end_sessions(
        at, SessionEndReason.PASSWORD_CHANGED, keep_session_id=kept.session_id
    )

    assert ended == 2
    assert user.sessions == (kept,)
    assert events_after(user) == [
        revoked(user, second.session_id, SessionEndReason.PASSWORD_CHANGED, at),
        revoked(user, third.session_id, SessionEndReason.PASSWORD_CHANGED, at),
    ]
    assert user.end_sessions(at) == 1
    sessions: tuple[Session, ...] = user.sessions  # not the (kept,) that mypy keeps from above
    assert sessions == ()
    assert events_after(user) == [revoked(user, kept.session_id, SessionEndReason.LOGOUT_ALL, at)]
    assert user.end_sessions(at) == 0
    assert events_after(user) == []


def test_a_user_holds_its_current_previous_and_retired_tokens_only() -> None:
    user, _, first = signed_in()
    second = rotate(user, first, SECOND)
    third = rotate(user, second, 2 * SECOND)

    assert all(user.holds_token(t.token_hash) for t in (first, second, third))
    assert not user.holds_token(issue_token(user.id).token_hash)
    assert not user.holds_token(third.value)  # a raw token is never what is stored
