"""Passkey use cases over the in-memory fakes, with py_webauthn as the relying party and the tests'
software authenticator as the browser: registration, listing, removal, passwordless sign-in, and
every refusal changing nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from webauthn.helpers import decode_credential_public_key

from domain.errors import (
    AccountDisabled,
    EmailNotVerified,
    InvalidArgument,
    InvalidSecondFactorCode,
    InvalidSignInChallenge,
    PasskeyCeremonyFailed,
    PasskeyLimitReached,
    PasskeyNotFound,
)
from domain.events import SecondFactorAdded, SecondFactorKind, SecondFactorRemoved, SessionStarted
from domain.passkeys import (
    MAX_PASSKEYS,
    NOBODYS_PASSKEY,
    Passkey,
    SignInCeremonyCodec,
    user_handle,
)
from domain.policies import AuthPolicy, VerificationPolicy
from domain.ports import SecondFactorNotices
from domain.sign_in_challenges import SignInFactor
from domain.use_cases import passkeys
from domain.use_cases.passkeys import second_factor_options
from domain.use_cases.second_factor_sign_in import Proof, ProofKind, complete_sign_in
from domain.use_cases.second_factors import SecondFactorDeps, reset_second_factors
from domain.use_cases.sessions import SessionTokens, SignInChallenged, authenticate
from domain.user import User, UserStatus
from server.crypto.webauthn_relying_party import PyWebAuthnRelyingParty
from tests.builders import state_of
from tests.unit.domain.use_cases.auth_kit import EMAIL, PASSWORD, AuthKit
from tests.webauthn_authenticator import SoftAuthenticator

RP_ID = "localhost"
ORIGIN = "http://localhost:8080"


@dataclass
class PasskeyKit(AuthKit):
    """The auth kit, a relying party and a browser with its authenticator."""

    relying_party: PyWebAuthnRelyingParty = field(
        default_factory=lambda: PyWebAuthnRelyingParty(
            rp_id=RP_ID, rp_name="Biome", origins=[ORIGIN]
        )
    )
    ceremonies: SignInCeremonyCodec = field(default_factory=lambda: SignInCeremonyCodec(b"k" * 32))
    browser: SoftAuthenticator = field(default_factory=lambda: SoftAuthenticator(origin=ORIGIN))

    async def begin(self, user: User) -> str:
        begun = await passkeys.begin_passkey_registration(
            self.uow(), self.relying_party, self.clock, user_id=user.id.value
        )
        return begun.options_json

    async def finish(
        self, user: User, credential: dict[str, object] | str, name: str = ""
    ) -> Passkey:
        raw = credential if isinstance(credential, str) else json.dumps(credential)
        return await passkeys.finish_passkey_registration(
            self.uow(),
            self.relying_party,
            self.clock,
            self.notifier,
            self.after_reply,
            user_id=user.id.value,
            credential_json=raw,
            name=name,
        )

    async def register(self, user: User, name: str = "Laptop") -> Passkey:
        return await self.finish(user, self.browser.create(await self.begin(user)), name)

    def begin_sign_in(self) -> passkeys.PasskeySignInBegun:
        return passkeys.begin_passkey_sign_in(self.relying_party, self.ceremonies, self.clock)

    async def finish_sign_in(
        self, token: str, credential: dict[str, object] | str
    ) -> SessionTokens:
        raw = credential if isinstance(credential, str) else json.dumps(credential)
        return await passkeys.finish_passkey_sign_in(
            self.uow(),
            self.relying_party,
            self.ceremonies,
            self.issuer,
            self.clock,
            self.policy,
            ceremony_token=token,
            credential_json=raw,
        )

    async def passkey_sign_in(self, **misbehaviour: object) -> SessionTokens:
        begun = self.begin_sign_in()
        assertion = self.browser.get(begun.options_json, **misbehaviour)  # type: ignore[arg-type]
        return await self.finish_sign_in(begun.ceremony_token, assertion)


@pytest.fixture
def kit() -> Iterator[PasskeyKit]:
    world = PasskeyKit()
    yield world
    world.close()  # the notices a test had no need to look at


async def test_a_registered_passkey_is_kept_listed_counted_and_its_owner_told(
    kit: PasskeyKit,
) -> None:
    user = await kit.add_user()
    kit.new_events(user)
    passkey = await kit.register(user, name="  Anna's phone ")
    stored = kit.stored(user)
    assert stored.passkeys == (passkey,)
    assert passkey.name == "Anna's phone"
    assert passkey.transports == ("hybrid", "internal")
    assert passkey.backup_eligible and passkey.backed_up
    assert stored.passkey_registration is None  # the ceremony is spent
    assert stored.version == 2
    assert SecondFactorKind.PASSKEY in stored.second_factor_kinds()
    assert kit.new_events(user) == [
        SecondFactorAdded(
            user.id.value, kit.clock(), kind=SecondFactorKind.PASSKEY, factor_id=passkey.passkey_id
        )
    ]
    await kit.after_reply.run_all()
    [notice] = kit.notifier.second_factor_notices
    assert (notice.to, notice.kind, notice.added) == (
        user.email.value,
        SecondFactorKind.PASSKEY,
        True,
    )
    assert await passkeys.list_passkeys(kit.uow(), user_id=user.id.value) == (passkey,)


async def test_the_creation_options_exclude_the_users_passkeys_and_ask_for_a_resident_key(
    kit: PasskeyKit,
) -> None:
    user = await kit.add_user()
    first = await kit.register(user)
    options = json.loads(await kit.begin(user))
    assert [c["id"] for c in options["excludeCredentials"]] == [first.passkey_id]
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert options["rp"] == {"id": RP_ID, "name": "Biome"}
    assert options["user"]["name"] == user.email.value


async def test_a_registration_ceremony_is_single_use(kit: PasskeyKit) -> None:
    user = await kit.add_user()
    credential = kit.browser.create(await kit.begin(user))
    await kit.finish(user, credential)
    before = state_of(kit.stored(user))
    with pytest.raises(PasskeyCeremonyFailed):
        await kit.finish(user, credential)
    assert state_of(kit.stored(user)) == before


async def test_an_expired_registration_ceremony_is_refused(kit: PasskeyKit) -> None:
    user = await kit.add_user()
    credential = kit.browser.create(await kit.begin(user))
    kit.later(minutes=5)
    with pytest.raises(PasskeyCeremonyFailed):
        await kit.finish(user, credential)
    assert kit.stored(user).passkeys == ()


@pytest.mark.parametrize(
    "misbehaviour",
    [
        {"origin": "https://evil.example"},
        {"rp_id": "evil.example"},
        {"challenge": b"another challenge"},
        {"user_present": False},
    ],
    ids=["origin", "rp_id", "challenge", "user_presence"],
)
async def test_a_registration_that_does_not_verify_changes_nothing(
    kit: PasskeyKit, misbehaviour: dict[str, object]
) -> None:
    user = await kit.add_user()
    options = await kit.begin(user)
    before = state_of(kit.stored(user))
    with pytest.raises(PasskeyCeremonyFailed):
        await kit.finish(user, kit.browser.create(options, **misbehaviour))  # type: ignore[arg-type]
    assert state_of(kit.stored(user)) == before
    assert kit.new_events(user) == []


@pytest.mark.parametrize(
    "credential_json",
    ["", "not json", "[]", "{}", '{"id": "x", "rawId": "x", "type": "public-key"}', "[" * 5000],
)
async def test_a_malformed_registration_is_invalid_argument_on_credential_json(
    kit: PasskeyKit, credential_json: str
) -> None:
    user = await kit.add_user()
    await kit.begin(user)
    with pytest.raises(InvalidArgument) as refused:
        await kit.finish(user, credential_json)
    assert [v.field for v in refused.value.violations] == ["credential_json"]


async def test_no_more_than_ten_passkeys(kit: PasskeyKit) -> None:
    user = await kit.add_user()
    for _ in range(MAX_PASSKEYS):  # one per device: each authenticator's options exclude it
        kit.browser = SoftAuthenticator(origin=ORIGIN)
        await kit.register(user)
    with pytest.raises(PasskeyLimitReached):
        await kit.begin(user)


async def test_a_disabled_account_registers_none(kit: PasskeyKit) -> None:
    user = await kit.add_user()
    options = await kit.begin(user)
    await _set_status(kit, user, UserStatus.DISABLED)
    with pytest.raises(AccountDisabled):
        await kit.finish(user, kit.browser.create(options))


async def test_a_disabled_account_removes_none(kit: PasskeyKit) -> None:
    # Its access tokens outlive the disable by up to their lifetime: they must not strip a
    # factor meanwhile (an administrator's ResetSecondFactors still removes them all).
    user = await kit.add_user()
    passkey = await kit.register(user)
    await _set_status(kit, user, UserStatus.DISABLED)
    before = state_of(kit.stored(user))
    with pytest.raises(AccountDisabled):
        await passkeys.remove_passkey(
            kit.uow(),
            kit.clock,
            kit.notifier,
            kit.after_reply,
            user_id=user.id.value,
            passkey_id=passkey.passkey_id,
        )
    assert state_of(kit.stored(user)) == before


async def test_a_removed_passkey_is_gone_and_its_owner_told(kit: PasskeyKit) -> None:
    user = await kit.add_user()
    passkey = await kit.register(user)
    kit.new_events(user)
    await passkeys.remove_passkey(
        kit.uow(),
        kit.clock,
        kit.notifier,
        kit.after_reply,
        user_id=user.id.value,
        passkey_id=passkey.passkey_id,
    )
    assert kit.stored(user).passkeys == ()
    assert kit.stored(user).second_factor_kinds() == frozenset()
    assert kit.new_events(user) == [
        SecondFactorRemoved(
            user.id.value, kit.clock(), kind=SecondFactorKind.PASSKEY, factor_id=passkey.passkey_id
        )
    ]
    await kit.after_reply.run_all()
    assert [n.added for n in kit.notifier.second_factor_notices] == [True, False]
    with pytest.raises(PasskeyCeremonyFailed):
        await kit.passkey_sign_in()
    with pytest.raises(PasskeyNotFound):
        await passkeys.remove_passkey(
            kit.uow(),
            kit.clock,
            kit.notifier,
            kit.after_reply,
            user_id=user.id.value,
            passkey_id=passkey.passkey_id,
        )


# --- passwordless sign-in ------------------------------------------------------------------


async def test_a_passkey_signs_in_without_a_password_and_its_counter_is_kept(
    kit: PasskeyKit,
) -> None:
    user = await kit.add_user()
    passkey = await kit.register(user)
    begun = kit.begin_sign_in()
    options = json.loads(begun.options_json)
    assert options["allowCredentials"] == []  # discoverable: the authenticator names the user
    assert options["rpId"] == RP_ID
    kit.new_events(user)
    tokens = await kit.finish_sign_in(begun.ceremony_token, kit.browser.get(begun.options_json))
    assert tokens.user.id == user.id
    assert len(kit.sessions(user)) == 1
    [started] = kit.new_events(user)
    assert isinstance(started, SessionStarted)
    [used] = kit.stored(user).passkeys
    assert (used.sign_count, used.last_used_at) == (1, kit.clock())
    assert used.passkey_id == passkey.passkey_id
    assert kit.stored(user).version == 2  # bookkeeping: no new version
    assert kit.issuer.amr_claims == [("hwk",)]
    assert kit.sessions(user)[0].amr == ("hwk",)


async def test_a_ceremony_signs_in_once(kit: PasskeyKit) -> None:
    user = await kit.add_user()
    await kit.register(user)
    begun = kit.begin_sign_in()
    await kit.finish_sign_in(begun.ceremony_token, kit.browser.get(begun.options_json))
    before = state_of(kit.stored(user))
    # The same assertion again, and a fresh assertion for the spent ceremony.
    with pytest.raises(PasskeyCeremonyFailed):
        await kit.finish_sign_in(begun.ceremony_token, kit.browser.get(begun.options_json))
    assert state_of(kit.stored(user)) == before
    assert len(kit.sessions(user)) == 1


async def test_a_replayed_assertion_of_a_non_counting_passkey_is_refused(kit: PasskeyKit) -> None:
    kit.browser.counting = (
        False  # synced passkeys keep their counter at 0: only the ceremony guards
    )
    user = await kit.add_user()
    await kit.register(user)
    begun = kit.begin_sign_in()
    assertion = kit.browser.get(begun.options_json)
    await kit.finish_sign_in(begun.ceremony_token, assertion)
    with pytest.raises(PasskeyCeremonyFailed):
        await kit.finish_sign_in(begun.ceremony_token, assertion)
    assert len(kit.sessions(user)) == 1


async def test_of_two_concurrent_uses_of_one_ceremony_exactly_one_signs_in(kit: PasskeyKit) -> None:
    kit.browser.counting = False
    user = await kit.add_user()
    await kit.register(user)
    begun = kit.begin_sign_in()
    assertion = kit.browser.get(begun.options_json)
    results = await asyncio.gather(
        kit.finish_sign_in(begun.ceremony_token, assertion),
        kit.finish_sign_in(begun.ceremony_token, assertion),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["PasskeyCeremonyFailed", "SessionTokens"]
    assert len(kit.sessions(user)) == 1


@pytest.mark.parametrize(
    "misbehaviour",
    [
        {"origin": "https://evil.example"},
        {"rp_id": "evil.example"},
        {"challenge": b"another challenge"},
        {"bad_signature": True},
        {"sign_count": 1},  # backwards: the stored counter is 2 by then
        {"with_user_handle": False},
    ],
    ids=["origin", "rp_id", "challenge", "signature", "counter_backwards", "no_user_handle"],
)
async def test_an_assertion_that_does_not_verify_changes_nothing(
    kit: PasskeyKit, misbehaviour: dict[str, object]
) -> None:
    user = await kit.add_user()
    await kit.register(user)
    await kit.passkey_sign_in()
    await kit.passkey_sign_in()
    before = state_of(kit.stored(user))
    kit.new_events(user)
    with pytest.raises(PasskeyCeremonyFailed):
        await kit.passkey_sign_in(**misbehaviour)
    assert state_of(kit.stored(user)) == before
    assert kit.new_events(user) == []


async def test_an_expired_or_forged_ceremony_token_is_refused(kit: PasskeyKit) -> None:
    user = await kit.add_user()
    await kit.register(user)
    begun = kit.begin_sign_in()
    assertion = kit.browser.get(begun.options_json)
    other = SignInCeremonyCodec(b"x" * 32).issue(kit.clock())[0]
    for token in (other, begun.ceremony_token[:-2], "nonsense"):
        with pytest.raises(PasskeyCeremonyFailed):
            await kit.finish_sign_in(token, assertion)
    kit.later(minutes=5)
    with pytest.raises(PasskeyCeremonyFailed):
        await kit.finish_sign_in(begun.ceremony_token, assertion)


async def test_an_assertion_of_a_deleted_account_says_what_a_bad_one_says(kit: PasskeyKit) -> None:
    user = await kit.add_user()
    await kit.register(user)
    async with kit.uow() as uow:
        stored = await uow.users.require(user.id)
        await uow.users.delete(stored)
        await uow.commit()
    with pytest.raises(PasskeyCeremonyFailed) as unknown:
        await kit.passkey_sign_in()
    other = await kit.add_user("grace@example.com")
    kit.browser = SoftAuthenticator(origin=ORIGIN)
    await kit.register(other)
    with pytest.raises(PasskeyCeremonyFailed) as bad:
        await kit.passkey_sign_in(bad_signature=True)
    assert str(unknown.value) == str(bad.value)


async def test_a_disabled_account_or_an_unverified_address_is_said_only_after_the_assertion(
    kit: PasskeyKit,
) -> None:
    user = await kit.add_user()
    await kit.register(user)
    await _set_status(kit, user, UserStatus.DISABLED)
    with pytest.raises(PasskeyCeremonyFailed):
        await kit.passkey_sign_in(bad_signature=True)
    with pytest.raises(AccountDisabled):
        await kit.passkey_sign_in()
    await _set_status(kit, user, UserStatus.ACTIVE)
    kit.policy = AuthPolicy(verification=VerificationPolicy(required_for_sign_in=True))
    with pytest.raises(EmailNotVerified):
        await kit.passkey_sign_in()
    assert kit.sessions(user) == ()


@pytest.mark.parametrize("credential_json", ["", "{", '{"id": 1}', "[" * 5000, "x" * 20000])
async def test_a_malformed_assertion_is_invalid_argument_on_credential_json(
    kit: PasskeyKit, credential_json: str
) -> None:
    begun = kit.begin_sign_in()
    with pytest.raises(InvalidArgument) as refused:
        await kit.finish_sign_in(begun.ceremony_token, credential_json)
    assert [v.field for v in refused.value.violations] == ["credential_json"]


async def test_an_empty_ceremony_token_is_invalid_argument(kit: PasskeyKit) -> None:
    user = await kit.add_user()
    await kit.register(user)
    begun = kit.begin_sign_in()
    with pytest.raises(InvalidArgument) as refused:
        await kit.finish_sign_in(" ", kit.browser.get(begun.options_json))
    assert [v.field for v in refused.value.violations] == ["ceremony_token"]


def test_a_passkey_id_is_checked_before_any_read() -> None:
    kit = PasskeyKit()
    with pytest.raises(InvalidArgument):
        asyncio.run(
            passkeys.remove_passkey(
                kit.uow(),
                kit.clock,
                kit.notifier,
                kit.after_reply,
                user_id="not-a-uuid",
                passkey_id="not base64!",
            )
        )


async def _set_status(kit: PasskeyKit, user: User, status: UserStatus) -> None:
    async with kit.uow() as uow:
        stored = await uow.users.require(user.id)
        stored.status = status
        await uow.users.update(stored)
        await uow.commit()


async def test_an_administrators_reset_removes_every_passkey_and_a_registration_under_way(
    kit: PasskeyKit,
) -> None:
    user = await kit.add_user()
    await kit.register(user)
    kit.browser = SoftAuthenticator(origin=ORIGIN)
    await kit.register(user)
    await kit.begin(user)
    await kit.after_reply.run_all()
    kit.new_events(user)
    deps = SecondFactorDeps(
        codes=None,
        lock_notices=kit.notices,
        notices=SecondFactorNotices(kit.notifier, kit.after_reply),
    )
    reset = await reset_second_factors(kit.uow(), kit.clock, deps, user_id=user.id.value)
    assert reset.passkeys == () and reset.passkey_registration is None
    assert kit.stored(user).passkeys == ()
    assert [type(e).__name__ for e in kit.new_events(user)] == ["SecondFactorsReset"]
    await kit.after_reply.run_all()
    last = kit.notifier.second_factor_notices[-1]
    assert (last.kind, last.added) == (SecondFactorKind.PASSKEY, False)
    with pytest.raises(PasskeyCeremonyFailed):
        await kit.passkey_sign_in()


# --- a passkey as second factor -------------------------------------------------------------


async def challenged(kit: PasskeyKit) -> tuple[str, str]:
    """Sign in with the password: (the challenge's token, its passkey request options)."""
    outcome = await authenticate(
        kit.uow(), kit.hasher, kit.issuer, kit.clock, kit.policy, kit.notices,
        email=EMAIL, password=PASSWORD,
    )  # fmt: skip
    assert isinstance(outcome, SignInChallenged)
    assert SignInFactor.PASSKEY in outcome.challenge.factors
    return outcome.challenge.token, second_factor_options(kit.relying_party, outcome)


async def complete_with(kit: PasskeyKit, token: str, assertion: object) -> SessionTokens:
    raw = assertion if isinstance(assertion, str) else json.dumps(assertion)
    return await complete_sign_in(
        kit.uow(), kit.issuer, kit.clock, kit.policy, kit.notices, None, kit.relying_party,
        challenge_token=token, proof=Proof(ProofKind.PASSKEY, raw),
    )  # fmt: skip


async def test_a_passkey_completes_a_password_sign_in_with_amr_pwd_hwk(kit: PasskeyKit) -> None:
    user = await kit.add_user()
    passkey = await kit.register(user)
    token, options_json = await challenged(kit)
    options = json.loads(options_json)
    assert [c["id"] for c in options["allowCredentials"]] == [passkey.passkey_id]

    tokens = await complete_with(kit, token, kit.browser.get(options_json))

    assert tokens.user.id == user.id
    assert kit.issuer.amr_claims[-1] == ("pwd", "hwk")
    assert kit.sessions(user)[0].amr == ("pwd", "hwk")
    assert kit.stored(user).passkeys[0].sign_count == 1
    assert kit.stored(user).sign_in_challenges == ()
    with pytest.raises(InvalidSignInChallenge):  # spent
        await complete_with(kit, token, kit.browser.get(options_json))


@pytest.mark.parametrize(
    "misbehaviour",
    [
        {"origin": "https://evil.example"},
        {"rp_id": "evil.example"},
        {"bad_signature": True},
        {"sign_count": 0},  # the stored counter is 1 by then
        {"challenge": b"the challenge of another sign-in"},
    ],
    ids=["origin", "rp_id", "signature", "counter_backwards", "other_challenge"],
)
async def test_an_assertion_that_does_not_verify_is_a_wrong_code_and_counted(
    kit: PasskeyKit, misbehaviour: dict[str, object]
) -> None:
    user = await kit.add_user()
    await kit.register(user)
    token, options_json = await challenged(kit)
    await complete_with(kit, token, kit.browser.get(options_json))
    token, options_json = await challenged(kit)
    before = kit.stored(user).passkeys

    with pytest.raises(InvalidSecondFactorCode):
        await complete_with(kit, token, kit.browser.get(options_json, **misbehaviour))  # type: ignore[arg-type]

    stored = kit.stored(user)
    assert stored.passkeys == before
    assert stored.failed_logins == 1
    assert stored.sign_in_challenges[0].wrong_codes == 1
    assert len(kit.sessions(user)) == 1


async def test_a_challenge_issued_before_the_users_first_passkey_takes_no_passkey(
    kit: PasskeyKit,
) -> None:
    # A user without passkeys gets no WebAuthn challenge (no bytes on the item). Should one
    # register a passkey before completing, an assertion over the empty challenge is a wrong
    # code: it would verify, an empty expected challenge matching an empty presented one.
    user = await kit.add_user()
    await kit.register(user)
    token, options_json = await challenged(kit)
    stored = kit.stored(user)
    kit.store.users[user.id.value] = replace(
        stored,
        sign_in_challenges=tuple(
            replace(c, webauthn_challenge=b"") for c in stored.sign_in_challenges
        ),
    )

    with pytest.raises(InvalidSecondFactorCode):
        await complete_with(kit, token, kit.browser.get(options_json, challenge=b""))

    assert kit.sessions(user) == ()
    assert kit.stored(user).sign_in_challenges[0].wrong_codes == 1


async def test_another_users_passkey_does_not_complete_the_sign_in(kit: PasskeyKit) -> None:
    user = await kit.add_user()
    await kit.register(user)
    other = await kit.add_user("grace@example.com")
    intruder = SoftAuthenticator(origin=ORIGIN)
    kit.browser, mine = intruder, kit.browser
    await kit.register(other)
    token, options_json = await challenged(kit)
    stripped = json.dumps({**json.loads(options_json), "allowCredentials": []})
    with pytest.raises(InvalidSecondFactorCode):
        await complete_with(kit, token, intruder.get(stripped))
    assert kit.sessions(user) == ()
    kit.browser = mine


async def test_an_assertion_naming_another_user_is_a_wrong_code(kit: PasskeyKit) -> None:
    # WebAuthn 7.2 step 6: the user handle, when given, must be the user being signed in. The
    # handle is not signed, so this is no forgery; but a response that says it is someone
    # else's is refused and counted, not taken.
    user = await kit.add_user()
    await kit.register(user)
    other = await kit.add_user("grace@example.com")
    token, options_json = await challenged(kit)

    with pytest.raises(InvalidSecondFactorCode):
        await complete_with(
            kit, token, kit.browser.get(options_json, user_handle=user_handle(other.id))
        )

    stored = kit.stored(user)
    assert stored.failed_logins == 1
    assert stored.sign_in_challenges[0].wrong_codes == 1
    assert stored.passkeys[0].sign_count == 0
    assert kit.sessions(user) == ()


async def test_a_malformed_passkey_assertion_is_invalid_argument(kit: PasskeyKit) -> None:
    user = await kit.add_user()
    await kit.register(user)
    token, _ = await challenged(kit)
    with pytest.raises(InvalidArgument) as refused:
        await complete_with(kit, token, "{not json")
    assert [v.field for v in refused.value.violations] == ["passkey_credential_json"]
    assert kit.stored(user).failed_logins == 0


class CountingRelyingParty(PyWebAuthnRelyingParty):
    """The relying party, counting the assertions it verifies."""

    verified = 0

    def verify_assertion(self, credential_json: str, *, challenge: bytes, passkey: Passkey) -> Any:
        type(self).verified += 1
        return super().verify_assertion(credential_json, challenge=challenge, passkey=passkey)


async def test_an_assertion_of_no_account_costs_a_signature_check_all_the_same(
    kit: PasskeyKit,
) -> None:
    user = await kit.add_user()
    await kit.register(user)
    async with kit.uow() as uow:
        await uow.users.delete(await uow.users.require(user.id))
        await uow.commit()
    kit.relying_party = CountingRelyingParty(rp_id=RP_ID, rp_name="Biome", origins=[ORIGIN])
    with pytest.raises(PasskeyCeremonyFailed):
        await kit.passkey_sign_in()
    assert CountingRelyingParty.verified == 1
    # Nobody's passkey is a real P-256 key: the check it costs is a real one.
    assert decode_credential_public_key(NOBODYS_PASSKEY.public_key).alg == -7
