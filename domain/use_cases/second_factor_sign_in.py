"""Completing a sign-in that waits on a second factor: CompleteSignIn with the challenge that
Authenticate issued and a TOTP code, a recovery code or a passkey's assertion."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from domain.errors import (
    InvalidSecondFactorCode,
    InvalidSignInChallenge,
    InvalidValue,
    PasskeyCeremonyFailed,
    TotpUnavailable,
)
from domain.passkeys import PasskeyNotVerified, WebAuthn, parse_credential_json, user_handle
from domain.policies import AuthPolicy
from domain.ports import AccessTokenIssuer, Clock, LockNotices, TotpCodes, UnitOfWork
from domain.second_factors import SECOND_FACTOR_CODE_MAX_LENGTH
from domain.secret_tokens import TokenLookup, parse_token
from domain.use_cases.retry import retry_on_conflict
from domain.use_cases.sessions import (
    SessionTokens,
    check_may_sign_in,
    check_verified,
    issue_session_tokens,
    notify_lock_later,
    parse_client,
    write_new_session,
)
from domain.use_cases.validation import Violations
from domain.user import User
from domain.values import AMR_PASSWORD_AND_KEY, AMR_PASSWORD_AND_OTP, ClientDetails


class ProofKind(enum.Enum):
    """What CompleteSignIn was given to prove the second factor."""

    TOTP_CODE = "totp_code"
    RECOVERY_CODE = "recovery_code"
    PASSKEY = "passkey_credential_json"  # the browser's assertion, as JSON


@dataclass(frozen=True, repr=False)
class Proof:
    """A presented second-factor code (a secret: never shown)."""

    kind: ProofKind
    code: str

    def __repr__(self) -> str:
        return f"Proof({self.kind.value}, ***)"


@dataclass(frozen=True)
class _Refused:
    """The code was refused (and counted); whether that began a lock-out."""

    began_lock: bool


async def complete_sign_in(
    uow: UnitOfWork,
    issuer: AccessTokenIssuer,
    clock: Clock,
    policy: AuthPolicy,
    notices: LockNotices,
    codes: TotpCodes | None,
    webauthn: WebAuthn | None = None,
    /,
    *,
    challenge_token: str,
    proof: Proof | None,
    user_agent: str = "",
    ip_address: str = "",
    device_label: str = "",
) -> SessionTokens:
    """Open the session a challenged sign-in waits for: the tokens, whose amr is
    ["pwd", "otp"] for a code, ["pwd", "hwk"] for a passkey's assertion (checked by ``webauthn``
    against the challenge's WebAuthn challenge). The challenge, the code (its TOTP step, or the
    recovery code) or the passkey's new counter, and the new session go in one write checked
    against the user's revision, so of concurrent completions of one challenge exactly one wins.
    An assertion that does not verify is a wrong code: counted alike.

    InvalidSignInChallenge, nothing changed, unless ``challenge_token`` is a usable challenge;
    InvalidSecondFactorCode for a wrong code (or any code while a lock-out wait runs): counted
    toward the lock-out as a wrong password and toward the challenge's limit of wrong codes.
    TotpUnavailable, nothing read, for a TOTP code when the service has TOTP turned off (``codes``
    None; recovery codes still work).
    The session's client details are the ones given here: the device that completes the sign-in
    is the one that holds the session (Authenticate's are not kept with the challenge)."""
    lookup, proof, client = _parsed(
        challenge_token, proof, webauthn, user_agent, ip_address, device_label
    )
    if proof.kind is ProofKind.TOTP_CODE and codes is None:
        raise TotpUnavailable()  # this service has TOTP turned off: nothing read or counted

    async def complete(attempt: int) -> SessionTokens | _Refused:
        async with uow:
            user = await uow.users.get_by_id(lookup.user_id)
            if user is None:
                raise InvalidSignInChallenge()
            now = clock()
            challenge = user.sign_in_challenge(lookup, now)
            if user.lock_remaining(now) is not None:
                # As a password during a wait: refused and counted, the code left untested, so
                # the reply tells nothing of it.
                user.record_failed_login(now, policy.lockout)
                return await _refused(uow, user, began_lock=False)
            check_may_sign_in(user)
            check_verified(user, policy)
            try:
                amr = _prove(user, proof, now, codes, webauthn, challenge.webauthn_challenge)
            except InvalidSecondFactorCode:
                # Counted in the write that checked it: concurrent guesses cannot exceed either
                # limit.
                limit = policy.sign_in_challenges.max_wrong_codes
                began = user.count_wrong_code(challenge, now, policy.lockout, limit)
                return await _refused(uow, user, began_lock=began)
            user.complete_sign_in(challenge, now)
            # One write with the user, its revision checked: of concurrent completions one
            # lands, the others read again and find the challenge spent.
            start = await write_new_session(uow, user, now, policy.sessions, client, amr)
        return issue_session_tokens(issuer, user, start, now)

    outcome = await retry_on_conflict(complete)
    if isinstance(outcome, _Refused):
        if outcome.began_lock:
            notify_lock_later(uow, lookup.user_id, clock, policy, notices)
        raise InvalidSecondFactorCode()
    return outcome


def _parsed(
    challenge_token: str,
    proof: Proof | None,
    webauthn: WebAuthn | None,
    user_agent: str,
    ip_address: str,
    device_label: str,
) -> tuple[TokenLookup, Proof, ClientDetails]:
    """The request's fields, or InvalidArgument naming each bad one."""
    with Violations() as check:
        lookup = check.parse("challenge_token", _parse_challenge_token, challenge_token)
        if proof is None:
            check.add("totp_code", "must be given (or recovery_code instead)")
        elif proof.kind is ProofKind.PASSKEY:
            check.parse(proof.kind.value, _assertion_parser(webauthn), proof.code)
        elif not proof.code.strip():
            check.add(proof.kind.value, "must not be empty")
        elif len(proof.code) > SECOND_FACTOR_CODE_MAX_LENGTH:
            limit = SECOND_FACTOR_CODE_MAX_LENGTH
            check.add(proof.kind.value, f"must be at most {limit} characters")
        client = parse_client(check, user_agent, ip_address, device_label)
    assert proof is not None
    return lookup, proof, client


async def _refused(uow: UnitOfWork, user: User, *, began_lock: bool) -> _Refused:
    """Store the refusal's count (inside the unit of work) before the reply."""
    await uow.users.update(user)
    await uow.commit()
    return _Refused(began_lock)


def _prove(
    user: User,
    proof: Proof,
    now: datetime,
    codes: TotpCodes | None,
    webauthn: WebAuthn | None,
    webauthn_challenge: bytes,
) -> tuple[str, ...]:
    """Check the proof (InvalidSecondFactorCode when wrong) and record its use; its amr."""
    if proof.kind is ProofKind.TOTP_CODE:
        assert codes is not None
        user.use_totp_code(proof.code, now, codes)
    elif proof.kind is ProofKind.RECOVERY_CODE:
        user.use_recovery_code(proof.code, now)
    else:
        assert webauthn is not None
        _use_passkey(user, proof.code, now, webauthn, webauthn_challenge)
        return AMR_PASSWORD_AND_KEY
    return AMR_PASSWORD_AND_OTP


def _use_passkey(
    user: User, credential_json: str, now: datetime, webauthn: WebAuthn, challenge: bytes
) -> None:
    """The assertion must be of one of the user's passkeys and verify against the sign-in
    challenge's WebAuthn challenge, its counter going up when it counts (kept); the challenge
    itself is single use, so no ceremony digest is kept. A user handle, when the authenticator
    gives one, must name this user (WebAuthn 7.2 step 6): an assertion that says it is another
    user's is a wrong code, whoever's key signed it."""
    if not challenge:  # issued before the user had a passkey: nothing to sign
        raise InvalidSecondFactorCode()
    presented = webauthn.read_assertion(credential_json)
    passkey = user.passkey(presented.passkey_id)
    if passkey is None:
        raise InvalidSecondFactorCode()
    if presented.user_handle is not None and presented.user_handle != user_handle(user.id):
        raise InvalidSecondFactorCode()
    try:
        verified = webauthn.verify_assertion(credential_json, challenge=challenge, passkey=passkey)
        user.use_passkey(passkey.passkey_id, verified, now)
    except (PasskeyNotVerified, PasskeyCeremonyFailed):
        raise InvalidSecondFactorCode() from None


def _assertion_parser(webauthn: WebAuthn | None) -> Callable[[str], object]:
    """A passkey assertion's JSON checked for shape (InvalidValue when malformed)."""

    def parse(raw: str) -> object:
        checked = parse_credential_json(raw)
        if webauthn is None:  # a service without a relying party cannot take one
            raise InvalidValue("passkeys are not accepted by this service")
        return webauthn.read_assertion(checked)

    return parse


def _parse_challenge_token(raw: str) -> TokenLookup:
    """A presented challenge token's lookup; InvalidValue when it cannot be one of ours."""
    lookup = parse_token(raw)
    if lookup.session_id is not None:
        raise InvalidValue("is not a sign-in challenge this service issued")
    return lookup
