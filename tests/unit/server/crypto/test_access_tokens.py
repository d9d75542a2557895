"""Access tokens are EdDSA JWTs that any verifier can check with PyJWT and the published JWKS."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from server.crypto.access_tokens import (
    JwtAccessTokenIssuer,
    SigningKeyError,
    generate_signing_keys,
    load_signing_keys,
    signing_key_pem,
)

ISSUER = "https://users.biome.test"
AUDIENCE = "biome-api"
LIFETIME = 900
# RFC 8037 Appendix A.1 / A.3: an Ed25519 key and its RFC 7638 thumbprint.
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def private_pem(key: PrivateKeyTypes) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(key: PublicKeyTypes) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def pem_body_lines(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_issuer(pem: str) -> JwtAccessTokenIssuer:
    return JwtAccessTokenIssuer(
        load_signing_keys(pem), issuer=ISSUER, audience=AUDIENCE, lifetime_seconds=LIFETIME
    )


def verify(
    token: str, jwks: list[dict[str, str]], *, audience: str = AUDIENCE
) -> dict[str, object]:
    """Checks a token the way a resource server would: only PyJWT and the JWKS."""
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWKSet.from_dict({"keys": jwks})[kid]
    claims: dict[str, object] = jwt.decode(
        token, key, algorithms=["EdDSA"], audience=audience, issuer=ISSUER
    )
    return claims


def just_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def signer_pem() -> str:
    return private_pem(Ed25519PrivateKey.generate())


def test_issued_token_carries_the_session_claims_and_verifies_against_the_jwks(
    signer_pem: str,
) -> None:
    issuer = make_issuer(signer_pem)
    now = just_now()

    token = issuer.issue(user_id="user-1", session_id="session-9", now=now)

    claims = verify(token.value, issuer.jwks())
    iat = int(now.timestamp())
    assert {k: v for k, v in claims.items() if k != "jti"} == {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "sid": "session-9",
        "iat": iat,
        "exp": iat + LIFETIME,
        "email_verified": False,
        "amr": ["pwd"],
        "auth_time": iat,
    }
    assert isinstance(claims["jti"], str) and claims["jti"]
    verified = issuer.issue(user_id="user-1", session_id="s", now=now, email_verified=True)
    assert verify(verified.value, issuer.jwks())["email_verified"] is True
    second = issuer.issue(user_id="user-1", session_id="s", now=now, amr=("pwd", "otp"))
    assert verify(second.value, issuer.jwks())["amr"] == ["pwd", "otp"]
    assert token.expires_in == LIFETIME


def test_a_refreshed_token_carries_the_sign_in_time_it_is_given_not_its_issue_time(
    signer_pem: str,
) -> None:
    issuer = make_issuer(signer_pem)
    now = just_now()
    signed_in = now - timedelta(hours=2)

    token = issuer.issue(user_id="u", session_id="s", now=now, auth_time=signed_in)

    claims = verify(token.value, issuer.jwks())
    assert claims["auth_time"] == int(signed_in.timestamp())
    assert claims["iat"] == int(now.timestamp())


def test_a_naive_auth_time_is_refused(signer_pem: str) -> None:
    with pytest.raises(ValueError):
        make_issuer(signer_pem).issue(
            user_id="u", session_id="s", now=just_now(), auth_time=datetime(2030, 1, 1)
        )


def test_token_header_names_the_signing_key_listed_in_the_jwks(signer_pem: str) -> None:
    keys = load_signing_keys(signer_pem)
    issuer = JwtAccessTokenIssuer(keys, issuer=ISSUER, audience=AUDIENCE, lifetime_seconds=60)

    header = jwt.get_unverified_header(
        issuer.issue(user_id="u", session_id="s", now=just_now()).value
    )

    assert header["alg"] == "EdDSA"
    assert header["kid"] == keys.kid
    assert [jwk["kid"] for jwk in issuer.jwks()] == [keys.kid]


def test_each_token_gets_its_own_jti(signer_pem: str) -> None:
    issuer = make_issuer(signer_pem)
    now = just_now()

    first = verify(issuer.issue(user_id="u", session_id="s", now=now).value, issuer.jwks())
    second = verify(issuer.issue(user_id="u", session_id="s", now=now).value, issuer.jwks())

    assert first["jti"] != second["jti"]


def test_token_issued_longer_ago_than_its_lifetime_is_rejected_as_expired(signer_pem: str) -> None:
    issuer = make_issuer(signer_pem)
    long_ago = datetime(2020, 1, 1, 12, 0, tzinfo=UTC)

    token = issuer.issue(user_id="u", session_id="s", now=long_ago)

    with pytest.raises(jwt.ExpiredSignatureError):
        verify(token.value, issuer.jwks())


def test_token_is_rejected_by_a_service_expecting_another_audience(signer_pem: str) -> None:
    issuer = make_issuer(signer_pem)

    token = issuer.issue(user_id="u", session_id="s", now=just_now())

    with pytest.raises(jwt.InvalidAudienceError):
        verify(token.value, issuer.jwks(), audience="billing-api")


def test_issue_refuses_a_naive_now(signer_pem: str) -> None:
    issuer = make_issuer(signer_pem)

    with pytest.raises(ValueError, match="timezone-aware"):
        issuer.issue(user_id="u", session_id="s", now=datetime(2030, 1, 1))


def test_jwks_lists_the_raw_public_key_as_an_okp_signing_key() -> None:
    private = Ed25519PrivateKey.generate()
    keys = load_signing_keys(private_pem(private))
    issuer = JwtAccessTokenIssuer(keys, issuer=ISSUER, audience=AUDIENCE, lifetime_seconds=60)

    [jwk] = issuer.jwks()

    assert jwk == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": jwk["x"],
        "kid": keys.kid,
        "alg": "EdDSA",
        "use": "sig",
    }
    assert b64url_decode(jwk["x"]) == private.public_key().public_bytes_raw()
    assert "d" not in jwk


def test_rotation_signs_with_the_new_key_and_old_tokens_still_verify() -> None:
    old_pem = private_pem(Ed25519PrivateKey.generate())
    new_pem = private_pem(Ed25519PrivateKey.generate())
    before = make_issuer(old_pem)
    old_token = before.issue(user_id="u", session_id="s", now=just_now()).value

    after = make_issuer(new_pem + old_pem)
    new_token = after.issue(user_id="u", session_id="s", now=just_now()).value

    old_kid = load_signing_keys(old_pem).kid
    new_kid = load_signing_keys(new_pem).kid
    assert new_kid != old_kid
    assert [jwk["kid"] for jwk in after.jwks()] == [new_kid, old_kid]
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert verify(new_token, after.jwks())["sub"] == "u"
    assert verify(old_token, after.jwks())["sub"] == "u"


def test_a_public_key_after_the_signer_is_published_for_verification() -> None:
    retired = Ed25519PrivateKey.generate()
    before = make_issuer(private_pem(retired))
    old_token = before.issue(user_id="u", session_id="s", now=just_now()).value

    after = make_issuer(
        private_pem(Ed25519PrivateKey.generate()) + "\n" + public_pem(retired.public_key())
    )

    assert len(after.jwks()) == 2
    assert verify(old_token, after.jwks())["sub"] == "u"


def test_the_same_key_listed_twice_is_published_once(signer_pem: str) -> None:
    public = public_pem(load_signing_keys(signer_pem).signer.public_key())

    keys = load_signing_keys(signer_pem + signer_pem + public)

    assert [kid for kid, _ in keys.published] == [keys.kid]


@pytest.mark.parametrize(
    "foreign_key",
    [
        pytest.param(
            lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), id="rsa"
        ),
        pytest.param(lambda: ec.generate_private_key(ec.SECP256R1()), id="ec-p256"),
    ],
)
@pytest.mark.parametrize("position", [1, 2])
def test_a_key_that_is_not_ed25519_is_refused(
    foreign_key: Callable[[], PrivateKeyTypes], position: int, signer_pem: str
) -> None:
    foreign = private_pem(foreign_key())
    pem = foreign + signer_pem if position == 1 else signer_pem + foreign

    with pytest.raises(SigningKeyError, match=f"key {position} is not an Ed25519 key"):
        load_signing_keys(pem)


def test_a_foreign_public_key_after_the_signer_is_refused(signer_pem: str) -> None:
    foreign = public_pem(ec.generate_private_key(ec.SECP256R1()).public_key())

    with pytest.raises(SigningKeyError, match="key 2 is not an Ed25519 key"):
        load_signing_keys(signer_pem + foreign)


def test_an_encrypted_key_is_refused() -> None:
    encrypted = (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"correct horse"),
        )
        .decode()
    )

    with pytest.raises(SigningKeyError, match="key 1 is encrypted"):
        load_signing_keys(encrypted)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("", "no PEM key found", id="empty"),
        pytest.param("   \n", "no PEM key found", id="blank"),
        pytest.param("this is not a key", "no PEM key found", id="garbage"),
        pytest.param(
            "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
            "key 1 could not be parsed",
            id="bad-body",
        ),
        pytest.param(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "key 1 is a PEM CERTIFICATE, not a private or public key",
            id="certificate",
        ),
    ],
)
def test_text_without_a_usable_key_is_refused(text: str, reason: str) -> None:
    with pytest.raises(SigningKeyError, match=reason):
        load_signing_keys(text)


def test_a_truncated_block_after_the_signer_is_refused(signer_pem: str) -> None:
    truncated = private_pem(Ed25519PrivateKey.generate()).split("-----END")[0]

    with pytest.raises(SigningKeyError, match="outside complete PEM blocks"):
        load_signing_keys(signer_pem + truncated)


def test_a_public_key_cannot_be_the_signer(signer_pem: str) -> None:
    public = public_pem(Ed25519PrivateKey.generate().public_key())

    with pytest.raises(SigningKeyError, match="key 1 must be an Ed25519 private key"):
        load_signing_keys(public + signer_pem)


def test_errors_and_repr_never_show_key_material(signer_pem: str) -> None:
    rsa_pem = private_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    corrupt = signer_pem.replace(pem_body_lines(signer_pem)[0], "A" * 64)
    keys = load_signing_keys(signer_pem)
    raw_private = base64.urlsafe_b64encode(keys.signer.private_bytes_raw()).decode().rstrip("=")
    shown = repr(keys) + str(keys)

    for bad, secret_lines in [
        (rsa_pem, pem_body_lines(rsa_pem)),
        (corrupt, pem_body_lines(corrupt)),
    ]:
        with pytest.raises(SigningKeyError) as caught:
            load_signing_keys(bad)
        message = str(caught.value) + repr(caught.value)
        assert not any(line in message for line in secret_lines)
    assert not any(line in shown for line in pem_body_lines(signer_pem))
    assert raw_private not in shown
    assert keys.kid in shown


def test_kid_is_the_rfc_7638_thumbprint_of_the_rfc_8037_example_key() -> None:
    example = Ed25519PrivateKey.from_private_bytes(b64url_decode(RFC8037_D))

    keys = load_signing_keys(private_pem(example))
    issuer = JwtAccessTokenIssuer(keys, issuer=ISSUER, audience=AUDIENCE, lifetime_seconds=60)

    assert keys.kid == RFC8037_THUMBPRINT
    assert issuer.jwks()[0]["x"] == RFC8037_X


def test_a_published_public_key_gets_the_rfc_7638_thumbprint_as_kid(signer_pem: str) -> None:
    example = Ed25519PublicKey.from_public_bytes(b64url_decode(RFC8037_X))

    keys = load_signing_keys(signer_pem + public_pem(example))

    assert keys.published[1][0] == RFC8037_THUMBPRINT


def test_generated_key_round_trips_through_pem_with_the_same_kid() -> None:
    generated = generate_signing_keys()

    loaded = load_signing_keys(signing_key_pem(generated))

    assert loaded.kid == generated.kid
    assert [kid for kid, _ in generated.published] == [generated.kid]
    assert signing_key_pem(generated).startswith("-----BEGIN PRIVATE KEY-----")
