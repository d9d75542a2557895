"""Passkeys (WebAuthn credentials): the values the User aggregate keeps of each, the ceremonies in
flight, and the port that checks what a browser's authenticator answered.

The domain decides who may register, use and remove a passkey, and keeps what must be kept; it
never parses WebAuthn itself: the ``WebAuthn`` port (server side: py_webauthn with the relying
party's id and origins from the settings) makes the options and verifies the responses.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import struct
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from domain.errors import InvalidValue
from domain.pagination import TokenSigner
from domain.values import UserId

MAX_PASSKEYS = 10
PASSKEY_NAME_MAX_LENGTH = 64
DEFAULT_PASSKEY_NAME = "Passkey"
# WebAuthn's own bound on a credential id (§5.8.3: at most 1023 bytes).
CREDENTIAL_ID_MAX_BYTES = 1023
# The most a credential's COSE public key may weigh: an RSA-4096 key takes about 530 bytes, a P-256
# or Ed25519 key under 100. An authenticator answering "none" attestation signs nothing, so any
# client may hand in a key padded with entries nobody reads; kept, they would weigh on the user
# item (written, and paid for by the KB, at every sign-in).
PUBLIC_KEY_MAX_BYTES = 1024
# The most a browser's PublicKeyCredential JSON may weigh here (an attestation with a certificate
# chain is a few KiB; "none" attestation, which is all this service asks for, well under one).
CREDENTIAL_JSON_MAX_LENGTH = 16 * 1024
CHALLENGE_BYTES = 32
# How long the options of a ceremony stay good: the browser's own timeout is 60 s by default.
CEREMONY_LIFETIME = timedelta(minutes=5)
# The sign-in challenges spent lately, kept on the user item until their ceremony expires.
MAX_SPENT_SIGN_IN_CHALLENGES = 32


def parse_passkey_name(raw: str) -> str:
    """A passkey's name, as its owner calls it ("Anna's phone"); empty: ``DEFAULT_PASSKEY_NAME``."""
    text = unicodedata.normalize("NFC", raw.strip())
    if not text:
        return DEFAULT_PASSKEY_NAME
    if len(text) > PASSKEY_NAME_MAX_LENGTH:
        raise InvalidValue(f"must be at most {PASSKEY_NAME_MAX_LENGTH} characters")
    if not text.isprintable():
        raise InvalidValue("must be printable, without control characters")
    return text


def parse_passkey_id(raw: str) -> str:
    """A passkey's id: its WebAuthn credential id, base64url without padding, as ListPasskeys
    shows it."""
    raw = raw.strip()
    if not raw:
        raise InvalidValue("must not be empty")
    try:
        decoded = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        raise InvalidValue("must be a passkey id as ListPasskeys shows it") from None
    if not decoded or len(decoded) > CREDENTIAL_ID_MAX_BYTES or b64url(decoded) != raw:
        raise InvalidValue("must be a passkey id as ListPasskeys shows it")
    return raw


def parse_credential_json(raw: str) -> str:
    """The browser's PublicKeyCredential as JSON, bounded in size (its shape is the port's to
    check)."""
    if not raw.strip():
        raise InvalidValue("must not be empty")
    if len(raw) > CREDENTIAL_JSON_MAX_LENGTH:
        raise InvalidValue(f"must be at most {CREDENTIAL_JSON_MAX_LENGTH} characters")
    return raw


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def passkey_id_bytes(passkey_id: str) -> bytes:
    """The credential id a passkey id spells (one parse_passkey_id took)."""
    return base64.urlsafe_b64decode(passkey_id + "=" * (-len(passkey_id) % 4))


def user_handle(user_id: UserId) -> bytes:
    """The WebAuthn user handle of a user: the 16 bytes of its UUID (no personal data, §14.6.1)."""
    return uuid.UUID(user_id.value).bytes


def user_id_of_handle(handle: bytes) -> UserId | None:
    """The user a user handle names; None when it cannot be one of ours."""
    if len(handle) != 16:
        return None
    return UserId(str(uuid.UUID(bytes=handle)))


@dataclass(frozen=True)
class Passkey:
    """One registered WebAuthn credential of a user.

    ``passkey_id``: the credential id, base64url. ``public_key``: the credential's COSE public
    key (not a secret). ``sign_count``: the authenticator's signature counter as last seen (0:
    it does not count, as synced passkeys do not). ``backup_eligible`` / ``backed_up``: the BE
    and BS flags (a passkey that may be, or is, synced to other devices).
    """

    passkey_id: str
    public_key: bytes = field(repr=False)
    sign_count: int
    name: str
    created_at: datetime
    last_used_at: datetime | None = None
    transports: tuple[str, ...] = ()
    backup_eligible: bool = False
    backed_up: bool = False


# A passkey of nobody: an assertion of no account (or of a passkey the account does not have) is
# checked against it, so that its refusal costs the signature check a real passkey's does and the
# time taken does not tell whether the account exists. Its key is a P-256 public key (COSE) whose
# private key was thrown away when it was made.
NOBODYS_PASSKEY = Passkey(
    passkey_id="",
    public_key=bytes.fromhex(
        "a5010203262001215820cbb2a1619bd8a241f8c9496c1039895d1f3cad8fdd72b1123c37ea4fcab5bc2422"
        "58200d2bcfaaeda8b0c6219551bf0c761c6e9c6a968b0c602ebf54e3989b67cb3f3a"
    ),
    sign_count=0,
    name="",
    created_at=datetime(1970, 1, 1, tzinfo=UTC),
)


@dataclass(frozen=True)
class PasskeyRegistration:
    """A registration ceremony begun and not yet finished: the challenge its options carry (a
    public nonce, not a secret: the browser echoes it signed) and when it stops being good."""

    challenge: bytes = field(repr=False)
    expires_at: datetime

    def is_usable(self, now: datetime) -> bool:
        return now < self.expires_at


@dataclass(frozen=True)
class NewPasskey:
    """What a verified registration yields: the credential to keep."""

    passkey_id: str
    public_key: bytes = field(repr=False)
    sign_count: int
    transports: tuple[str, ...]
    backup_eligible: bool
    backed_up: bool


@dataclass(frozen=True)
class PresentedAssertion:
    """What an assertion says of itself before it is verified: the credential it is of, and the
    user handle the authenticator keeps with it (absent for a non-discoverable credential)."""

    passkey_id: str
    user_handle: bytes | None


@dataclass(frozen=True)
class VerifiedAssertion:
    """A verified assertion: the authenticator's new signature counter, its BS flag, and its UV
    flag (the authenticator verified its user: PIN, biometrics; unset, it proved possession
    only)."""

    sign_count: int
    backed_up: bool
    user_verified: bool = False


class PasskeyNotVerified(Exception):
    """The port could not verify a ceremony's response (wrong origin, rp id, challenge,
    signature, counter...); the use case refuses it without saying which."""


class WebAuthn(Protocol):
    """The relying party's side of WebAuthn: options out, responses in.

    ``verify_*`` raise InvalidValue for a credential that is not a PublicKeyCredential's JSON
    at all (malformed: not JSON, a field missing or not base64url), and PasskeyNotVerified for
    one that is well formed but does not verify.
    """

    def creation_options(
        self,
        *,
        user_id: UserId,
        user_name: str,
        display_name: str,
        challenge: bytes,
        exclude: Sequence[Passkey],
    ) -> str:
        """PublicKeyCredentialCreationOptions as JSON (navigator.credentials.create)."""
        ...

    def request_options(
        self, *, challenge: bytes, allow: Sequence[Passkey], require_user_verification: bool = False
    ) -> str:
        """PublicKeyCredentialRequestOptions as JSON (navigator.credentials.get); ``allow``
        empty: any discoverable credential. User verification is asked as required when
        ``require_user_verification``, else as preferred."""
        ...

    def read_registration(self, credential_json: str) -> str:
        """The credential id a registration response claims (InvalidValue when malformed);
        nothing is verified yet."""
        ...

    def verify_registration(self, credential_json: str, *, challenge: bytes) -> NewPasskey: ...

    def read_assertion(self, credential_json: str) -> PresentedAssertion:
        """The credential id and user handle an assertion claims (InvalidValue when
        malformed); nothing is verified yet."""
        ...

    def verify_assertion(
        self, credential_json: str, *, challenge: bytes, passkey: Passkey
    ) -> VerifiedAssertion: ...


def new_challenge() -> bytes:
    return secrets.token_bytes(CHALLENGE_BYTES)


def challenge_digest(challenge: bytes) -> str:
    """What the user item keeps of a spent sign-in challenge: 16 bytes of its SHA-256."""
    return b64url(hashlib.sha256(challenge).digest()[:16])


# --- the passwordless sign-in ceremony -------------------------------------------------------

_SIGN_IN_FORMAT = b"\x03"  # beside the page tokens' 1 and 2: a page token never passes for one
_SIGN_IN_BODY = struct.Struct(f">c{CHALLENGE_BYTES}sq")  # format, challenge, expiry (epoch µs)


@dataclass(frozen=True)
class SignInCeremony:
    """A passwordless sign-in begun: the challenge its options carry, and its expiry."""

    challenge: bytes = field(repr=False)
    expires_at: datetime


class SignInCeremonyCodec:
    """Where a passwordless sign-in's challenge lives between BeginPasskeySignIn and
    FinishPasskeySignIn: in the ceremony token itself, sealed with the service's token key.

    Why not a stored item: Begin knows no user (the authenticator picks the credential, and
    with it the user), so nothing would own the item, and a store written by every anonymous
    Begin is a store anyone can fill. Sealed, the token costs no write and works on every
    replica that shares the key; it cannot be forged, and it expires. What a token cannot say
    is whether it was used: so the user's item keeps a digest of each challenge spent (until
    its ceremony expires) and a second use is refused, in the same conditional write that opens
    the session (of two concurrent uses exactly one lands; the other reads the digest).
    """

    def __init__(self, key: bytes) -> None:
        self._signer = TokenSigner(key)

    def issue(
        self, now: datetime, lifetime: timedelta = CEREMONY_LIFETIME
    ) -> tuple[str, SignInCeremony]:
        ceremony = SignInCeremony(new_challenge(), now + lifetime)
        micros = int((ceremony.expires_at - _EPOCH) / timedelta(microseconds=1))
        return self._signer.seal(
            _SIGN_IN_BODY.pack(_SIGN_IN_FORMAT, ceremony.challenge, micros)
        ), ceremony

    def open(self, token: str, now: datetime) -> SignInCeremony | None:
        """The ceremony ``token`` seals, unexpired; None for any other token."""
        body = self._signer.open(token.strip())
        if body is None or len(body) != _SIGN_IN_BODY.size or body[:1] != _SIGN_IN_FORMAT:
            return None
        _, challenge, micros = _SIGN_IN_BODY.unpack(body)
        ceremony = SignInCeremony(challenge, _EPOCH + timedelta(microseconds=micros))
        return ceremony if now < ceremony.expires_at else None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
