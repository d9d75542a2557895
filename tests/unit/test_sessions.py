"""Sessions on the User aggregate: start, rotate, tolerate a lost race, detect reuse, expire."""

from __future__ import annotations

from datetime import timedelta

from domain.policies import SessionPolicy
from domain.tokens import IssuedToken, TokenLookup, issue_token, parse_token
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


def rotate(user: User, token: IssuedToken, at: timedelta) -> IssuedToken:
    outcome = user.refresh_session(lookup(token), T0 + at, POLICY)
    assert outcome.result is RefreshResult.ROTATED and outcome.token is not None
    return outcome.token


def test_a_new_session_keeps_only_the_hash_of_a_token_naming_the_user() -> None:
    user, session, token = signed_in()

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


def test_the_eleventh_session_ends_the_oldest() -> None:
    user = new_user()
    started = [user.start_session(T0 + i * SECOND, POLICY)[0] for i in range(11)]

    assert len(user.sessions) == POLICY.max_sessions == 10
    assert [s.session_id for s in user.sessions] == [s.session_id for s in started[1:]]


def test_a_new_session_drops_the_expired_ones() -> None:
    user, _, _ = signed_in()
    newer, _ = user.start_session(T0 + timedelta(days=8), POLICY)
    assert user.sessions == (newer,)


def test_refreshing_with_the_current_token_rotates_it_within_the_same_session() -> None:
    user, session, token = signed_in()
    at = T0 + timedelta(minutes=5)

    outcome = user.refresh_session(lookup(token), at, POLICY)

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

    outcome = user.refresh_session(lookup(token), T0 + SECOND + POLICY.reuse_grace, POLICY)

    assert outcome.result is RefreshResult.RACED
    assert outcome.token is None
    assert user.sessions == before
    assert user.holds_token(newer.token_hash)


def test_the_previous_token_after_the_grace_ends_the_session() -> None:
    user, _, token = signed_in()
    newer = rotate(user, token, SECOND)
    after_grace = T0 + SECOND + POLICY.reuse_grace + timedelta(microseconds=1)

    outcome = user.refresh_session(lookup(token), after_grace, POLICY)

    assert outcome.result is RefreshResult.REUSED
    assert user.sessions == ()
    assert not user.holds_token(newer.token_hash)


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

    outcome = user.refresh_session(lookup(issue_token(user.id)), T0, POLICY)

    assert outcome.result is RefreshResult.UNKNOWN
    assert user.sessions == before


def test_a_session_past_its_absolute_lifetime_expires_and_ends_even_if_in_use() -> None:
    user, _, token = signed_in()
    for day in range(6, 30, 6):
        token = rotate(user, token, timedelta(days=day))

    outcome = user.refresh_session(lookup(token), T0 + POLICY.absolute_lifetime, POLICY)

    assert outcome.result is RefreshResult.EXPIRED
    assert user.sessions == ()


def test_a_session_used_within_its_idle_lifetime_stays_alive() -> None:
    user, _, token = signed_in()
    token = rotate(user, token, timedelta(days=6))
    rotate(user, token, timedelta(days=12))
    assert len(user.sessions) == 1


def test_a_session_idle_for_its_idle_lifetime_expires_and_ends() -> None:
    user, _, token = signed_in()

    outcome = user.refresh_session(lookup(token), T0 + POLICY.idle_lifetime, POLICY)

    assert outcome.result is RefreshResult.EXPIRED
    assert user.sessions == ()


def test_ending_the_session_holding_a_token_works_with_its_previous_token_too() -> None:
    user, _, token = signed_in()
    other, _ = user.start_session(T0, POLICY)
    rotate(user, token, SECOND)

    assert user.end_session_holding(token.token_hash)
    assert user.sessions == (other,)
    assert not user.end_session_holding(token.token_hash)


def test_ending_every_session_can_keep_one() -> None:
    user, kept, _ = signed_in()
    user.start_session(T0, POLICY)
    user.start_session(T0, POLICY)

    assert user.end_sessions(keep_session_id=kept.session_id) == 2
    assert user.sessions == (kept,)
    assert user.end_sessions() == 1
    assert user.sessions == ()


def test_a_user_holds_its_current_previous_and_retired_tokens_only() -> None:
    user, _, first = signed_in()
    second = rotate(user, first, SECOND)
    third = rotate(user, second, 2 * SECOND)

    assert all(user.holds_token(t.token_hash) for t in (first, second, third))
    assert not user.holds_token(issue_token(user.id).token_hash)
    assert not user.holds_token(third.value)  # a raw token is never what is stored
