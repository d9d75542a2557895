"""The User aggregate root: the one place that decides how an account, its sessions and
its password may change."""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from domain.errors import (
    InvalidEmailChangeToken,
    InvalidResetToken,
    InvalidSecondFactorCode,
    InvalidSignInChallenge,
    InvalidValue,
    InvalidVerificationCode,
    InvalidVerificationToken,
    NoTotpEnrollmentPending,
    PasskeyCeremonyFailed,
    PasskeyLimitReached,
    PasskeyNotFound,
    SessionNotFound,
    TotpAlreadyEnabled,
    TotpNotEnabled,
    VerificationCodeAttemptsExhausted,
)
from domain.events import (
    AccountLocked,
    DomainEvent,
    EmailChangeCancelled,
    EmailChanged,
    EmailChangeRequested,
    EmailVerificationRequested,
    EmailVerified,
    PasswordChanged,
    PasswordChangeReason,
    PasswordResetRequested,
    ProfileUpdated,
    RecoveryCodesRegenerated,
    RecoveryCodeUsed,
    SecondFactorAdded,
    SecondFactorKind,
    SecondFactorRemoved,
    SecondFactorsReset,
    SessionEndReason,
    SessionRevoked,
    SessionsRevoked,
    SessionStarted,
    UserDeleted,
    UserDisabled,
    UserEnabled,
    UserRegistered,
)
from domain.passkeys import (
    MAX_PASSKEYS,
    MAX_SPENT_SIGN_IN_CHALLENGES,
    NewPasskey,
    Passkey,
    PasskeyRegistration,
    VerifiedAssertion,
    new_challenge,
)
from domain.policies import LockoutPolicy, SecurityMailPolicy, SessionPolicy
from domain.second_factors import (
    TOTP_ENROLLMENT_LIFETIME,
    TOTP_FACTOR_ID,
    IssuedRecoveryCodes,
    PendingTotpEnrollment,
    SealedSecret,
    TotpFactor,
    find_recovery_code,
    hash_recovery_code,
    issue_recovery_codes,
    normalize_recovery_code,
    parse_totp_code,
)
from domain.secret_tokens import (
    IssuedCode,
    IssuedToken,
    TokenLookup,
    hash_code,
    issue_code,
    issue_token,
    same_hash,
)
from domain.sign_in_challenges import (
    MAX_SIGN_IN_CHALLENGES,
    IssuedSignInChallenge,
    SignInChallenge,
    SignInFactor,
    new_webauthn_challenge,
)
from domain.values import (
    AMR_PASSWORD,
    NO_CLIENT_DETAILS,
    ClientDetails,
    Email,
    EmailVerification,
    PasswordReset,
    PendingEmailChange,
    PersonName,
    Requester,
    Session,
    UserId,
)

if TYPE_CHECKING:  # the ports module imports this one
    from domain.ports import TotpCodes

# The most sessions one sign-in ends (evicted and expired ones); expired ones beyond it end at a
# later sign-in (they are over already). Each costs a delete and an event in the sign-in's write,
# which must stay under DynamoDB's 100 items per transaction.
MAX_ENDED_AT_SIGN_IN = 48


class UserStatus(enum.Enum):
    """Lifecycle state of an account."""

    ACTIVE = "ACTIVE"
    DISABLED = "DISABLED"


@dataclass(eq=False)
class User:
    """A user account.

    ``version`` is the stored version this object reflects: 0 until first saved. It
    counts the changes callers can see (names, email, password, status): each of those
    goes through ``_touch``, which moves ``updated_at`` and sets ``touched``; the
    persistence layer increments the version when such a write has landed, and clears
    ``touched``. Sessions, sign-in failures and lock-outs change without a new version.
    Domain methods never touch ``version``.

    ``events`` are the domain events recorded since the user was read (domain.events), each
    with the ``now`` of the change as its time; the persistence layer stores them in the same
    atomic write as the change and then clears the list. Changes nobody outside cares about
    (a token rotation, a failed sign-in that does not lock, a stronger hash of the same
    password) and no-ops record none. Events never carry a password, a token or a hash.
    """

    id: UserId
    email: Email
    first_name: PersonName
    last_name: PersonName
    password_hash: str = field(repr=False)
    status: UserStatus
    created_at: datetime
    updated_at: datetime
    version: int = 0
    # Sessions of another epoch are over (see start_session); moved on to end them all at once.
    session_epoch: int = 0
    password_reset: PasswordReset | None = None
    failed_logins: int = 0  # in a row, since the last sign-in or password change
    # Of those, the wrong passwords tried outside a wait: they alone lengthen the waits.
    failed_guesses: int = 0
    locked_until: datetime | None = None
    # When security mail last went to this user's address, oldest first: only those still inside
    # the policy's window are kept (see may_send_security_mail).
    security_mail_sent_at: tuple[datetime, ...] = ()
    # Whether the owner of ``email`` has shown they receive mail there, and since when; a new
    # address starts unverified unless an administrator vouches for it.
    email_verified: bool = False
    email_verified_at: datetime | None = None
    # A move to another address, asked and not yet confirmed (or cancelled); the address in use
    # keeps working meanwhile.
    pending_email_change: PendingEmailChange | None = None
    # The verification mailed last, until it is used (or voided: a newer one, a disable).
    email_verification: EmailVerification | None = None
    # The confirmed TOTP factor (domain.second_factors), and an enrollment begun and not yet
    # confirmed; each holds its secret only sealed.
    totp: TotpFactor | None = None
    pending_totp: PendingTotpEnrollment | None = None
    # The hashes of the recovery codes not yet used, never the codes.
    recovery_code_hashes: tuple[str, ...] = field(default=(), repr=False)
    # Sign-ins whose password was right, waiting on a second factor (at most
    # MAX_SIGN_IN_CHALLENGES, oldest first; expired ones are dropped by the next write of them).
    sign_in_challenges: tuple[SignInChallenge, ...] = ()

    # WebAuthn credentials, oldest first (at most MAX_PASSKEYS), the registration ceremony begun
    # and not yet finished, and the digests of the passwordless sign-in challenges spent lately
    # with when their ceremony expires (a spent one is refused until then; see domain.passkeys).
    passkeys: tuple[Passkey, ...] = ()
    passkey_registration: PasskeyRegistration | None = None
    spent_sign_in_challenges: tuple[tuple[str, datetime], ...] = ()
    events: list[DomainEvent] = field(default_factory=list, repr=False)
    touched: bool = field(default=False, repr=False)

    @classmethod
    def register(
        cls,
        *,
        user_id: UserId,
        email: Email,
        first_name: PersonName,
        last_name: PersonName,
        password_hash: str,
        now: datetime,
    ) -> User:
        user = cls(
            id=user_id,
            email=email,
            first_name=first_name,
            last_name=last_name,
            password_hash=password_hash,
            status=UserStatus.ACTIVE,
            created_at=now,
            updated_at=now,
        )
        user.events.append(
            UserRegistered(
                user_id=user_id.value,
                occurred_at=now,
                email=email.value,
                first_name=first_name.value,
                last_name=last_name.value,
            )
        )
        return user

    def update_profile(
        self, *, first_name: PersonName | None, last_name: PersonName | None, now: datetime
    ) -> None:
        new_first = first_name or self.first_name
        new_last = last_name or self.last_name
        if (new_first, new_last) == (self.first_name, self.last_name):
            return
        self.first_name, self.last_name = new_first, new_last
        self._touch(now)
        self.events.append(
            ProfileUpdated(
                user_id=self.id.value,
                occurred_at=now,
                first_name=new_first.value,
                last_name=new_last.value,
            )
        )

    def change_email(self, email: Email, *, now: datetime) -> None:
        """Move to ``email``: EmailChanged. A new address starts unverified (a change of letter
        case alone keeps the state): see confirm_email_change and change_email_verified for the
        ways it is proven or vouched for."""
        if email.value == self.email.value:
            return
        old = self.email
        self.email = email
        if email.normalized != old.normalized:
            self.email_verified, self.email_verified_at = False, None
        self._touch(now)
        self.events.append(
            EmailChanged(
                user_id=self.id.value, occurred_at=now, old_email=old.value, new_email=email.value
            )
        )

    def mark_email_verified(self, now: datetime) -> None:
        """Record that the owner of the current address has shown they receive mail there (or an
        administrator vouched for it): EmailVerified. Nothing when it is verified already. A
        pending verification is void from then on."""
        self.email_verification = None
        if self.email_verified:
            return
        self.email_verified, self.email_verified_at = True, now
        self._touch(now)
        self._record(EmailVerified(self.id.value, now, email=self.email.value))

    def request_email_verification(
        self, now: datetime, lifetime: timedelta
    ) -> tuple[IssuedToken, IssuedCode]:
        """A new verification of the current address: a single-use link token and a 6-digit code
        (the secrets to mail, once), valid for ``lifetime``; it replaces any earlier one."""
        token, code = issue_token(self.id), issue_code()
        self.email_verification = EmailVerification(
            email=self.email.normalized,
            token_hash=token.token_hash,
            code_hash=code.code_hash,
            code_salt=code.salt,
            requested_at=now,
            expires_at=now + lifetime,
        )
        self._record(EmailVerificationRequested(self.id.value, now, expires_at=now + lifetime))
        return token, code

    def verify_email(
        self, presented: TokenLookup | str, now: datetime, max_code_attempts: int
    ) -> bool:
        """Verify the address with the link's token (a TokenLookup) or the code (its digits):
        True when verified (EmailVerified; the pending verification is spent). False when the
        code was wrong: it is counted, and the caller stores that before refusing (each wrong
        code in the write that checked it, so that concurrent guesses cannot exceed the limit).

        InvalidVerificationToken or InvalidVerificationCode when nothing usable is pending for
        the current address (none, used, expired, or issued for an address the account no
        longer has) or the token is not its token; VerificationCodeAttemptsExhausted once
        ``max_code_attempts`` wrong codes were tried (the link still works).
        """
        pending = self.email_verification
        usable = (
            pending is not None
            and pending.is_usable(now)
            and pending.email == self.email.normalized
        )
        if isinstance(presented, TokenLookup):
            if (
                not usable
                or pending is None
                or presented.session_id is not None
                or presented.user_id != self.id
                or not same_hash(pending.token_hash, presented.token_hash)
            ):
                raise InvalidVerificationToken()
        else:
            if not usable or pending is None:
                raise InvalidVerificationCode()
            if pending.wrong_codes >= max_code_attempts:
                raise VerificationCodeAttemptsExhausted()
            if not same_hash(pending.code_hash, hash_code(presented, pending.code_salt)):
                self.email_verification = dataclasses.replace(
                    pending, wrong_codes=pending.wrong_codes + 1
                )
                return False
        self.mark_email_verified(now)
        return True

    # --- email change ------------------------------------------------------------------------

    def request_email_change(
        self, new_email: Email, now: datetime, lifetime: timedelta
    ) -> EmailChangeTokens:
        """A pending move to ``new_email``, replacing any earlier one, and its two single-use
        tokens: ``confirm`` for the new address, ``cancel`` for the one in use (which keeps
        working until the move is confirmed). InvalidValue when ``new_email`` is the address in
        use, in any letter case; nothing changes then."""
        if new_email.normalized == self.email.normalized:
            raise InvalidValue("is the address the account already has")
        confirm, cancel = issue_token(self.id), issue_token(self.id)
        expires_at = now + lifetime
        self.pending_email_change = PendingEmailChange(
            new_email,
            confirm_token_hash=confirm.token_hash,
            cancel_token_hash=cancel.token_hash,
            requested_at=now,
            expires_at=expires_at,
        )
        self._record(
            EmailChangeRequested(
                self.id.value, now, new_email=new_email.value, expires_at=expires_at
            )
        )
        return EmailChangeTokens(confirm, cancel, expires_at)

    def confirm_email_change(self, presented: TokenLookup, now: datetime) -> None:
        """Move to the pending address with the token mailed there, which proves it: EmailChanged
        and EmailVerified. A pending password reset is void (its link went to the old address).
        InvalidEmailChangeToken unless ``presented`` is the pending change's confirm token,
        unexpired."""
        pending = self._pending_change(presented, confirming=True, now=now)
        self.change_email(pending.new_email, now=now)
        self.mark_email_verified(now)
        self.pending_email_change = None
        self.password_reset = None

    def cancel_email_change(self, presented: TokenLookup, now: datetime) -> None:
        """Drop the pending change with the token mailed to the address in use:
        EmailChangeCancelled. InvalidEmailChangeToken unless ``presented`` is its cancel token,
        unexpired."""
        pending = self._pending_change(presented, confirming=False, now=now)
        self.pending_email_change = None
        self._record(EmailChangeCancelled(self.id.value, now, new_email=pending.new_email.value))

    def change_email_verified(self, new_email: Email, now: datetime) -> None:
        """An administrator moves the account to ``new_email`` and vouches for it (support):
        EmailChanged and EmailVerified; any pending change and pending reset are void.
        InvalidValue when it is the address in use, in any letter case."""
        if new_email.normalized == self.email.normalized:
            raise InvalidValue("is the address the account already has")
        self.change_email(new_email, now=now)
        self.mark_email_verified(now)
        self.pending_email_change = None
        self.password_reset = None

    def _pending_change(
        self, presented: TokenLookup, *, confirming: bool, now: datetime
    ) -> PendingEmailChange:
        pending = self.pending_email_change
        if pending is None:
            raise InvalidEmailChangeToken()
        stored = pending.confirm_token_hash if confirming else pending.cancel_token_hash
        if not same_hash(stored, presented.token_hash) or not pending.is_usable(now):
            raise InvalidEmailChangeToken()
        return pending

    def mark_deleted(self, *, now: datetime) -> None:
        self.events.append(UserDeleted(user_id=self.id.value, occurred_at=now))

    # --- sign-in and lock-out -------------------------------------------------------------

    def lock_remaining(self, now: datetime) -> timedelta | None:
        """How long sign-in stays refused, or None when it is not."""
        if self.locked_until is None or now >= self.locked_until:
            return None
        return self.locked_until - now

    def record_failed_login(self, now: datetime, policy: LockoutPolicy) -> bool:
        """Count a failed attempt: a wrong password, or any password while sign-in is refused;
        whether it is the one that begins a lock-out (then ``notify_lock`` follows, after the
        reply).

        After the ``max_failures``-th wrong password in a row each further one makes the next
        attempt wait ``policy.delay_after(guesses)``. An attempt during a wait is refused, and
        counted, but it tested no password, so it neither lengthens the waits nor moves the
        running one: hammering a locked account does not keep its owner out any longer.
        """
        self.failed_logins += 1
        if self.lock_remaining(now) is not None:
            return False
        self.failed_guesses += 1
        delay = policy.delay_after(self.failed_guesses)
        if delay is None:
            return False
        self.locked_until = now + delay
        # The threshold is crossed once per run of failures: one notice, however many follow.
        return self.failed_guesses == policy.max_failures

    def notify_lock(
        self,
        now: datetime,
        policy: LockoutPolicy,
        *,
        reset_lifetime: timedelta,
        mail: SecurityMailPolicy,
    ) -> IssuedToken | None:
        """Record that the run of failures which reached ``max_failures`` locked the account
        (AccountLocked), and for an active account issue a reset token for the lock notice,
        unless the security mail limit (``mail``) holds it back: then the link mailed last stays
        valid. Nothing when that run has ended since (a sign-in succeeded, or a reset)."""
        if self.failed_guesses < policy.max_failures or self.locked_until is None:
            return None
        self._record(AccountLocked(self.id.value, now, locked_until=self.locked_until))
        if self.status is not UserStatus.ACTIVE:
            return None  # a disabled account gets no reset link (disable() voids any)
        if not self.may_send_security_mail(now, mail):
            return None
        self.record_security_mail(now, mail)
        return self.request_password_reset(now, reset_lifetime)

    def record_successful_login(self) -> None:
        self.failed_logins, self.failed_guesses, self.locked_until = 0, 0, None

    # --- sessions ----------------------------------------------------------------------------
    # Sessions are not held in the user's record: a use case reads the ones it needs (the
    # SessionRepository port) and hands them in; these methods decide, record the events, and
    # say which sessions to store or drop. A session is live only in the user's current
    # ``session_epoch``: ending them all moves the epoch on, whatever their number.

    def start_session(
        self,
        now: datetime,
        policy: SessionPolicy,
        current: Sequence[Session],
        client: ClientDetails = NO_CLIENT_DETAILS,
        amr: tuple[str, ...] = AMR_PASSWORD,
    ) -> SessionStart:
        """A new session with a fresh refresh token, given the sessions of the current epoch;
        beyond the limit the oldest live session ends (EVICTED), and those found expired end too
        (EXPIRED, at most MAX_ENDED_AT_SIGN_IN - evicted of them; the rest at a later sign-in).
        ``client``: the device it is opened from, and ``amr``: how the sign-in was proven (RFC
        8176), both kept with it."""
        session_id = str(uuid.uuid4())
        token = issue_token(self.id, session_id)
        session = Session(
            session_id=session_id,
            token_hash=token.token_hash,
            created_at=now,
            expires_at=now + policy.absolute_lifetime,
            last_used_at=now,
            epoch=self.session_epoch,
            client=client,
            amr=amr,
        )
        mine = [s for s in current if s.epoch == self.session_epoch]
        live = sorted(
            (s for s in mine if s.is_live(now, policy.idle_lifetime)), key=lambda s: s.created_at
        )
        evicted = live[: max(len(live) - policy.max_sessions + 1, 0)]
        expired = [s for s in mine if not s.is_live(now, policy.idle_lifetime)]
        expired = expired[: max(MAX_ENDED_AT_SIGN_IN - len(evicted), 0)]
        for ended in expired:
            self._record_revoked(ended.session_id, SessionEndReason.EXPIRED, now)
        for ended in evicted:
            self._record_revoked(ended.session_id, SessionEndReason.EVICTED, now)
        self._record(SessionStarted(self.id.value, now, session_id=session.session_id))
        return SessionStart(session, token, ended=(*expired, *evicted))

    def refresh_session(
        self,
        session: Session | None,
        presented: TokenLookup,
        now: datetime,
        policy: SessionPolicy,
    ) -> RefreshOutcome:
        """Rotate ``session`` (the one ``presented`` names, as stored; None when there is none),
        or tell why not (see RefreshOutcome)."""
        if (
            session is None
            or session.epoch != self.session_epoch
            or not _holds(session, presented.token_hash)
        ):
            return RefreshOutcome(RefreshResult.UNKNOWN)
        if not session.is_live(now, policy.idle_lifetime):
            self._record_revoked(session.session_id, SessionEndReason.EXPIRED, now)
            return RefreshOutcome(RefreshResult.EXPIRED, previous=session)
        if same_hash(session.token_hash, presented.token_hash):
            return self._rotate(session, now, policy)
        in_grace = (
            same_hash(session.previous_token_hash, presented.token_hash)
            and session.rotated_at is not None
            and now - session.rotated_at <= policy.reuse_grace
        )
        if in_grace:
            # A concurrent refresh with this token won. Rotating again would fork the session into
            # two token chains, and the token it retires would then look stolen to the next caller.
            return RefreshOutcome(RefreshResult.RACED)
        # An exchanged token is back after the grace: someone holds a copy. End the session.
        self._record_revoked(session.session_id, SessionEndReason.TOKEN_REUSED, now)
        return RefreshOutcome(RefreshResult.REUSED, previous=session)

    def session_holding(self, current: Sequence[Session], token_hash: str) -> Session | None:
        """The session of the current epoch that holds (or recently held) this token."""
        found = None
        for session in current:  # no early exit: the time taken does not depend on a match
            if _holds(session, token_hash) and session.epoch == self.session_epoch:
                found = session
        return found

    def end_session(self, session: Session, reason: SessionEndReason, now: datetime) -> None:
        """Record that ``session`` ends (the caller drops it from the store)."""
        self._record_revoked(session.session_id, reason, now)

    def live_sessions(
        self, current: Sequence[Session], now: datetime, policy: SessionPolicy
    ) -> list[Session]:
        """The sessions of ``current`` that are live (of the current epoch, not expired), newest
        first."""
        live = [
            s
            for s in current
            if s.epoch == self.session_epoch and s.is_live(now, policy.idle_lifetime)
        ]
        return sorted(live, key=lambda s: (s.created_at, s.session_id), reverse=True)

    def revoke_session(
        self, session: Session | None, by: Requester, now: datetime, policy: SessionPolicy
    ) -> Session:
        """End one session on request (REVOKED_BY_USER or REVOKED_BY_ADMIN, as ``by`` says):
        ``session``, the one the request names as stored (None: none is). SessionNotFound unless
        it is live; the caller drops the session returned."""
        if session is None or not self.live_sessions([session], now, policy):
            raise SessionNotFound()
        reason = (
            SessionEndReason.REVOKED_BY_USER
            if by is Requester.USER
            else SessionEndReason.REVOKED_BY_ADMIN
        )
        self._record_revoked(session.session_id, reason, now)
        return session

    def end_sessions(
        self,
        now: datetime,
        policy: SessionPolicy,
        current: Sequence[Session],
        reason: SessionEndReason = SessionEndReason.LOGOUT_ALL,
        *,
        keep_session_id: str | None = None,
    ) -> SessionsEnded:
        """End every session but ``keep_session_id``, for ``reason``, by moving the session epoch
        on; ``current``: the sessions of the current epoch, to count those that were live. The
        kept session moves to the new epoch. Nothing changes when no live session would end."""
        live = [
            s
            for s in current
            if s.epoch == self.session_epoch and s.is_live(now, policy.idle_lifetime)
        ]
        kept = next((s for s in live if s.session_id == keep_session_id), None)
        ended = len(live) - (kept is not None)
        if not ended:
            return SessionsEnded(0)
        self.session_epoch += 1
        self._record(
            SessionsRevoked(
                self.id.value,
                now,
                reason=reason,
                sessions_ended=ended,
                kept_session_id=kept.session_id if kept else None,
            )
        )
        if kept is None:
            return SessionsEnded(ended)
        return SessionsEnded(ended, kept, dataclasses.replace(kept, epoch=self.session_epoch))

    # --- sign-in with a second factor --------------------------------------------------------
    # A sign-in whose password was right, of a user with a second factor, opens no session: it
    # issues a challenge, and the session opens when a factor is shown against it. The password
    # alone resets no failure counts (else knowing it would buy endless tries at the codes).

    def sign_in_factors(self) -> tuple[SignInFactor, ...]:
        """The factors that complete a challenged sign-in of this user; () when sign-in needs
        none. Recovery codes go with TOTP (they are issued at its enrollment)."""
        kinds = self.second_factor_kinds()
        factors: list[SignInFactor] = []
        if SecondFactorKind.TOTP in kinds:
            factors += [SignInFactor.TOTP, SignInFactor.RECOVERY_CODE]
        if SecondFactorKind.PASSKEY in kinds:
            factors.append(SignInFactor.PASSKEY)
        return tuple(factors)

    def issue_sign_in_challenge(self, now: datetime, lifetime: timedelta) -> IssuedSignInChallenge:
        """A new single-use challenge, valid for ``lifetime``: kept as a hash with the user's
        unexpired ones (beyond MAX_SIGN_IN_CHALLENGES the oldest is dropped)."""
        token = issue_token(self.id)
        # Whole seconds: what the store keeps, so the expiry told is the one that holds.
        expires_at = (now + lifetime).replace(microsecond=0)
        # A WebAuthn challenge only for a user with passkeys: 32 bytes a challenge on the item,
        # which for a TOTP user with one pending would pass 1 KB and bill 2 write units.
        webauthn_challenge = new_webauthn_challenge() if self.passkeys else b""
        challenge = SignInChallenge(token.token_hash, expires_at, webauthn_challenge)
        kept = [c for c in self.sign_in_challenges if c.is_usable(now)]
        kept = kept[max(len(kept) - MAX_SIGN_IN_CHALLENGES + 1, 0) :]
        self.sign_in_challenges = (*kept, challenge)
        return IssuedSignInChallenge(
            token.value, challenge.expires_at, self.sign_in_factors(), challenge.webauthn_challenge
        )

    def sign_in_challenge(self, presented: TokenLookup, now: datetime) -> SignInChallenge:
        """The usable challenge ``presented`` is the token of; InvalidSignInChallenge when there
        is none (unknown, expired, used, dropped after wrong codes, another user's)."""
        found = None
        for challenge in self.sign_in_challenges:  # no early exit: the time tells nothing
            if same_hash(challenge.token_hash, presented.token_hash):
                found = challenge
        if (
            found is None
            or presented.user_id != self.id
            or presented.session_id is not None
            or not found.is_usable(now)
        ):
            raise InvalidSignInChallenge()
        return found

    def count_wrong_code(
        self,
        challenge: SignInChallenge,
        now: datetime,
        lockout: LockoutPolicy,
        max_wrong_codes: int,
    ) -> bool:
        """A wrong code was shown against ``challenge``: it counts toward the lock-out as a wrong
        password does (the return value: whether it begins one, see record_failed_login), and
        toward the challenge's limit (at ``max_wrong_codes`` the challenge is dropped)."""
        kept: list[SignInChallenge] = []
        for stored in self.sign_in_challenges:
            if stored is not challenge:
                kept += [stored] if stored.is_usable(now) else []
            elif stored.wrong_codes + 1 < max_wrong_codes:
                kept.append(dataclasses.replace(stored, wrong_codes=stored.wrong_codes + 1))
        self.sign_in_challenges = tuple(kept)
        return self.record_failed_login(now, lockout)

    def complete_sign_in(self, challenge: SignInChallenge, now: datetime) -> None:
        """A factor was shown against ``challenge``: it is spent (expired ones go with it), and
        the sign-in succeeded (the failures in a row end); start_session follows."""
        self.sign_in_challenges = tuple(
            c for c in self.sign_in_challenges if c is not challenge and c.is_usable(now)
        )
        self.record_successful_login()

    # --- password ----------------------------------------------------------------------------

    def upgrade_password_hash(self, password_hash: str) -> None:
        """Store a stronger hash of the same password (made at sign-in); nothing else changes."""
        self.password_hash = password_hash

    def change_password(
        self,
        password_hash: str,
        now: datetime,
        reason: PasswordChangeReason = PasswordChangeReason.CHANGED,
    ) -> None:
        self.password_hash = password_hash
        # Both pending links were asked for under the old password: whoever knew it (or held an
        # access token of it) may have asked for them, so the owner's recovery voids them.
        self.password_reset = None
        self.pending_email_change = None
        # So are the sign-ins that proved the old password and wait on a second factor.
        self.sign_in_challenges = ()
        self._touch(now)
        self._record(PasswordChanged(self.id.value, now, reason=reason))

    def request_password_reset(self, now: datetime, lifetime: timedelta) -> IssuedToken:
        """A new single-use reset token; it replaces any earlier one."""
        token = issue_token(self.id)
        self.password_reset = PasswordReset(
            token.token_hash, requested_at=now, expires_at=now + lifetime
        )
        self._record(PasswordResetRequested(self.id.value, now, expires_at=now + lifetime))
        return token

    def reset_password(
        self,
        presented: TokenLookup,
        password_hash: str,
        now: datetime,
        policy: SessionPolicy,
        current: Sequence[Session],
    ) -> None:
        """Set a new password with a reset token; every session ends and any lock lifts."""
        self.check_reset_token(presented, now)
        self.change_password(password_hash, now, PasswordChangeReason.RESET)
        self.end_sessions(now, policy, current, SessionEndReason.PASSWORD_RESET)
        self.record_successful_login()

    def check_reset_token(self, presented: TokenLookup, now: datetime) -> None:
        """InvalidResetToken unless ``presented`` is the pending reset's token, unexpired."""
        reset = self.password_reset
        if (
            reset is None
            or not same_hash(reset.token_hash, presented.token_hash)
            or not reset.is_usable(now)
        ):
            raise InvalidResetToken()

    # --- second factors ----------------------------------------------------------------------

    def second_factor_kinds(self) -> frozenset[SecondFactorKind]:
        """The kinds of second factor that are on for this user (sign-in asks for one of them)."""
        kinds: set[SecondFactorKind] = set()
        if self.totp is not None:
            kinds.add(SecondFactorKind.TOTP)
        if self.passkeys:
            kinds.add(SecondFactorKind.PASSKEY)
        return frozenset(kinds)

    @property
    def recovery_codes_remaining(self) -> int:
        return len(self.recovery_code_hashes)

    def use_totp_code(self, code: str, now: datetime, codes: TotpCodes) -> None:
        """Accept a code from the user's authenticator app: it must be the code of a time step
        within one of ``now``'s and later than the last one accepted, which it becomes (to store;
        no event, no new version). InvalidSecondFactorCode, nothing changed, when TOTP is off or
        the code is malformed, wrong or replayed."""
        factor = self.totp
        if factor is None:
            raise InvalidSecondFactorCode()
        try:
            digits = parse_totp_code(code)
        except InvalidValue:
            raise InvalidSecondFactorCode() from None
        step = codes.matching_step(
            factor.sealed_secret, digits, now, after_step=factor.last_used_step
        )
        if step is None:
            raise InvalidSecondFactorCode()
        self.totp = dataclasses.replace(factor, last_used_step=step)

    def use_recovery_code(self, code: str, now: datetime) -> None:
        """Spend one of the user's recovery codes (in any letter case, with or without its dashes
        and spaces): it stops working (RecoveryCodeUsed, with how many remain; no new version).
        InvalidSecondFactorCode, nothing changed, for a code that is malformed, wrong or used."""
        try:
            presented = hash_recovery_code(self.id.value, normalize_recovery_code(code))
        except InvalidValue:
            raise InvalidSecondFactorCode() from None
        index = find_recovery_code(self.recovery_code_hashes, presented)
        if index is None:
            raise InvalidSecondFactorCode()
        hashes = self.recovery_code_hashes
        self.recovery_code_hashes = hashes[:index] + hashes[index + 1 :]
        self._record(RecoveryCodeUsed(self.id.value, now, remaining=len(self.recovery_code_hashes)))

    def begin_totp_enrollment(self, sealed_secret: SealedSecret, now: datetime) -> datetime:
        """Begin enrolling an authenticator app with a new secret (sealed): it waits for a code
        from the app until the time returned, replacing an enrollment pending before (whose
        codes then never confirm). TotpAlreadyEnabled while TOTP is on. No event: nothing is on
        until confirmed."""
        if self.totp is not None:
            raise TotpAlreadyEnabled()
        expires_at = now + TOTP_ENROLLMENT_LIFETIME
        self.pending_totp = PendingTotpEnrollment(
            sealed_secret, begun_at=now, expires_at=expires_at
        )
        return expires_at

    def confirm_totp_enrollment(
        self, code: str, now: datetime, codes: TotpCodes
    ) -> IssuedRecoveryCodes:
        """Turn TOTP on with a code the app shows for the pending secret (SecondFactorAdded), with
        ten new recovery codes (returned, to show once; any earlier ones stop working). The code's
        time step counts as used. TotpAlreadyEnabled, NoTotpEnrollmentPending (none, or expired),
        InvalidSecondFactorCode: nothing changes."""
        if self.totp is not None:
            raise TotpAlreadyEnabled()
        pending = self.pending_totp
        if pending is None or not pending.is_usable(now):
            raise NoTotpEnrollmentPending()
        try:
            digits = parse_totp_code(code)
        except InvalidValue:
            raise InvalidSecondFactorCode() from None
        step = codes.matching_step(pending.sealed_secret, digits, now, after_step=None)
        if step is None:
            raise InvalidSecondFactorCode()
        self.totp = TotpFactor(pending.sealed_secret, confirmed_at=now, last_used_step=step)
        self.pending_totp = None
        issued = issue_recovery_codes(self.id.value)
        self.recovery_code_hashes = issued.hashes
        self._touch(now)
        self._record(SecondFactorAdded(self.id.value, now, SecondFactorKind.TOTP, TOTP_FACTOR_ID))
        return issued

    def regenerate_recovery_codes(self, now: datetime) -> IssuedRecoveryCodes:
        """Ten new recovery codes (returned, to show once); the old ones stop working
        (RecoveryCodesRegenerated). The caller checked a current TOTP code first. TotpNotEnabled
        while TOTP is off: recovery codes go with it."""
        if self.totp is None:
            raise TotpNotEnabled()
        issued = issue_recovery_codes(self.id.value)
        self.recovery_code_hashes = issued.hashes
        self._touch(now)
        self._record(RecoveryCodesRegenerated(self.id.value, now, count=len(issued.hashes)))
        return issued

    def disable_totp(self, now: datetime) -> None:
        """Turn TOTP off, and the recovery codes go with it (SecondFactorRemoved); the caller
        checked a code, or acts through an administrator's role. TotpNotEnabled when it is off."""
        if self.totp is None:
            raise TotpNotEnabled()
        self.totp, self.pending_totp, self.recovery_code_hashes = None, None, ()
        self._touch(now)
        self._record(SecondFactorRemoved(self.id.value, now, SecondFactorKind.TOTP, TOTP_FACTOR_ID))

    def reset_second_factors(self, now: datetime) -> frozenset[SecondFactorKind]:
        """An administrator removes every second factor (TOTP and every passkey), a pending
        enrollment or passkey registration and the recovery codes (SecondFactorsReset); the kinds
        that were on are returned. Nothing happens, and no event, when the user had none of
        them."""
        removed = self.second_factor_kinds()
        pending = self.pending_totp is not None or self.passkey_registration is not None
        if not removed and not pending and not self.recovery_code_hashes:
            return removed
        self.totp, self.pending_totp, self.recovery_code_hashes = None, None, ()
        self.passkeys, self.passkey_registration = (), None
        self._touch(now)
        self._record(SecondFactorsReset(self.id.value, now))
        return removed

    # --- passkeys -----------------------------------------------------------------------------

    def passkey(self, passkey_id: str) -> Passkey | None:
        return next((p for p in self.passkeys if p.passkey_id == passkey_id), None)

    def begin_passkey_registration(self, now: datetime, lifetime: timedelta) -> bytes:
        """A new registration ceremony, replacing any unfinished one: its challenge.
        PasskeyLimitReached when the account holds MAX_PASSKEYS already."""
        if len(self.passkeys) >= MAX_PASSKEYS:
            raise PasskeyLimitReached(MAX_PASSKEYS)
        challenge = new_challenge()
        self.passkey_registration = PasskeyRegistration(challenge, now + lifetime)
        return challenge

    def passkey_registration_challenge(self, now: datetime) -> bytes:
        """The challenge of the registration ceremony under way; PasskeyCeremonyFailed when
        none is (never begun, finished, expired)."""
        pending = self.passkey_registration
        if pending is None or not pending.is_usable(now):
            raise PasskeyCeremonyFailed()
        return pending.challenge

    def add_passkey(self, new: NewPasskey, name: str, now: datetime) -> Passkey:
        """Keep the passkey a verified registration yielded, ending its ceremony (it is single
        use): SecondFactorAdded. PasskeyCeremonyFailed when the account has this credential
        already (the options excluded it); PasskeyLimitReached at the limit."""
        self.passkey_registration_challenge(now)
        if self.passkey(new.passkey_id) is not None:
            raise PasskeyCeremonyFailed()
        if len(self.passkeys) >= MAX_PASSKEYS:
            raise PasskeyLimitReached(MAX_PASSKEYS)
        passkey = Passkey(
            passkey_id=new.passkey_id,
            public_key=new.public_key,
            sign_count=new.sign_count,
            name=name,
            created_at=now,
            transports=new.transports,
            backup_eligible=new.backup_eligible,
            backed_up=new.backed_up,
        )
        self.passkeys = (*self.passkeys, passkey)
        self.passkey_registration = None
        self._touch(now)
        self._record(
            SecondFactorAdded(
                self.id.value, now, kind=SecondFactorKind.PASSKEY, factor_id=passkey.passkey_id
            )
        )
        return passkey

    def remove_passkey(self, passkey_id: str, now: datetime) -> Passkey:
        """Drop one passkey (SecondFactorRemoved); PasskeyNotFound unless the account has it."""
        removed = self.passkey(passkey_id)
        if removed is None:
            raise PasskeyNotFound()
        self.passkeys = tuple(p for p in self.passkeys if p.passkey_id != passkey_id)
        self._touch(now)
        self._record(
            SecondFactorRemoved(
                self.id.value, now, kind=SecondFactorKind.PASSKEY, factor_id=passkey_id
            )
        )
        return removed

    def use_passkey(
        self,
        passkey_id: str,
        verified: VerifiedAssertion,
        now: datetime,
        *,
        spent: tuple[str, datetime] | None = None,
    ) -> None:
        """Record a verified assertion of the passkey: its new counter, its use, and ``spent``
        (the digest of the sign-in challenge it answered, and its ceremony's expiry), which no
        later assertion may answer again. PasskeyCeremonyFailed when that challenge was spent
        already, or a counter that counts did not go up (a cloned authenticator, or a replay),
        or too many ceremonies are still unexpired to remember one more."""
        passkey = self.passkey(passkey_id)
        if passkey is None:
            raise PasskeyCeremonyFailed()
        counting = verified.sign_count > 0 or passkey.sign_count > 0
        if counting and verified.sign_count <= passkey.sign_count:
            raise PasskeyCeremonyFailed()
        if spent is not None:
            live = [(d, until) for d, until in self.spent_sign_in_challenges if now < until]
            if any(digest == spent[0] for digest, _ in live):
                raise PasskeyCeremonyFailed()
            if len(live) >= MAX_SPENT_SIGN_IN_CHALLENGES:
                raise PasskeyCeremonyFailed()
            self.spent_sign_in_challenges = (*live, spent)
        used = dataclasses.replace(
            passkey, sign_count=verified.sign_count, last_used_at=now, backed_up=verified.backed_up
        )
        self.passkeys = tuple(used if p.passkey_id == passkey_id else p for p in self.passkeys)

    # --- security mail limits ------------------------------------------------------------------

    def may_send_security_mail(self, now: datetime, policy: SecurityMailPolicy) -> bool:
        """Whether security mail may go to this user's address now: none within the cool-down,
        and fewer than the policy's maximum within its window."""
        recent = self._recent_security_mail(now, policy)
        if len(recent) >= policy.max_per_window:
            return False
        return not recent or now - recent[-1] >= policy.cooldown

    def record_security_mail(self, now: datetime, policy: SecurityMailPolicy) -> None:
        """Note that security mail goes out now (in the same write as the change it tells of)."""
        self.security_mail_sent_at = (*self._recent_security_mail(now, policy), now)[
            -policy.max_per_window :
        ]

    def security_mail_wait(self, now: datetime, policy: SecurityMailPolicy) -> timedelta | None:
        """How long until security mail may go to this user again (None: it may now)."""
        recent = self._recent_security_mail(now, policy)
        if not recent:
            return None
        until = recent[-1] + policy.cooldown
        if len(recent) >= policy.max_per_window:
            # The oldest mails that must leave the window before one more fits.
            until = max(until, recent[len(recent) - policy.max_per_window] + policy.window)
        return until - now if until > now else None

    def _recent_security_mail(self, now: datetime, policy: SecurityMailPolicy) -> list[datetime]:
        return [sent for sent in self.security_mail_sent_at if now - sent < policy.window]

    # --- administration ----------------------------------------------------------------------

    def disable(self, now: datetime, policy: SessionPolicy, current: Sequence[Session]) -> None:
        """Block sign-in and refresh: every session ends, and a pending reset or verification is
        void."""
        if self.status is not UserStatus.DISABLED:
            self.status = UserStatus.DISABLED
            self._touch(now)
            self._record(UserDisabled(self.id.value, now))
        self.end_sessions(now, policy, current, SessionEndReason.USER_DISABLED)
        self.password_reset = None
        self.pending_email_change = None
        self.email_verification = None
        self.sign_in_challenges = ()

    def enable(self, now: datetime) -> None:
        if self.status is not UserStatus.ACTIVE:
            self.status = UserStatus.ACTIVE
            self._touch(now)
            self._record(UserEnabled(self.id.value, now))

    # --- internals ---------------------------------------------------------------------------

    def _touch(self, now: datetime) -> None:
        """Mark a change callers can see: it moves updated_at, and the version on commit."""
        self.updated_at = now
        self.touched = True

    def _record_revoked(self, session_id: str, reason: SessionEndReason, now: datetime) -> None:
        self._record(SessionRevoked(self.id.value, now, session_id=session_id, reason=reason))

    def _record(self, event: DomainEvent) -> None:
        self.events.append(event)

    def _rotate(self, session: Session, now: datetime, policy: SessionPolicy) -> RefreshOutcome:
        token = issue_token(self.id, session.session_id)
        retired = session.retired_token_hashes
        if session.previous_token_hash is not None:
            retired = (*retired, session.previous_token_hash)[-policy.retired_tokens_kept :]
        rotated = dataclasses.replace(
            session,
            token_hash=token.token_hash,
            last_used_at=now,
            previous_token_hash=session.token_hash,
            rotated_at=now,
            retired_token_hashes=retired,
        )
        return RefreshOutcome(RefreshResult.ROTATED, rotated, token, previous=session)


def _holds(session: Session, token_hash: str) -> bool:
    """Whether the session holds, or held, the token (compared in constant time, every hash)."""
    hashes = (session.token_hash, session.previous_token_hash, *session.retired_token_hashes)
    return any([same_hash(stored, token_hash) for stored in hashes])


class RefreshResult(enum.Enum):
    """What presenting a refresh token led to."""

    ROTATED = "rotated"  # a new token was issued; the presented one is now the previous one
    UNKNOWN = "unknown"  # no session of this user holds or held the token
    EXPIRED = "expired"  # the session outlived its absolute or idle lifetime and has ended
    REUSED = "reused"  # an exchanged token came back after the grace: the session has ended
    RACED = "raced"  # a concurrent refresh with this token won within the grace; nothing changed


@dataclass(frozen=True)
class RefreshOutcome:
    """The result of a refresh attempt and, when rotated, the session and its new token;
    ``previous``: the session as it was stored, when it is rotated or ended."""

    result: RefreshResult
    session: Session | None = None
    token: IssuedToken | None = None
    previous: Session | None = None


@dataclass(frozen=True)
class EmailChangeTokens:
    """The two tokens of a requested email change (secrets, to mail once) and their expiry."""

    confirm: IssuedToken
    cancel: IssuedToken
    expires_at: datetime


@dataclass(frozen=True)
class SessionStart:
    """A sign-in's new session and its refresh token, and the sessions it ended (to drop)."""

    session: Session
    token: IssuedToken
    ended: tuple[Session, ...] = ()


@dataclass(frozen=True)
class SessionsEnded:
    """How many live sessions ``end_sessions`` ended, and the kept one as it was stored
    (``kept``) and in the new epoch (``moved``)."""

    count: int
    kept: Session | None = None
    moved: Session | None = None
