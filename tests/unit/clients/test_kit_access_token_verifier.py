"""The client kit's AccessTokenVerifier against a JWKS served over HTTP on loopback, with tokens
and key sets from the service's own issuer (server.crypto.access_tokens)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from user_service_client import AccessTokenVerifier, InvalidAccessToken, JwksUnavailable

from server.crypto.access_tokens import JwtAccessTokenIssuer, SigningKeys, generate_signing_keys
from tests.jwks_server import JwksServer, serving_jwks

ISSUER = "urn:biome:user-service"
AUDIENCE = "urn:biome:services"


class Clock:
    """A monotonic clock the test moves by hand (the verifier's cache and cool-down)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def issuer_for(keys: SigningKeys, *, audience: str = AUDIENCE) -> JwtAccessTokenIssuer:
    return JwtAccessTokenIssuer(keys, issuer=ISSUER, audience=audience, lifetime_seconds=900)


def token(keys: SigningKeys, *, now: datetime | None = None, audience: str = AUDIENCE) -> str:
    return (
        issuer_for(keys, audience=audience)
        .issue(
            user_id=str(uuid4()),
            session_id=str(uuid4()),
            now=now or datetime.now(UTC),
            email_verified=True,
            amr=("pwd", "otp"),
        )
        .value
    )


def rotated(old: SigningKeys) -> SigningKeys:
    """A new signer, the old key still published (as the service rotates)."""
    new = generate_signing_keys()
    return replace(new, published=(*new.published, *old.published))


@pytest_asyncio.fixture
async def keys_and_server() -> AsyncIterator[tuple[SigningKeys, JwksServer]]:
    keys = generate_signing_keys()
    async with serving_jwks(issuer_for(keys).jwks(), max_age=60) as server:
        yield keys, server


def verifier(
    server: JwksServer, clock: Clock, *, refresh_cooldown: float = 30, max_stale: float = 3600
) -> AccessTokenVerifier:
    return AccessTokenVerifier(
        server.url,
        issuer=ISSUER,
        audience=AUDIENCE,
        clock=clock,
        refresh_cooldown=refresh_cooldown,
        max_stale=max_stale,
    )


@asynccontextmanager
async def serving_raw(answers: list[bytes]) -> AsyncIterator[str]:
    """A listener on loopback that answers its n-th connection with ``answers[n]`` (bytes as
    they are, the last one again past the end) and hangs up; yields its JWKS address."""
    count = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal count
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answers[min(count, len(answers) - 1)])
        count += 1
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/.well-known/jwks.json"
    finally:
        server.close()
        await server.wait_closed()


def http_ok(body: bytes) -> bytes:
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: max-age=60\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


GARBLED = {
    "a garbage status line": b"HELLO THERE\r\n\r\n",
    "a status line too long": b"HTTP/1.1 200 " + b"O" * 70_000 + b"\r\n\r\n",
    "a body cut short": b'HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{"keys": [',
    "JSON nested too deep": http_ok(b"[" * 200_000),
    "bytes that are not UTF-8": http_ok(b"\xff\xfe\xfa"),
}


async def test_a_token_of_the_service_verifies_with_its_claims(
    keys_and_server: tuple[SigningKeys, JwksServer],
) -> None:
    keys, server = keys_and_server
    value = token(keys)

    claims = await verifier(server, Clock()).verify(value)

    raw = jwt.decode(value, options={"verify_signature": False})
    assert (claims.user_id, claims.session_id, claims.token_id) == (
        raw["sub"],
        raw["sid"],
        raw["jti"],
    )
    assert claims.amr == ("pwd", "otp") and claims.email_verified is True
    assert claims.auth_time == datetime.fromtimestamp(raw["auth_time"], UTC)
    assert claims.expires_at - claims.issued_at == timedelta(seconds=900)


async def test_the_key_set_is_cached_for_its_max_age_then_fetched_again(
    keys_and_server: tuple[SigningKeys, JwksServer],
) -> None:
    keys, server = keys_and_server
    clock = Clock()
    checker = verifier(server, clock)

    for _ in range(3):
        await checker.verify(token(keys))
    clock.now += 59
    await checker.verify(token(keys))
    assert server.requests == 1
    clock.now += 2  # past max-age=60
    await checker.verify(token(keys))

    assert server.requests == 2


async def test_an_unknown_kid_fetches_again_once_per_cool_down(
    keys_and_server: tuple[SigningKeys, JwksServer],
) -> None:
    keys, server = keys_and_server
    clock = Clock()
    checker = verifier(server, clock, refresh_cooldown=10)
    await checker.verify(token(keys))
    clock.now += 11
    new = rotated(keys)
    server.keys = issuer_for(new).jwks()

    claims = await checker.verify(token(new))  # a new kid: fetched at once

    assert claims.user_id and server.requests == 2
    forged = token(generate_signing_keys())
    with pytest.raises(InvalidAccessToken, match="unknown key"):
        await checker.verify(forged)
    assert server.requests == 2  # the fetch for the new kid was just now: within the cool-down
    clock.now += 11
    for _ in range(5):
        with pytest.raises(InvalidAccessToken, match="unknown key"):
            await checker.verify(forged)
    assert server.requests == 3  # one more fetch for the first forged kid, none within cool-down
    clock.now += 11
    with pytest.raises(InvalidAccessToken, match="unknown key"):
        await checker.verify(forged)
    assert server.requests == 4
    await checker.verify(token(keys))  # the old key stays published
    assert server.requests == 4


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda keys: token(keys, audience="urn:someone-else"), "InvalidAudience"),
        (lambda keys: token(keys, now=datetime.now(UTC) - timedelta(hours=1)), "expired"),
        (lambda keys: token(keys)[:-4] + "AAAA", "InvalidSignature"),
        (lambda keys: "not.a.token", "not an access token"),
        (
            lambda keys: jwt.encode(
                {"sub": "x"}, Ed25519PrivateKey.generate(), algorithm="EdDSA"
            ),  # no kid
            "not signed the way",
        ),
        (
            lambda keys: jwt.encode(
                {"sub": "x"}, "s" * 32, algorithm="HS256", headers={"kid": keys.kid}
            ),
            "not signed the way",
        ),
    ],
)
async def test_bad_tokens_are_refused(
    keys_and_server: tuple[SigningKeys, JwksServer], make: object, reason: str
) -> None:
    keys, server = keys_and_server
    value = make(keys)  # type: ignore[operator]

    with pytest.raises(InvalidAccessToken, match=reason):
        await verifier(server, Clock()).verify(value)


async def test_a_key_set_that_cannot_be_fetched_is_an_outage_not_a_bad_token() -> None:
    keys = generate_signing_keys()
    async with serving_jwks([]) as server:
        url = server.url
    checker = AccessTokenVerifier(url, issuer=ISSUER, audience=AUDIENCE, fetch_timeout=2)

    with pytest.raises(JwksUnavailable):
        await checker.verify(token(keys))


async def test_a_cached_set_outlives_a_failed_fetch(
    keys_and_server: tuple[SigningKeys, JwksServer],
) -> None:
    keys, server = keys_and_server
    clock = Clock()
    checker = verifier(server, clock)
    await checker.verify(token(keys))
    server.keys = [{"kty": "nonsense"}]  # a broken deploy: nothing usable served
    clock.now += 61

    await checker.verify(token(keys))

    assert server.requests == 2


async def test_an_expired_set_is_asked_for_again_with_its_etag_and_a_304_keeps_it() -> None:
    keys = generate_signing_keys()
    async with serving_jwks(issuer_for(keys).jwks(), max_age=60, etags=True) as server:
        clock = Clock()
        checker = verifier(server, clock)
        await checker.verify(token(keys))
        clock.now += 61

        await checker.verify(token(keys))  # unchanged: 304, the cached keys kept
        clock.now += 59
        await checker.verify(token(keys))  # and kept for the 304's max-age
        assert (server.requests, server.not_modified) == (2, 1)
        new = rotated(keys)
        server.keys = issuer_for(new).jwks()
        clock.now += 31

        await checker.verify(token(new))  # a new kid: the changed set comes whole

    assert (server.requests, server.not_modified) == (3, 1)


async def test_while_an_expired_set_is_fetched_again_its_kids_verify_without_waiting(
    keys_and_server: tuple[SigningKeys, JwksServer],
) -> None:
    keys, server = keys_and_server
    clock = Clock()
    checker = verifier(server, clock)
    await checker.verify(token(keys))
    clock.now += 61  # past max-age=60
    server.held = asyncio.Event()  # the endpoint is slow to answer
    server.asked.clear()
    refreshing = asyncio.create_task(checker.verify(token(keys)))
    await asyncio.wait_for(server.asked.wait(), timeout=5)
    unknown = asyncio.create_task(checker.verify(token(generate_signing_keys())))

    claims = await asyncio.wait_for(checker.verify(token(keys)), timeout=1)

    assert claims.user_id and not refreshing.done()
    await asyncio.sleep(0.05)
    assert not unknown.done()  # a kid the expired set lacks waits for the fetch
    server.held.set()
    assert (await refreshing).user_id
    with pytest.raises(InvalidAccessToken, match="unknown key"):
        await unknown
    assert server.requests == 2


async def test_an_expired_set_serves_failed_fetches_only_up_to_max_stale(
    keys_and_server: tuple[SigningKeys, JwksServer],
) -> None:
    keys, server = keys_and_server
    clock = Clock()
    checker = verifier(server, clock, max_stale=600)
    await checker.verify(token(keys))
    server.keys = [{"kty": "nonsense"}]  # a broken deploy: nothing usable served

    clock.now += 61
    await checker.verify(token(keys))  # the fetch failed: the expired set serves
    clock.now += 598  # 659 s after the fetch: within max-age (60) + max_stale (600)
    await checker.verify(token(keys))
    assert server.requests == 3
    clock.now += 2
    with pytest.raises(JwksUnavailable):
        await checker.verify(token(keys))
    assert server.requests == 4

    server.keys = issuer_for(keys).jwks()  # fixed: asked for again within a second, not 30 s
    clock.now += 1
    assert (await checker.verify(token(keys))).user_id
    assert server.requests == 5


@pytest.mark.parametrize("answer", GARBLED.values(), ids=GARBLED.keys())
async def test_a_garbled_answer_is_an_outage(answer: bytes) -> None:
    async with serving_raw([answer]) as url:
        checker = AccessTokenVerifier(url, issuer=ISSUER, audience=AUDIENCE, fetch_timeout=5)

        with pytest.raises(JwksUnavailable):
            await checker.verify(token(generate_signing_keys()))


@pytest.mark.parametrize("answer", GARBLED.values(), ids=GARBLED.keys())
async def test_a_garbled_answer_keeps_the_cached_set(answer: bytes) -> None:
    keys = generate_signing_keys()
    good = http_ok(json.dumps({"keys": issuer_for(keys).jwks()}).encode())
    async with serving_raw([good, answer]) as url:
        clock = Clock()
        checker = AccessTokenVerifier(url, issuer=ISSUER, audience=AUDIENCE, clock=clock)
        await checker.verify(token(keys))
        clock.now += 61

        assert (await checker.verify(token(keys))).user_id
        assert checker.fetches == 2


async def test_a_redirect_is_a_failed_fetch_not_followed() -> None:
    keys = generate_signing_keys()
    async with (
        serving_jwks(issuer_for(keys).jwks()) as elsewhere,
        serving_jwks(issuer_for(keys).jwks()) as server,
    ):
        server.redirect_to = elsewhere.url
        checker = verifier(server, Clock())

        with pytest.raises(JwksUnavailable):
            await checker.verify(token(keys))

    assert (server.requests, elsewhere.requests) == (1, 0)
