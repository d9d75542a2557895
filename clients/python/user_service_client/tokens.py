"""Verifies the service's access tokens with the keys it publishes at /.well-known/jwks.json.

The key set is fetched over HTTP(S) with urllib in a worker thread (the event loop never blocks,
and the kit needs no HTTP library; redirects are refused) and kept for the response's
Cache-Control max-age (bounded), then asked for again with its ETag (an unchanged set costs a
304); it is fetched early, at most once per ``refresh_cooldown``, when a token names a kid the
cached set lacks (the service rotated its key). While a set past its max-age is being fetched
again, tokens whose kid it holds are verified with it without waiting; when fetching fails it
serves for at most ``max_stale`` seconds beyond its max-age, then JwksUnavailable is raised.

PyJWT's PyJWKClient (2.15) is not used: it blocks the caller (synchronous urllib under a thread
lock), keeps the set for a fixed ``lifespan`` whatever the response's Cache-Control says, asks
without an ETag, and drops the set once its lifespan is over, so while the endpoint is down every
verification fails and tries a fetch of its own (its cool-down for unknown kids counts from the
last successful fetch only)."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import jwt

ALGORITHM = "EdDSA"
JWKS_PATH = "/.well-known/jwks.json"
# The service's tokens are a few hundred characters; a longer one is refused unparsed.
MAX_TOKEN_LENGTH = 4096
MAX_JWKS_BYTES = 1024 * 1024
_RETRY_WITHOUT_KEYS_SECONDS = 1.0
REQUIRED_CLAIMS = ("iss", "aud", "sub", "sid", "iat", "exp", "jti")
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)


def jwks_url(base_url: str) -> str:
    """The JWKS address of the service whose HTTP listener is at ``base_url``."""
    return base_url.rstrip("/") + JWKS_PATH


class InvalidAccessToken(Exception):
    """The token is not a valid, unexpired access token of this issuer and audience (the message
    says why, never any part of the token)."""

    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.expired = expired


class JwksUnavailable(Exception):
    """The key set could not be fetched (and none cached holds the token's key): the token was
    not judged; answer as for an outage, not as for a bad token."""


@dataclass(frozen=True)
class AccessTokenClaims:
    """What a verified access token says. The service's tokens carry no roles or scopes: a user's
    token speaks for that user (and session) only."""

    user_id: str  # sub
    session_id: str  # sid
    issued_at: datetime  # iat
    expires_at: datetime  # exp
    token_id: str  # jti
    email_verified: bool
    # RFC 8176: ("pwd",), ("pwd", "otp"), ("pwd", "hwk"), ("hwk",).
    amr: tuple[str, ...]
    # When the session's sign-in happened (a refreshed token keeps its sign-in's).
    auth_time: datetime | None
    raw: Mapping[str, Any] = field(repr=False)


@dataclass
class _KeySet:
    keys: dict[str, jwt.PyJWK]
    fetched_at: float
    max_age: float
    etag: str | None = None

    def fresh(self, now: float) -> bool:
        return now - self.fetched_at < self.max_age

    def usable(self, now: float, max_stale: float) -> bool:
        """Fresh, or past its max-age by less than ``max_stale`` (fetching it again failed)."""
        return now - self.fetched_at < self.max_age + max_stale


class _RefusedRedirect(urllib.request.HTTPRedirectHandler):
    """Follows no redirect (a 3xx answer is a failed fetch): the key set is fetched from the
    address configured, never from one an answer names, nor over http after https."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


class AccessTokenVerifier:
    """Checks a token's EdDSA signature against the published key its header's kid names, and its
    iss, aud, exp, iat (with ``leeway`` seconds of clock skew) and the claims the service writes.

    ``ssl_context`` verifies an https JWKS address (the system's roots when None). A set past its
    max-age that cannot be fetched again keeps serving for ``max_stale`` seconds more (keys
    outlive their tokens), then verifications raise JwksUnavailable until a fetch succeeds.
    """

    def __init__(
        self,
        jwks_url: str,
        *,
        issuer: str,
        audience: str,
        leeway: float = 30.0,
        refresh_cooldown: float = 30.0,
        default_max_age: float = 300.0,
        max_max_age: float = 86_400.0,
        fetch_timeout: float = 5.0,
        max_stale: float = 3600.0,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.jwks_url = jwks_url
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self._cooldown = refresh_cooldown
        self._default_max_age = default_max_age
        self._max_max_age = max_max_age
        self._timeout = fetch_timeout
        self._max_stale = max_stale
        self._opener = urllib.request.build_opener(
            _RefusedRedirect(), urllib.request.HTTPSHandler(context=ssl_context)
        )
        self._clock = clock
        self._key_set: _KeySet | None = None
        self._last_attempt: float | None = None
        self._lock = asyncio.Lock()
        self._refreshing = False
        #: How many times the key set was fetched (successfully or not).
        self.fetches = 0

    async def verify(self, token: str) -> AccessTokenClaims:
        """The token's claims; InvalidAccessToken when anything about it is off, JwksUnavailable
        when its key could not be fetched."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidAccessToken("not an access token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise InvalidAccessToken("not an access token") from None
        kid = header.get("kid")
        if header.get("alg") != ALGORITHM or not isinstance(kid, str) or not kid:
            raise InvalidAccessToken("not signed the way the service signs")
        key = await self._key(kid)
        if key.algorithm_name != header["alg"]:
            raise InvalidAccessToken("the key does not sign with the token's algorithm")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidAccessToken("expired", expired=True) from None
        except jwt.InvalidTokenError as error:
            raise InvalidAccessToken(f"not a valid access token: {type(error).__name__}") from None
        return _claims(claims)

    async def _key(self, kid: str) -> jwt.PyJWK:
        now = self._clock()
        key_set = self._key_set
        if key_set is not None and key_set.fresh(now):
            if kid in key_set.keys:
                return key_set.keys[kid]
            # An unknown kid in a fresh set: the service may have rotated its key since.
            if not self._cooldown_over(now):
                raise InvalidAccessToken("signed by an unknown key")
        elif (
            key_set is not None
            and self._refreshing
            and kid in key_set.keys
            and key_set.usable(now, self._max_stale)
        ):
            # Past its max-age and being fetched again: meanwhile the set serves its own kids.
            return key_set.keys[kid]
        async with self._lock:
            # Another verification may have fetched while this one waited.
            key_set = self._key_set
            if not (key_set is not None and key_set.fresh(self._clock()) and kid in key_set.keys):
                if self._cooldown_over(self._clock()):
                    await self._refresh()
            key_set = self._key_set
        if key_set is None or not key_set.usable(self._clock(), self._max_stale):
            raise JwksUnavailable(f"could not fetch the key set from {self.jwks_url}")
        if kid not in key_set.keys:
            raise InvalidAccessToken("signed by an unknown key")
        return key_set.keys[kid]

    def _cooldown_over(self, now: float) -> bool:
        # Without a usable set a failed fetch is tried again sooner: nothing can be verified.
        key_set = self._key_set
        usable = key_set is not None and key_set.usable(now, self._max_stale)
        cooldown = self._cooldown if usable else _RETRY_WITHOUT_KEYS_SECONDS
        return self._last_attempt is None or now - self._last_attempt >= cooldown

    async def _refresh(self) -> None:
        """Fetches the set (conditionally, with the cached set's ETag); on failure keeps the
        cached one (keys outlive their tokens; ``max_stale`` bounds how long)."""
        self._last_attempt = self._clock()
        self.fetches += 1
        cached = self._key_set
        etag = cached.etag if cached is not None else None
        self._refreshing = True
        try:
            body, cache_control, new_etag = await asyncio.to_thread(self._fetch, etag)
            if body is not None:
                keys, etag = _usable_keys(body), new_etag
            elif cached is not None:  # 304 Not Modified: the cached set is still the set
                keys = cached.keys
            else:
                raise ValueError("304 Not Modified without a cached set")
        # OSError: unreachable, timed out, an HTTP error status or a refused redirect (urllib's
        # HTTPError); HTTPException: a garbled answer (BadStatusLine, IncompleteRead, ...);
        # ValueError: not JSON (or not UTF-8), not a key set; RecursionError: JSON nested too deep.
        except (
            OSError,
            http.client.HTTPException,
            ValueError,
            RecursionError,
            jwt.PyJWKSetError,
        ):
            if cached is not None:
                return  # _key judges whether the cached set may still serve
            raise JwksUnavailable(f"could not fetch the key set from {self.jwks_url}") from None
        finally:
            self._refreshing = False
        max_age = self._max_age(cache_control)
        self._key_set = _KeySet(keys, fetched_at=self._clock(), max_age=max_age, etag=etag)

    def _fetch(self, etag: str | None) -> tuple[bytes | None, str, str | None]:
        """The set's body (None when unchanged: 304), Cache-Control and ETag."""
        headers = {"Accept": "application/json"}
        if etag is not None:
            headers["If-None-Match"] = etag
        request = urllib.request.Request(self.jwks_url, headers=headers)
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                body: bytes = response.read(MAX_JWKS_BYTES + 1)
                if len(body) > MAX_JWKS_BYTES:
                    raise ValueError("the key set is too large")
                return body, response.headers.get("Cache-Control", ""), response.headers.get("ETag")
        except urllib.error.HTTPError as error:
            error.close()
            if error.code == HTTPStatus.NOT_MODIFIED:
                return None, error.headers.get("Cache-Control", ""), etag
            raise

    def _max_age(self, cache_control: str) -> float:
        """How long the set is good for: its max-age, within [cooldown, max_max_age]."""
        match = _MAX_AGE.search(cache_control)
        seconds = float(match.group(1)) if match else self._default_max_age
        return min(max(seconds, self._cooldown), self._max_max_age)


def _usable_keys(body: bytes) -> dict[str, jwt.PyJWK]:
    """The Ed25519 signing keys of a JWKS document, by kid."""
    document = json.loads(body)
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JSON Web Key Set")
    wanted = [
        key
        for key in document["keys"]
        if isinstance(key, dict)
        and key.get("kty") == "OKP"
        and key.get("crv") == "Ed25519"
        and key.get("alg", ALGORITHM) == ALGORITHM
        and key.get("use", "sig") == "sig"
        and isinstance(key.get("kid"), str)
    ]
    key_set = jwt.PyJWKSet.from_dict({"keys": wanted})
    return {key.key_id: key for key in key_set.keys if key.key_id}


def _claims(claims: dict[str, Any]) -> AccessTokenClaims:
    sub, sid, jti = claims.get("sub"), claims.get("sid"), claims.get("jti")
    amr = claims.get("amr", ["pwd"])
    auth_time = claims.get("auth_time")
    if (
        not isinstance(sub, str)
        or not isinstance(sid, str)
        or not isinstance(jti, str)
        or not isinstance(amr, list)
        or not all(isinstance(method, str) for method in amr)
        or not isinstance(claims.get("email_verified", False), bool)
        or (auth_time is not None and not _is_timestamp(auth_time))
        or not _is_timestamp(claims.get("iat"))
        or not _is_timestamp(claims.get("exp"))
    ):
        raise InvalidAccessToken("not a valid access token: malformed claims")
    return AccessTokenClaims(
        user_id=sub,
        session_id=sid,
        issued_at=_time(claims["iat"]),
        expires_at=_time(claims["exp"]),
        token_id=jti,
        email_verified=bool(claims.get("email_verified", False)),
        amr=tuple(amr),
        auth_time=None if auth_time is None else _time(auth_time),
        raw=dict(claims),
    )


def _is_timestamp(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _time(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
