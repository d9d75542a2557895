"""The service accepts an x-user-token only when it is one of its own access tokens, unexpired,
signed by a published key, with header and claims exactly as issued."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server.crypto.access_token_verifier import (
    AccessTokenVerifier,
    InvalidAccessToken,
    TokenUser,
)
from server.crypto.access_tokens import (
    JwtAccessTokenIssuer,
    SigningKeys,
    generate_signing_keys,
    load_signing_keys,
    signing_key_pem,
)

ISSUER = "urn:biome:user-service"
AUDIENCE = "urn:biome:services"
LIFETIME = 900
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
USER_ID = str(uuid.uuid4())
SESSION_ID = "s-1"


def issue(keys: SigningKeys, *, at: datetime = NOW, audience: str = AUDIENCE) -> str:
    issuer = JwtAccessTokenIssuer(keys, issuer=ISSUER, audience=audience, lifetime_seconds=LIFETIME)
    return issuer.issue(user_id=USER_ID, session_id=SESSION_ID, now=at).value


def verifier(keys: SigningKeys, *, now: datetime = NOW) -> AccessTokenVerifier:
    return AccessTokenVerifier(keys, issuer=ISSUER, audience=AUDIENCE, clock=lambda: now)


def claims_of(keys: SigningKeys, **changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(
        issue(keys), options={"verify_signature": False}, algorithms=["EdDSA"]
    )
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def signed(keys: SigningKeys, claims: dict[str, Any], **headers: Any) -> str:
    return jwt.encode(claims, keys.signer, algorithm="EdDSA", headers={"kid": keys.kid, **headers})


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def keys() -> SigningKeys:
    return generate_signing_keys()


def test_a_token_it_issued_names_its_user_and_session(keys: SigningKeys) -> None:
    assert verifier(keys).verify(issue(keys)) == TokenUser(
        USER_ID, SESSION_ID, auth_time=int(NOW.timestamp())
    )


def test_a_token_signed_by_an_older_key_still_published_is_accepted(keys: SigningKeys) -> None:
    older = generate_signing_keys()
    rotated = load_signing_keys(signing_key_pem(keys) + signing_key_pem(older))
    assert verifier(rotated).verify(issue(older)).user_id == USER_ID


def test_an_expired_token_is_refused_as_expired(keys: SigningKeys) -> None:
    token = issue(keys)
    assert verifier(keys, now=NOW + timedelta(seconds=LIFETIME - 1)).verify(token)
    with pytest.raises(InvalidAccessToken) as refused:
        verifier(keys, now=NOW + timedelta(seconds=LIFETIME)).verify(token)
    assert refused.value.expired


def test_a_token_issued_far_in_the_future_is_refused(keys: SigningKeys) -> None:
    token = issue(keys, at=NOW + timedelta(minutes=5))
    with pytest.raises(InvalidAccessToken):
        verifier(keys).verify(token)


def test_a_token_signed_with_another_key_is_refused(keys: SigningKeys) -> None:
    stranger = generate_signing_keys()
    with pytest.raises(InvalidAccessToken, match="not signed by a key of this service"):
        verifier(keys).verify(issue(stranger))


def test_another_key_under_this_services_kid_is_refused(keys: SigningKeys) -> None:
    forged = SigningKeys(
        signer=Ed25519PrivateKey.generate(), kid=keys.kid, published=keys.published
    )
    with pytest.raises(InvalidAccessToken) as refused:
        verifier(keys).verify(issue(forged))
    assert not refused.value.expired


def test_a_token_for_another_audience_is_refused(keys: SigningKeys) -> None:
    with pytest.raises(InvalidAccessToken):
        verifier(keys).verify(issue(keys, audience="urn:biome:elsewhere"))


@pytest.mark.parametrize(
    "changes",
    [
        {"iss": "urn:evil"},
        {"aud": [AUDIENCE, "urn:other"]},
        {"sub": "not-a-uuid"},
        {"sub": USER_ID.upper()},
        {"sub": None},
        {"sid": None},
        {"exp": None},
        {"exp": "4102444800"},
        {"iat": None},
        {"jti": None},
        {"email_verified": "true"},
        {"email_verified": 1},
        {"amr": "pwd"},
        {"amr": []},
        {"amr": ["pwd", 1]},
        {"amr": [""]},
        {"amr": ["x" * 33]},
        {"amr": ["pwd"] * 9},
        {"auth_time": str(int(NOW.timestamp()))},
        {"auth_time": True},
        {"auth_time": NOW.timestamp() + 0.5},
        {"auth_time": [int(NOW.timestamp())]},
        {"auth_time": int(NOW.timestamp()) + 31},
    ],
    ids=lambda changes: ",".join(f"{k}={v}" for k, v in changes.items()),
)
def test_claims_other_than_as_issued_are_refused(
    keys: SigningKeys, changes: dict[str, Any]
) -> None:
    with pytest.raises(InvalidAccessToken):
        verifier(keys).verify(signed(keys, claims_of(keys, **changes)))


def test_the_unaltered_claims_pass_the_same_path(keys: SigningKeys) -> None:
    # So the cases above fail for their change, not for how they were signed.
    assert verifier(keys).verify(signed(keys, claims_of(keys))).user_id == USER_ID


@pytest.mark.parametrize("email_verified", [True, False, None])
def test_the_email_verified_claim_is_a_boolean_or_absent_as_from_an_earlier_issuer(
    keys: SigningKeys, email_verified: bool | None
) -> None:
    claims = claims_of(keys, email_verified=email_verified)
    assert ("email_verified" in claims) is (email_verified is not None)
    assert verifier(keys).verify(signed(keys, claims)).user_id == USER_ID


@pytest.mark.parametrize(
    ("amr", "read"),
    [(["pwd", "otp"], ("pwd", "otp")), (["hwk"], ("hwk",)), (None, ("pwd",))],
)
def test_the_amr_claim_is_read_and_a_token_from_before_it_counts_as_a_password_sign_in(
    keys: SigningKeys, amr: list[str] | None, read: tuple[str, ...]
) -> None:
    claims = claims_of(keys, amr=amr)
    assert ("amr" in claims) is (amr is not None)
    assert verifier(keys).verify(signed(keys, claims)).amr == read


def test_the_auth_time_claim_is_read_and_a_token_from_before_it_says_no_sign_in_time(
    keys: SigningKeys,
) -> None:
    signed_in = int(NOW.timestamp()) - 3600
    assert verifier(keys).verify(signed(keys, claims_of(keys, auth_time=signed_in))).auth_time == (
        signed_in
    )
    assert verifier(keys).verify(signed(keys, claims_of(keys, auth_time=None))).auth_time is None


def test_an_auth_time_within_the_clock_skew_ahead_is_accepted(keys: SigningKeys) -> None:
    ahead = int(NOW.timestamp()) + 30
    assert verifier(keys).verify(signed(keys, claims_of(keys, auth_time=ahead))).auth_time == ahead


def test_alg_none_is_refused(keys: SigningKeys) -> None:
    header = {"alg": "none", "typ": "JWT", "kid": keys.kid}
    token = f"{b64(header)}.{b64(claims_of(keys))}."
    with pytest.raises(InvalidAccessToken):
        verifier(keys).verify(token)


def test_a_header_other_than_as_issued_is_refused(keys: SigningKeys) -> None:
    with pytest.raises(InvalidAccessToken):
        verifier(keys).verify(signed(keys, claims_of(keys), typ="at+jwt"))
    with pytest.raises(InvalidAccessToken):
        verifier(keys).verify(signed(keys, claims_of(keys), jku="https://evil.example/jwks"))


def test_a_tampered_payload_is_refused(keys: SigningKeys) -> None:
    header, _, signature = issue(keys).split(".")
    other_user = claims_of(keys, sub=str(uuid.uuid4()))
    with pytest.raises(InvalidAccessToken):
        verifier(keys).verify(f"{header}.{b64(other_user)}.{signature}")


def test_a_tampered_signature_is_refused(keys: SigningKeys) -> None:
    token = issue(keys)
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(InvalidAccessToken):
        verifier(keys).verify(flipped)


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "x" * 5000])
def test_what_is_no_jwt_at_all_is_refused(keys: SigningKeys, token: str) -> None:
    with pytest.raises(InvalidAccessToken):
        verifier(keys).verify(token)
