"""Verifies the service's own access tokens (x-user-token), statelessly: signature by a published
key, header and claims exactly as server.crypto.access_tokens issues them, expiry by the clock."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt

from server.crypto.access_tokens import SigningKeys

_ALGORITHM = "EdDSA"
_HEADER = {"alg": _ALGORITHM, "typ": "JWT"}  # and kid: what the issuer writes, nothing else
_CLAIMS = ("iss", "aud", "sub", "sid", "iat", "exp", "jti")
# Claims the issuer writes that a token may lack: one issued before the claim existed (by a replica
# of an earlier version, during a rolling deploy) is still good for its short life.
_OPTIONAL_BOOLEAN_CLAIMS = ("email_verified",)
# An amr claim (RFC 8176) names a few methods of a few letters each.
_MAX_METHODS = 8
_MAX_METHOD_LENGTH = 32
# Tokens are a few hundred characters; a longer one is refused before any parsing.
MAX_TOKEN_LENGTH = 4096
# Replicas' clocks may differ by a little: a token issued "in the future" by this much is fine.
CLOCK_SKEW_SECONDS = 30


class InvalidAccessToken(Exception):
    """The token is not a valid, unexpired access token of this service (the message says which,
    never any part of the token)."""

    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.expired = expired


@dataclass(frozen=True)
class TokenUser:
    """Whom a verified access token speaks for: its user (sub) and session (sid), and how its
    sign-in was proven (amr, RFC 8176; ``("pwd",)`` for a token issued before the claim), and when
    that sign-in happened (auth_time, seconds since the epoch; None for a token issued before the
    claim, which never counts as a recent sign-in)."""

    user_id: str
    session_id: str
    amr: tuple[str, ...] = ("pwd",)
    auth_time: int | None = None


class AccessTokenVerifier:
    """Checks tokens against the published keys (the signer and the older ones kept for
    rotation), the configured issuer and audience, and the service clock."""

    def __init__(
        self,
        keys: SigningKeys,
        *,
        issuer: str,
        audience: str,
        clock: Callable[[], datetime],
    ) -> None:
        self._keys = dict(keys.published)
        self._issuer = issuer
        self._audience = audience
        self._clock = clock

    def verify(self, token: str) -> TokenUser:
        """The token's user; InvalidAccessToken when anything about it is off."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidAccessToken("not an access token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise InvalidAccessToken("not an access token") from None
        kid = header.get("kid")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None or {k: v for k, v in header.items() if k != "kid"} != _HEADER:
            raise InvalidAccessToken("not signed by a key of this service")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[_ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                # Expiry is checked below against the service clock, not PyJWT's time.time().
                options={
                    "require": list(_CLAIMS),
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidTokenError:
            raise InvalidAccessToken("not a valid access token of this service") from None
        return self._checked_claims(claims)

    def _checked_claims(self, claims: dict[str, Any]) -> TokenUser:
        sub, sid = claims.get("sub"), claims.get("sid")
        exp, iat = _timestamp(claims.get("exp")), _timestamp(claims.get("iat"))
        amr = _methods(claims.get("amr", ["pwd"]))
        auth_time = _timestamp(claims.get("auth_time"))
        if (
            claims.get("aud") != self._audience
            or not isinstance(sid, str)
            or not isinstance(sub, str)
            or not _is_canonical_uuid(sub)
            or exp is None
            or iat is None
            or any(
                not isinstance(claims.get(name, False), bool) for name in _OPTIONAL_BOOLEAN_CLAIMS
            )
            or amr is None
            or ("auth_time" in claims and auth_time is None)
        ):
            raise InvalidAccessToken("not a valid access token of this service")
        now = self._clock().timestamp()
        if now >= exp:
            raise InvalidAccessToken("expired", expired=True)
        if iat > now + CLOCK_SKEW_SECONDS:
            raise InvalidAccessToken("issued in the future")
        if auth_time is not None and auth_time > now + CLOCK_SKEW_SECONDS:
            raise InvalidAccessToken("signed in in the future")
        return TokenUser(user_id=sub, session_id=sid, amr=amr, auth_time=auth_time)


def _timestamp(value: object) -> int | None:
    """A NumericDate as the issuer writes it: an integer (bool is an int to Python, not here)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _methods(value: object) -> tuple[str, ...] | None:
    """An amr claim as the issuer writes it: a non-empty JSON array of short strings."""
    if not isinstance(value, list) or not 0 < len(value) <= _MAX_METHODS:
        return None
    if not all(isinstance(m, str) and 0 < len(m) <= _MAX_METHOD_LENGTH for m in value):
        return None
    return tuple(value)


def _is_canonical_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
