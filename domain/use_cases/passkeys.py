"""Use cases of passkeys: registration (options out, the browser's credential in), listing and
removal by their owner, and passwordless sign-in with a discoverable credential."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from domain.errors import AccountDisabled, PasskeyCeremonyFailed
from domain.events import SecondFactorKind
from domain.passkeys import (
    CEREMONY_LIFETIME,
    NOBODYS_PASSKEY,
    Passkey,
    PasskeyNotVerified,
    PresentedAssertion,
    SignInCeremonyCodec,
    VerifiedAssertion,
    WebAuthn,
    challenge_digest,
    parse_credential_json,
    parse_passkey_id,
    parse_passkey_name,
    user_id_of_handle,
)
from domain.policies import AuthPolicy
from domain.ports import (
    AccessTokenIssuer,
    Clock,
    Notifier,
    SecondFactorNoticeMail,
    TaskRunner,
    UnitOfWork,
)
from domain.sign_in_challenges import SignInFactor
from domain.use_cases.retry import retry_on_conflict
from domain.use_cases.sessions import (
    SessionTokens,
    SignInChallenged,
    check_may_sign_in,
    check_verified,
    issue_session_tokens,
    parse_client,
    write_new_session,
)
from domain.use_cases.validation import Violations
from domain.user import User, UserStatus
from domain.values import AMR_KEY, UserId


@dataclass(frozen=True)
class PasskeyRegistrationBegun:
    """A registration's creation options (JSON) and when its ceremony expires."""

    options_json: str
    expires_at: datetime


async def begin_passkey_registration(
    uow: UnitOfWork, webauthn: WebAuthn, clock: Clock, *, user_id: str
) -> PasskeyRegistrationBegun:
    """Begin registering a passkey: the creation options for navigator.credentials.create().
    A new ceremony replaces an unfinished one."""
    with Violations() as check:
        parsed_id = check.parse("user_id", UserId.parse, user_id)

    async def apply(attempt: int) -> PasskeyRegistrationBegun:
        async with uow:
            user = await uow.users.require(parsed_id)
            _check_active(user)
            now = clock()
            challenge = user.begin_passkey_registration(now, CEREMONY_LIFETIME)
            await uow.users.update(user)
            await uow.commit()
        options = webauthn.creation_options(
            user_id=user.id,
            user_name=user.email.value,
            display_name=f"{user.first_name.value} {user.last_name.value}",
            challenge=challenge,
            exclude=user.passkeys,
        )
        return PasskeyRegistrationBegun(options, now + CEREMONY_LIFETIME)

    return await retry_on_conflict(apply)


async def finish_passkey_registration(
    uow: UnitOfWork,
    webauthn: WebAuthn,
    clock: Clock,
    notifier: Notifier,
    later: TaskRunner,
    *,
    user_id: str,
    credential_json: str,
    name: str,
) -> Passkey:
    """Keep the passkey the browser created for the ceremony under way, once its response
    verifies against that ceremony's challenge; the ceremony is spent. Its owner is mailed a
    notice after the reply."""
    with Violations() as check:
        parsed_id = check.parse("user_id", UserId.parse, user_id)
        parsed_name = check.parse("name", parse_passkey_name, name)
        credential = check.parse(
            "credential_json", _well_formed(webauthn.read_registration), credential_json
        )

    async def apply(attempt: int) -> Passkey:
        async with uow:
            user = await uow.users.require(parsed_id)
            _check_active(user)
            now = clock()
            challenge = user.passkey_registration_challenge(now)
            try:
                new = webauthn.verify_registration(credential, challenge=challenge)
            except PasskeyNotVerified:
                raise PasskeyCeremonyFailed() from None
            passkey = user.add_passkey(new, parsed_name, now)
            await uow.users.update(user)
            await uow.commit()
        _notify(user, notifier, later, added=True)
        return passkey

    return await retry_on_conflict(apply)


async def list_passkeys(uow: UnitOfWork, *, user_id: str) -> tuple[Passkey, ...]:
    """The user's passkeys, oldest first; read strongly consistent."""
    with Violations() as check:
        parsed_id = check.parse("user_id", UserId.parse, user_id)
    async with uow:
        user = await uow.users.require(parsed_id)
    return user.passkeys


async def remove_passkey(
    uow: UnitOfWork,
    clock: Clock,
    notifier: Notifier,
    later: TaskRunner,
    *,
    user_id: str,
    passkey_id: str,
) -> None:
    """Drop one of the user's passkeys: it no longer signs in. Its owner is mailed a notice
    after the reply. AccountDisabled for a disabled account (its access tokens outlive the
    disable; ResetSecondFactors is the administrator's way)."""
    with Violations() as check:
        parsed_id = check.parse("user_id", UserId.parse, user_id)
        parsed_passkey = check.parse("passkey_id", parse_passkey_id, passkey_id)

    async def apply(attempt: int) -> None:
        async with uow:
            user = await uow.users.require(parsed_id)
            _check_active(user)
            user.remove_passkey(parsed_passkey, clock())
            await uow.users.update(user)
            await uow.commit()
        _notify(user, notifier, later, added=False)

    await retry_on_conflict(apply)


@dataclass(frozen=True)
class PasskeySignInBegun:
    """A passwordless sign-in's request options (JSON), its ceremony token and their expiry."""

    options_json: str
    ceremony_token: str
    expires_at: datetime


def begin_passkey_sign_in(
    webauthn: WebAuthn, ceremonies: SignInCeremonyCodec, clock: Clock
) -> PasskeySignInBegun:
    """Options for navigator.credentials.get() naming no credential (the authenticator offers
    its discoverable ones) and requiring user verification (no password stands beside it), and
    the token that carries their challenge to the finish."""
    token, ceremony = ceremonies.issue(clock())
    options = webauthn.request_options(
        challenge=ceremony.challenge, allow=(), require_user_verification=True
    )
    return PasskeySignInBegun(options, token, ceremony.expires_at)


async def finish_passkey_sign_in(
    uow: UnitOfWork,
    webauthn: WebAuthn,
    ceremonies: SignInCeremonyCodec,
    issuer: AccessTokenIssuer,
    clock: Clock,
    policy: AuthPolicy,
    *,
    ceremony_token: str,
    credential_json: str,
    user_agent: str = "",
    ip_address: str = "",
    device_label: str = "",
) -> SessionTokens:
    """Sign in with an assertion of a discoverable passkey: the user is the one its user handle
    names, and the authenticator must have verified them (UV: a PIN, biometrics; possession
    alone, a security key without a PIN, would be a single factor). Every refusal before the
    assertion verifies is one and the same PasskeyCeremonyFailed (no account, no such passkey, a
    bad signature, an expired or spent ceremony), so that it tells nobody whether an account
    exists; a disabled account and an unverified address are said only after it verified, as
    Authenticate says them only after the password."""
    with Violations() as check:
        if not ceremony_token.strip():
            check.add("ceremony_token", "must not be empty")
        presented = check.parse(
            "credential_json",
            lambda raw: webauthn.read_assertion(parse_credential_json(raw)),
            credential_json,
        )
        client = parse_client(check, user_agent, ip_address, device_label)
    ceremony = ceremonies.open(ceremony_token, clock())
    found_id = _user_of(presented)
    if ceremony is None or found_id is None:
        raise PasskeyCeremonyFailed()
    spent = (challenge_digest(ceremony.challenge), ceremony.expires_at)

    async def open_session(attempt: int) -> SessionTokens:
        async with uow:
            user = await uow.users.get_by_id(found_id)
            passkey = user.passkey(presented.passkey_id) if user is not None else None
            verified = _verified(webauthn, credential_json, ceremony.challenge, presented, passkey)
            if user is None or passkey is None or verified is None:
                raise PasskeyCeremonyFailed()
            now = clock()
            # A spent ceremony, a counter that did not go up: refused in this very write, whose
            # revision check makes one of two concurrent uses lose and read the spent digest.
            user.use_passkey(passkey.passkey_id, verified, now, spent=spent)
            check_may_sign_in(user)
            check_verified(user, policy)
            start = await write_new_session(uow, user, now, policy.sessions, client, AMR_KEY)
        return issue_session_tokens(issuer, user, start, now)

    return await retry_on_conflict(open_session)


def second_factor_options(webauthn: WebAuthn, outcome: object) -> str:
    """For a sign-in that waits on a second factor (a SignInChallenged) of a user with passkeys:
    the request options (JSON) naming them, with the challenge's WebAuthn challenge; else "".
    """
    if not isinstance(outcome, SignInChallenged):
        return ""
    if SignInFactor.PASSKEY not in outcome.challenge.factors or not outcome.user.passkeys:
        return ""
    return webauthn.request_options(
        challenge=outcome.challenge.webauthn_challenge, allow=outcome.user.passkeys
    )


def _notify(user: User, notifier: Notifier, later: TaskRunner, *, added: bool) -> None:
    """The owner's notice that a passkey was added or removed, after the reply. Not held back
    by the security mail limit: a factor changing is what its owner must hear of, whoever made
    the change (a stolen access token could otherwise add a passkey unnoticed)."""
    mail = SecondFactorNoticeMail(
        to=user.email.value,
        first_name=user.first_name.value,
        kind=SecondFactorKind.PASSKEY,
        added=added,
    )
    later.spawn(notifier.send_second_factor_notice(mail), name="mail a second-factor notice")


def _verified(
    webauthn: WebAuthn,
    credential_json: str,
    challenge: bytes,
    presented: PresentedAssertion,
    passkey: Passkey | None,
) -> VerifiedAssertion | None:
    """The verified assertion, or None (also when the authenticator did not verify its user).
    Without a passkey (no account, or not one of its
    passkeys) the assertion is checked all the same, against nobody's passkey, and refused: the
    time taken does not tell whether the account exists."""
    against = passkey or dataclasses.replace(NOBODYS_PASSKEY, passkey_id=presented.passkey_id)
    try:
        verified = webauthn.verify_assertion(credential_json, challenge=challenge, passkey=against)
    except PasskeyNotVerified:
        return None
    return verified if passkey is not None and verified.user_verified else None


def _check_active(user: User) -> None:
    if user.status is UserStatus.DISABLED:
        raise AccountDisabled()


def _user_of(presented: PresentedAssertion) -> UserId | None:
    if presented.user_handle is None:
        return None  # a non-discoverable credential: passwordless sign-in needs its user handle
    return user_id_of_handle(presented.user_handle)


def _well_formed(read: Callable[[str], object]) -> Callable[[str], str]:
    """A parser of a credential's JSON: bounded in size, and of the shape ``read`` expects."""

    def parse(raw: str) -> str:
        checked = parse_credential_json(raw)
        read(checked)
        return checked

    return parse
