"""Sign-in with a second factor: the right password of a user with TOTP opens no session but
issues a challenge; CompleteSignIn with a TOTP or a recovery code opens it (amr pwd+otp). Wrong
codes count toward the lock-out and the challenge's limit; a challenge that is not usable is
refused and changes nothing; bad requests change nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from domain.errors import (
    AuthenticationFailed,
    InvalidArgument,
    InvalidSecondFactorCode,
    InvalidSignInChallenge,
)
from domain.events import RecoveryCodeUsed, SessionStarted
from domain.policies import AuthPolicy, LockoutPolicy
from domain.second_factors import TotpFactor, issue_recovery_codes
from domain.sign_in_challenges import MAX_SIGN_IN_CHALLENGES, SignInFactor
from domain.use_cases.second_factor_sign_in import Proof, ProofKind, complete_sign_in
from domain.use_cases.sessions import SessionTokens, SignInChallenged, authenticate
from domain.user import User
from domain.values import ClientDetails
from tests.builders import T0, new_user, state_of
from tests.fakes import FakeTotpCodes
from tests.unit.domain.use_cases.auth_kit import EMAIL, PASSWORD, WRONG_PASSWORD, AuthKit

CODES = FakeTotpCodes()
STEP = timedelta(seconds=30)


class Kit(AuthKit):
    """AuthKit with a user who has TOTP and recovery codes."""

    recovery: tuple[str, ...] = ()

    async def add_user_with_totp(self) -> User:
        user = await self.add_user()
        async with self.uow() as uow:
            stored = await uow.users.require(user.id)
            stored.totp = TotpFactor(CODES.new_secret().sealed, confirmed_at=T0)
            issued = issue_recovery_codes(stored.id.value)
            stored.recovery_code_hashes = issued.hashes
            self.recovery = issued.codes
            await uow.users.update(stored)
            await uow.commit()
        return stored

    def code(self, user: User, shift: int = 0) -> str:
        totp = self.stored(user).totp
        assert totp is not None
        return CODES.code_at(totp.sealed_secret, self.clock() + shift * STEP)

    async def begin(self, password: str = PASSWORD) -> SessionTokens | SignInChallenged:
        return await authenticate(
            self.uow(), self.hasher, self.issuer, self.clock, self.policy, self.notices,
            email=EMAIL, password=password,
        )  # fmt: skip

    async def challenge(self) -> str:
        outcome = await self.begin()
        assert isinstance(outcome, SignInChallenged)
        return outcome.challenge.token

    async def complete(
        self,
        token: str,
        code: str | None,
        kind: ProofKind = ProofKind.TOTP_CODE,
        **client: str,
    ) -> SessionTokens:
        return await complete_sign_in(
            self.uow(), self.issuer, self.clock, self.policy, self.notices, CODES,
            challenge_token=token, proof=None if code is None else Proof(kind, code), **client,
        )  # fmt: skip


@pytest.fixture
def kit() -> Kit:
    return Kit()


async def test_a_user_without_a_second_factor_signs_in_as_before(kit: Kit) -> None:
    await kit.add_user()

    outcome = await kit.begin()

    assert isinstance(outcome, SessionTokens)
    assert kit.issuer.amr_claims == [("pwd",)]
    assert kit.store.session_reads == 1 and kit.store.commits == 2  # add_user, sign-in


async def test_the_right_password_of_a_user_with_totp_issues_a_challenge_and_no_session(
    kit: Kit,
) -> None:
    user = await kit.add_user_with_totp()
    with pytest.raises(AuthenticationFailed):
        await kit.begin(WRONG_PASSWORD)
    reads, commits = kit.store.session_reads, kit.store.commits

    outcome = await kit.begin()

    assert isinstance(outcome, SignInChallenged)
    issued = outcome.challenge
    assert issued.factors == (SignInFactor.TOTP, SignInFactor.RECOVERY_CODE)
    assert issued.expires_at == (T0 + timedelta(minutes=5)).replace(microsecond=0)
    assert issued.webauthn_challenge == b""  # no passkey to answer one: no bytes on the item
    assert kit.store.session_reads == reads and kit.store.commits == commits + 1
    assert kit.sessions(user) == () and kit.issuer.issued == 0
    stored = kit.stored(user)
    assert stored.failed_logins == 1, "the password alone resets no failure count"
    assert len(stored.sign_in_challenges) == 1
    assert issued.token not in repr(state_of(stored)) and issued.token not in repr(outcome)
    assert kit.new_events(user) == []


async def test_a_totp_code_completes_the_sign_in_with_amr_pwd_otp(kit: Kit) -> None:
    user = await kit.add_user_with_totp()
    token = await kit.challenge()
    with pytest.raises(AuthenticationFailed):
        await kit.begin(WRONG_PASSWORD)
    kit.later(seconds=40)

    tokens = await kit.complete(token, kit.code(user), user_agent="Firefox", device_label="desk")

    assert kit.issuer.amr_claims == [("pwd", "otp")]
    (session,) = kit.sessions(user)
    assert session.session_id == tokens.session_id and session.amr == ("pwd", "otp")
    assert session.client == ClientDetails("Firefox", "", "desk")
    stored = kit.stored(user)
    assert stored.sign_in_challenges == () and stored.failed_logins == 0
    assert stored.totp is not None and stored.totp.last_used_step is not None
    assert [type(e) for e in kit.new_events(user)] == [SessionStarted]
    refreshed = await kit.refresh(tokens.refresh_token)
    assert refreshed.session_id == tokens.session_id
    assert kit.issuer.amr_claims[-1] == ("pwd", "otp")


async def test_a_challenge_is_single_use(kit: Kit) -> None:
    user = await kit.add_user_with_totp()
    token = await kit.challenge()
    await kit.complete(token, kit.code(user))
    before = state_of(kit.stored(user))

    with pytest.raises(InvalidSignInChallenge):
        await kit.complete(token, kit.code(user, 1))

    assert state_of(kit.stored(user)) == before


async def test_a_replayed_totp_code_is_refused_and_counted(kit: Kit) -> None:
    user = await kit.add_user_with_totp()
    code = kit.code(user)
    await kit.complete(await kit.challenge(), code)
    token = await kit.challenge()

    with pytest.raises(InvalidSecondFactorCode):
        await kit.complete(token, code)

    stored = kit.stored(user)
    assert stored.failed_logins == 1 and stored.sign_in_challenges[0].wrong_codes == 1
    assert len(kit.sessions(user)) == 1


async def test_a_recovery_code_completes_the_sign_in_once(kit: Kit) -> None:
    user = await kit.add_user_with_totp()
    code = kit.recovery[3]

    await kit.complete(await kit.challenge(), code.upper(), ProofKind.RECOVERY_CODE)

    assert kit.issuer.amr_claims == [("pwd", "otp")]
    used, started = kit.new_events(user)
    assert used == RecoveryCodeUsed(user.id.value, T0, remaining=9)
    assert isinstance(started, SessionStarted)
    assert len(kit.stored(user).recovery_code_hashes) == 9
    with pytest.raises(InvalidSecondFactorCode):
        await kit.complete(await kit.challenge(), code, ProofKind.RECOVERY_CODE)


async def test_a_challenge_dies_after_its_wrong_codes_even_for_the_right_one(kit: Kit) -> None:
    user = await kit.add_user_with_totp()
    token = await kit.challenge()
    for _ in range(3):
        with pytest.raises(InvalidSecondFactorCode):
            await kit.complete(token, "000000" if kit.code(user) != "000000" else "111111")
    stored = kit.stored(user)
    assert stored.sign_in_challenges == () and stored.failed_logins == 3
    before = state_of(stored)

    with pytest.raises(InvalidSignInChallenge):
        await kit.complete(token, kit.code(user))

    assert state_of(kit.stored(user)) == before and kit.sessions(user) == ()


async def test_wrong_codes_count_toward_the_lock_out_and_its_notice(kit: Kit) -> None:
    kit.policy = AuthPolicy(lockout=LockoutPolicy(max_failures=5))
    user = await kit.add_user_with_totp()
    for _ in range(2):
        with pytest.raises(AuthenticationFailed):
            await kit.begin(WRONG_PASSWORD)
    token = await kit.challenge()
    wrong = "123456" if kit.code(user) != "123456" else "654321"
    for _ in range(2):
        with pytest.raises(InvalidSecondFactorCode):
            await kit.complete(token, wrong)
    assert kit.stored(user).locked_until is None
    with pytest.raises(InvalidSecondFactorCode):
        await kit.complete(token, wrong)

    assert kit.stored(user).locked_until == T0 + timedelta(seconds=1)
    await kit.after_reply.run_all()
    assert len(kit.notifier.lock_notices) == 1


async def test_during_a_wait_the_right_code_is_refused_counted_and_the_challenge_kept(
    kit: Kit,
) -> None:
    kit.policy = AuthPolicy(lockout=LockoutPolicy(max_failures=1))
    user = await kit.add_user_with_totp()
    token = await kit.challenge()
    async with kit.uow() as uow:  # a wrong password elsewhere began a wait meanwhile
        stored = await uow.users.require(user.id)
        stored.record_failed_login(kit.clock(), kit.policy.lockout)
        await uow.users.update(stored)
        await uow.commit()

    with pytest.raises(InvalidSecondFactorCode):
        await kit.complete(token, kit.code(user))

    stored = kit.stored(user)
    assert stored.failed_logins == 2 and stored.sign_in_challenges[0].wrong_codes == 0
    assert stored.totp is not None and stored.totp.last_used_step is None
    kit.later(seconds=2)
    await kit.complete(token, kit.code(user))


async def test_an_expired_challenge_is_refused_and_changes_nothing(kit: Kit) -> None:
    user = await kit.add_user_with_totp()
    token = await kit.challenge()
    kit.later(seconds=300)
    before = state_of(kit.stored(user))

    with pytest.raises(InvalidSignInChallenge):
        await kit.complete(token, kit.code(user))

    assert state_of(kit.stored(user)) == before


async def test_another_users_challenge_is_refused_and_changes_nothing(kit: Kit) -> None:
    user = await kit.add_user_with_totp()
    token = await kit.challenge()
    other = await kit.add_user("grace@example.com")
    before = state_of(kit.stored(user)), state_of(kit.stored(other))
    forged = other.id.value + token[len(user.id.value) :]

    for presented in (forged, user.id.value + ".x" + token[len(user.id.value) + 2 :]):
        with pytest.raises(InvalidSignInChallenge):
            await kit.complete(presented, kit.code(user))

    assert (state_of(kit.stored(user)), state_of(kit.stored(other))) == before


@pytest.mark.parametrize(
    ("token", "code", "client", "fields"),
    [
        ("", "123456", {}, {"challenge_token"}),
        ("not-a-token", "123456", {}, {"challenge_token"}),
        (None, None, {}, {"totp_code"}),
        (None, "  ", {}, {"totp_code"}),
        (None, "1" * 65, {}, {"totp_code"}),
        (None, "123456", {"ip_address": "nope"}, {"client.ip_address"}),
    ],
)
async def test_a_malformed_request_is_invalid_and_changes_nothing(
    kit: Kit, token: str | None, code: str | None, client: dict[str, str], fields: set[str]
) -> None:
    user = await kit.add_user_with_totp()
    real = await kit.challenge()
    before = state_of(kit.stored(user))

    with pytest.raises(InvalidArgument) as refused:
        await kit.complete(real if token is None else token, code, ProofKind.TOTP_CODE, **client)

    assert {v.field for v in refused.value.violations} == fields
    assert state_of(kit.stored(user)) == before


async def test_a_user_holds_a_bounded_number_of_challenges_the_oldest_dropped(kit: Kit) -> None:
    user = await kit.add_user_with_totp()
    first = await kit.challenge()
    for _ in range(MAX_SIGN_IN_CHALLENGES):
        last = await kit.challenge()
    assert len(kit.stored(user).sign_in_challenges) == MAX_SIGN_IN_CHALLENGES
    with pytest.raises(InvalidSignInChallenge):
        await kit.complete(first, kit.code(user))
    kit.later(seconds=299)
    fresh = await kit.challenge()
    kit.later(seconds=2)
    assert len(kit.stored(user).sign_in_challenges) == MAX_SIGN_IN_CHALLENGES

    await kit.complete(fresh, kit.code(user))

    assert kit.stored(user).sign_in_challenges == (), "the expired ones went with it"
    with pytest.raises(InvalidSignInChallenge):
        await kit.complete(last, kit.code(user, 1))


async def test_a_password_change_voids_the_waiting_challenges(kit: Kit) -> None:
    user = await kit.add_user_with_totp()
    token = await kit.challenge()
    async with kit.uow() as uow:
        stored = await uow.users.require(user.id)
        stored.change_password("fake$new", kit.clock())
        await uow.users.update(stored)
        await uow.commit()

    with pytest.raises(InvalidSignInChallenge):
        await kit.complete(token, kit.code(user))


async def test_of_concurrent_completions_of_one_challenge_exactly_one_wins(kit: Kit) -> None:
    user = await kit.add_user_with_totp()
    token = await kit.challenge()
    codes = [kit.code(user, shift) for shift in (-1, 0, 1)]

    results = await asyncio.gather(
        *(kit.complete(token, code) for code in codes), return_exceptions=True
    )

    won = [r for r in results if isinstance(r, SessionTokens)]
    assert len(won) == 1, results
    assert all(isinstance(r, InvalidSignInChallenge) for r in results if r not in won)
    assert len(kit.sessions(user)) == 1


def test_a_stored_or_issued_challenge_shows_no_secret_in_its_repr() -> None:
    user = new_user()
    issued = user.issue_sign_in_challenge(T0, timedelta(minutes=5))
    (stored,) = user.sign_in_challenges

    for shown in (repr(issued), repr(stored), repr(user)):
        assert issued.token not in shown and stored.token_hash not in shown
        assert str(issued.webauthn_challenge) not in shown
