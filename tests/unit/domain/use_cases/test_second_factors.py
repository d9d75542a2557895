"""Second-factor use cases over the in-memory fakes: enrollment, recovery codes, disabling and the
administrator's reset; every refusal changes nothing but a counted failure."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio

from domain.errors import (
    AccountDisabled,
    InvalidArgument,
    InvalidSecondFactorCode,
    NoTotpEnrollmentPending,
    TotpAlreadyEnabled,
    TotpNotEnabled,
    TotpUnavailable,
)
from domain.events import (
    AccountLocked,
    RecoveryCodesRegenerated,
    RecoveryCodeUsed,
    SecondFactorAdded,
    SecondFactorKind,
    SecondFactorRemoved,
    SecondFactorsReset,
)
from domain.ports import SecondFactorNotices
from domain.second_factors import RECOVERY_CODE_COUNT, SealedSecret
from domain.use_cases import second_factors
from domain.use_cases.passwords import request_password_reset, reset_password
from domain.use_cases.second_factors import SecondFactorDeps
from domain.user import User, UserStatus
from tests.builders import state_of
from tests.fakes import FakeTotpCodes
from tests.unit.domain.use_cases.auth_kit import EMAIL, AuthKit

CODES = FakeTotpCodes()
STEP = timedelta(seconds=30)


@pytest_asyncio.fixture
async def kit() -> AsyncIterator[AuthKit]:
    world = AuthKit()
    yield world
    await world.after_reply.run_all()  # the mail a test had no need to look at


def deps(kit: AuthKit, codes: FakeTotpCodes | None = CODES) -> SecondFactorDeps:
    return SecondFactorDeps(
        codes=codes,
        lock_notices=kit.notices,
        notices=SecondFactorNotices(kit.notifier, kit.after_reply),
    )


async def begin(kit: AuthKit, user: User) -> SealedSecret:
    await second_factors.begin_totp_enrollment(
        kit.uow(), kit.clock, deps(kit), user_id=user.id.value
    )
    pending = kit.stored(user).pending_totp
    assert pending is not None
    return pending.sealed_secret


async def confirm(kit: AuthKit, user: User, code: str) -> tuple[str, ...]:
    confirmed = await second_factors.confirm_totp_enrollment(
        kit.uow(), kit.clock, deps(kit), user_id=user.id.value, code=code
    )
    return confirmed.recovery_codes


async def enrolled(kit: AuthKit) -> tuple[User, SealedSecret, tuple[str, ...]]:
    """A user with TOTP on: the user, its sealed secret and its recovery codes. The clock moves
    on a step, so that the next code is a fresh one."""
    user = await kit.add_user()
    sealed = await begin(kit, user)
    recovery = await confirm(kit, user, CODES.code_at(sealed, kit.clock()))
    kit.later(seconds=30)
    kit.new_events(user)
    await kit.after_reply.run_all()
    kit.notifier.second_factor_notices.clear()
    return user, sealed, recovery


def now_code(kit: AuthKit, sealed: SealedSecret) -> str:
    return CODES.code_at(sealed, kit.clock())


async def test_enrollment_returns_the_secret_and_an_otpauth_uri_and_waits_for_a_code(
    kit: AuthKit,
) -> None:
    user = await kit.add_user()

    enrollment = await second_factors.begin_totp_enrollment(
        kit.uow(), kit.clock, deps(kit), user_id=user.id.value
    )

    stored = kit.stored(user)
    assert stored.pending_totp is not None and stored.totp is None
    assert CODES.unseal(stored.pending_totp.sealed_secret) == enrollment.secret
    assert enrollment.uri.startswith("otpauth://totp/") and enrollment.secret in enrollment.uri
    assert enrollment.expires_at == kit.clock() + timedelta(minutes=15)
    assert kit.new_events(user) == [], "nothing is on until confirmed"
    assert enrollment.secret not in repr(enrollment)


async def test_a_valid_code_turns_totp_on_with_ten_recovery_codes_and_mails_the_owner(
    kit: AuthKit,
) -> None:
    user = await kit.add_user()
    sealed = await begin(kit, user)

    recovery = await confirm(kit, user, now_code(kit, sealed))

    stored = kit.stored(user)
    assert stored.totp is not None and stored.pending_totp is None
    assert stored.second_factor_kinds() == {SecondFactorKind.TOTP}
    assert len(recovery) == RECOVERY_CODE_COUNT == stored.recovery_codes_remaining
    assert stored.version == 2, "a change callers see"
    assert kit.new_events(user) == [
        SecondFactorAdded(user.id.value, kit.clock(), SecondFactorKind.TOTP, "totp")
    ]
    assert kit.notifier.second_factor_notices == [], "mailed after the reply"
    await kit.after_reply.run_all()
    (notice,) = kit.notifier.second_factor_notices
    assert (notice.to, notice.kind, notice.added) == (EMAIL, SecondFactorKind.TOTP, True)


async def test_the_confirming_code_cannot_be_used_again(kit: AuthKit) -> None:
    user = await kit.add_user()
    sealed = await begin(kit, user)
    code = now_code(kit, sealed)
    await confirm(kit, user, code)
    stored = kit.stored(user)

    with pytest.raises(InvalidSecondFactorCode):
        stored.use_totp_code(code, kit.clock(), CODES)


@pytest.mark.parametrize(
    "code", ["000000", "12345", "abcdef", "1234567", "\uff11\uff12\uff13\uff14\uff15\uff16"]
)
async def test_a_wrong_or_malformed_code_confirms_nothing(kit: AuthKit, code: str) -> None:
    user = await kit.add_user()
    sealed = await begin(kit, user)
    if code == now_code(kit, sealed):
        pytest.skip("the wrong code is right by chance")
    before = state_of(kit.stored(user))

    with pytest.raises(InvalidSecondFactorCode):
        await confirm(kit, user, code)

    assert state_of(kit.stored(user)) == before


@pytest.mark.parametrize("code", ["", "   ", "1" * 65])
async def test_an_empty_or_over_long_code_is_invalid_input(kit: AuthKit, code: str) -> None:
    user = await kit.add_user()
    await begin(kit, user)

    with pytest.raises(InvalidArgument) as raised:
        await confirm(kit, user, code)
    assert [v.field for v in raised.value.violations] == ["code"]


async def test_a_code_of_the_previous_enrollment_does_not_confirm_the_new_one(
    kit: AuthKit,
) -> None:
    user = await kit.add_user()
    first = await begin(kit, user)
    second = await begin(kit, user)
    old_code = now_code(kit, first)
    if old_code == now_code(kit, second):
        pytest.skip("both secrets give the same code now, by chance")

    with pytest.raises(InvalidSecondFactorCode):
        await confirm(kit, user, old_code)
    await confirm(kit, user, now_code(kit, second))


async def test_an_expired_or_missing_enrollment_is_a_failed_precondition(kit: AuthKit) -> None:
    user = await kit.add_user()
    with pytest.raises(NoTotpEnrollmentPending):
        await confirm(kit, user, "123456")
    sealed = await begin(kit, user)
    kit.later(minutes=15)
    with pytest.raises(NoTotpEnrollmentPending):
        await confirm(kit, user, now_code(kit, sealed))


async def test_enrolling_again_while_totp_is_on_is_refused(kit: AuthKit) -> None:
    user, _, _ = await enrolled(kit)
    before = state_of(kit.stored(user))

    with pytest.raises(TotpAlreadyEnabled):
        await begin(kit, user)

    assert state_of(kit.stored(user)) == before


async def test_a_disabled_account_cannot_enroll(kit: AuthKit) -> None:
    user = await kit.add_user()
    kit.store.users[user.id.value].status = UserStatus.DISABLED
    with pytest.raises(AccountDisabled):
        await begin(kit, user)


async def test_without_totp_codes_the_service_offers_no_totp(kit: AuthKit) -> None:
    user = await kit.add_user()
    with pytest.raises(TotpUnavailable):
        await second_factors.begin_totp_enrollment(
            kit.uow(), kit.clock, deps(kit, None), user_id=user.id.value
        )


async def regenerate(kit: AuthKit, user: User, code: str) -> tuple[str, ...]:
    issued = await second_factors.regenerate_recovery_codes(
        kit.uow(), kit.clock, kit.policy, deps(kit), user_id=user.id.value, totp_code=code
    )
    return issued.recovery_codes


async def test_a_disabled_account_renews_and_turns_off_nothing_with_its_codes(
    kit: AuthKit,
) -> None:
    # An administrator disabled the account (say, taken over); its access tokens live on for
    # their lifetime: with them and a code, fresh recovery codes (for after a re-enable) or a
    # factor turned off are refused, no code spent. The administrator's reset still works.
    user, sealed, recovery = await enrolled(kit)
    kit.store.users[user.id.value].status = UserStatus.DISABLED
    before = state_of(kit.stored(user))

    with pytest.raises(AccountDisabled):
        await regenerate(kit, user, now_code(kit, sealed))
    with pytest.raises(AccountDisabled):
        await disable(kit, user, recovery_code=recovery[0])
    with pytest.raises(AccountDisabled):
        await disable(kit, user, totp_code=now_code(kit, sealed))

    assert state_of(kit.stored(user)) == before
    assert (await disable(kit, user, without_code=True)).totp is None


async def test_regenerated_codes_replace_the_old_ones(kit: AuthKit) -> None:
    user, sealed, old = await enrolled(kit)

    new = await regenerate(kit, user, now_code(kit, sealed))

    stored = kit.stored(user)
    assert len(new) == RECOVERY_CODE_COUNT and not set(new) & set(old)
    assert kit.new_events(user) == [RecoveryCodesRegenerated(user.id.value, kit.clock(), 10)]
    with pytest.raises(InvalidSecondFactorCode):
        stored.use_recovery_code(old[0], kit.clock())
    stored.use_recovery_code(new[0], kit.clock())


async def test_regenerating_needs_a_current_code_and_a_wrong_one_counts_as_a_failure(
    kit: AuthKit,
) -> None:
    user, sealed, _ = await enrolled(kit)
    kit.later(minutes=5)
    stale = CODES.code_at(sealed, kit.clock() - timedelta(minutes=5))
    before = kit.stored(user).recovery_code_hashes

    with pytest.raises(InvalidSecondFactorCode):
        await regenerate(kit, user, stale)

    assert kit.stored(user).recovery_code_hashes == before
    assert kit.stored(user).failed_logins == 1


async def test_wrong_codes_lock_and_then_even_the_right_code_is_refused(kit: AuthKit) -> None:
    user, sealed, _ = await enrolled(kit)
    for _ in range(kit.policy.lockout.max_failures):
        with pytest.raises(InvalidSecondFactorCode):
            await regenerate(kit, user, "000000" if now_code(kit, sealed) != "000000" else "111111")
    await kit.after_reply.run_all()
    assert any(isinstance(e, AccountLocked) for e in kit.events(user))

    with pytest.raises(InvalidSecondFactorCode):
        await regenerate(kit, user, now_code(kit, sealed))


async def disable(kit: AuthKit, user: User, **proof: object) -> User:
    return await second_factors.disable_totp(
        kit.uow(),
        kit.clock,
        kit.policy,
        deps(kit),
        user_id=user.id.value,
        **proof,  # type: ignore[arg-type]
    )


async def test_a_current_code_disables_totp_and_the_recovery_codes_go_too(kit: AuthKit) -> None:
    user, sealed, _ = await enrolled(kit)

    disabled = await disable(kit, user, totp_code=now_code(kit, sealed))

    stored = kit.stored(user)
    assert stored.totp is None and stored.recovery_code_hashes == ()
    assert disabled.second_factor_kinds() == frozenset()
    assert kit.new_events(user) == [
        SecondFactorRemoved(user.id.value, kit.clock(), SecondFactorKind.TOTP, "totp")
    ]
    await kit.after_reply.run_all()
    (notice,) = kit.notifier.second_factor_notices
    assert (notice.kind, notice.added) == (SecondFactorKind.TOTP, False)


async def test_a_recovery_code_disables_totp_and_is_spent(kit: AuthKit) -> None:
    user, _, recovery = await enrolled(kit)

    await disable(kit, user, recovery_code=recovery[4].upper().replace("-", " "))

    assert kit.stored(user).totp is None
    assert [type(e) for e in kit.new_events(user)] == [RecoveryCodeUsed, SecondFactorRemoved]


async def test_an_administrator_disables_totp_without_a_code(kit: AuthKit) -> None:
    user, _, _ = await enrolled(kit)
    await disable(kit, user, without_code=True)
    assert kit.stored(user).totp is None


@pytest.mark.parametrize(
    "proof", [{"totp_code": "000000"}, {"recovery_code": "0000-0000-0000-0000"}]
)
async def test_a_wrong_code_disables_nothing(kit: AuthKit, proof: dict[str, str]) -> None:
    user, sealed, _ = await enrolled(kit)
    if proof.get("totp_code") == now_code(kit, sealed):
        pytest.skip("right by chance")

    with pytest.raises(InvalidSecondFactorCode):
        await disable(kit, user, **proof)

    stored = kit.stored(user)
    assert stored.totp is not None and stored.recovery_codes_remaining == 10
    assert kit.new_events(user) == []


async def test_disabling_without_any_proof_is_invalid_input(kit: AuthKit) -> None:
    user, _, _ = await enrolled(kit)
    with pytest.raises(InvalidArgument):
        await disable(kit, user)


async def test_disabling_totp_that_is_off_is_a_failed_precondition(kit: AuthKit) -> None:
    user = await kit.add_user()
    with pytest.raises(TotpNotEnabled):
        await disable(kit, user, without_code=True)


async def reset(kit: AuthKit, user: User) -> User:
    return await second_factors.reset_second_factors(
        kit.uow(), kit.clock, deps(kit), user_id=user.id.value
    )


async def test_the_administrators_reset_removes_every_factor_and_mails_the_owner(
    kit: AuthKit,
) -> None:
    user, _, _ = await enrolled(kit)

    after = await reset(kit, user)

    assert after.second_factor_kinds() == frozenset() and after.recovery_codes_remaining == 0
    assert kit.new_events(user) == [SecondFactorsReset(user.id.value, kit.clock())]
    await kit.after_reply.run_all()
    assert [(n.kind, n.added) for n in kit.notifier.second_factor_notices] == [
        (SecondFactorKind.TOTP, False)
    ]


async def test_resetting_a_user_without_factors_changes_nothing(kit: AuthKit) -> None:
    user = await kit.add_user()
    before = state_of(kit.stored(user))
    await reset(kit, user)
    assert state_of(kit.stored(user)) == before and kit.new_events(user) == []


async def test_a_password_reset_keeps_every_second_factor(kit: AuthKit) -> None:
    user, _, _ = await enrolled(kit)
    await request_password_reset(
        kit.uow(), kit.notifier, kit.clock, kit.policy, kit.after_reply, email=EMAIL
    )
    await kit.after_reply.run_all()
    token = kit.notifier.sent[-1].token
    before = kit.stored(user)
    totp, hashes = before.totp, before.recovery_code_hashes

    await reset_password(
        kit.uow(),
        kit.hasher,
        kit.clock,
        kit.policy.sessions,
        reset_token=token,
        new_password="New-Zebra-99",
    )

    after = kit.stored(user)
    assert after.totp == totp and after.recovery_code_hashes == hashes
    assert after.second_factor_kinds() == {SecondFactorKind.TOTP}
