"""The tests' software authenticator answers py_webauthn's own options with what py_webauthn's own
verification accepts, and each misbehaviour it can be told is one py_webauthn refuses."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers.exceptions import (
    InvalidAuthenticationResponse,
    InvalidRegistrationResponse,
)
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
)

from tests.webauthn_authenticator import (
    CredentialExcluded,
    NoCredential,
    SoftAuthenticator,
    from_b64url,
)

RP_ID = "localhost"
ORIGIN = "http://localhost:8080"
USER_HANDLE = bytes(range(16))


def creation_options(exclude: Sequence[bytes] = ()) -> tuple[str, bytes]:
    options = generate_registration_options(
        rp_id=RP_ID,
        rp_name="Biome",
        user_name="ada@example.com",
        user_id=USER_HANDLE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=c) for c in exclude],
    )
    return options_to_json(options), options.challenge


def request_options(allow: Sequence[bytes] = ()) -> tuple[str, bytes]:
    options = generate_authentication_options(
        rp_id=RP_ID, allow_credentials=[PublicKeyCredentialDescriptor(id=c) for c in allow]
    )
    return options_to_json(options), options.challenge


def registered(authenticator: SoftAuthenticator) -> tuple[bytes, bytes, int]:
    """(credential id, COSE public key, sign count) of a credential made and verified."""
    options, challenge = creation_options()
    verified = verify_registration_response(
        credential=json.dumps(authenticator.create(options)),
        expected_challenge=challenge,
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
    )
    return verified.credential_id, verified.credential_public_key, verified.sign_count


def assert_ok(authenticator: SoftAuthenticator, public_key: bytes, count: int, **kw: object) -> int:
    options, challenge = request_options()
    verified = verify_authentication_response(
        credential=json.dumps(authenticator.get(options, **kw)),  # type: ignore[arg-type]
        expected_challenge=challenge,
        expected_rp_id=RP_ID,
        expected_origin=[ORIGIN],
        credential_public_key=public_key,
        credential_current_sign_count=count,
    )
    return verified.new_sign_count


def test_a_credential_it_creates_verifies_with_its_flags_and_a_zero_count() -> None:
    authenticator = SoftAuthenticator(origin=ORIGIN)
    options, challenge = creation_options()
    verified = verify_registration_response(
        credential=json.dumps(authenticator.create(options)),
        expected_challenge=challenge,
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
        require_user_verification=True,
    )
    assert verified.sign_count == 0
    assert verified.credential_backed_up is True
    assert verified.credential_device_type == "multi_device"
    assert verified.credential_id in authenticator.credentials


def test_assertions_verify_discoverably_and_their_counter_goes_up() -> None:
    authenticator = SoftAuthenticator(origin=ORIGIN)
    credential_id, public_key, count = registered(authenticator)
    count = assert_ok(authenticator, public_key, count)
    assert count == 1
    assert assert_ok(authenticator, public_key, count) == 2
    options, _ = request_options()
    assertion = authenticator.get(options)
    assert from_b64url(assertion["response"]["userHandle"]) == USER_HANDLE
    assert from_b64url(assertion["rawId"]) == credential_id


def test_a_non_counting_authenticator_stays_at_zero_and_verifies() -> None:
    authenticator = SoftAuthenticator(origin=ORIGIN, counting=False)
    _, public_key, _ = registered(authenticator)
    assert assert_ok(authenticator, public_key, 0) == 0
    assert assert_ok(authenticator, public_key, 0) == 0


@pytest.mark.parametrize(
    ("misbehaviour", "complaint"),
    [
        ({"origin": "https://evil.example"}, "origin"),
        ({"rp_id": "evil.example"}, "RP ID hash"),
        ({"challenge": b"another challenge"}, "challenge"),
        ({"bad_signature": True}, "signature"),
        ({"sign_count": 1}, "sign count"),
    ],
)
def test_each_misbehaving_assertion_is_refused_by_py_webauthn(
    misbehaviour: dict[str, object], complaint: str
) -> None:
    authenticator = SoftAuthenticator(origin=ORIGIN)
    _, public_key, count = registered(authenticator)
    count = assert_ok(authenticator, public_key, count)
    count = assert_ok(authenticator, public_key, count)
    with pytest.raises(InvalidAuthenticationResponse, match=complaint):
        assert_ok(authenticator, public_key, count, **misbehaviour)


@pytest.mark.parametrize(
    ("misbehaviour", "complaint"),
    [
        ({"origin": "https://evil.example"}, "origin"),
        ({"rp_id": "evil.example"}, "RP ID hash"),
        ({"challenge": b"another challenge"}, "challenge"),
        ({"user_present": False}, "presence"),
    ],
)
def test_each_misbehaving_registration_is_refused_by_py_webauthn(
    misbehaviour: dict[str, object], complaint: str
) -> None:
    authenticator = SoftAuthenticator(origin=ORIGIN)
    options, challenge = creation_options()
    with pytest.raises(InvalidRegistrationResponse, match=complaint):
        verify_registration_response(
            credential=json.dumps(authenticator.create(options, **misbehaviour)),  # type: ignore[arg-type]
            expected_challenge=challenge,
            expected_rp_id=RP_ID,
            expected_origin=ORIGIN,
        )


def test_it_refuses_to_create_a_credential_the_options_exclude() -> None:
    authenticator = SoftAuthenticator(origin=ORIGIN)
    credential_id, _, _ = registered(authenticator)
    options, _ = creation_options(exclude=[credential_id])
    with pytest.raises(CredentialExcluded):
        authenticator.create(options)


def test_it_answers_only_with_an_allowed_credential() -> None:
    authenticator = SoftAuthenticator(origin=ORIGIN)
    registered(authenticator)
    options, _ = request_options(allow=[b"someone else's credential"])
    with pytest.raises(NoCredential):
        authenticator.get(options)


def test_without_a_user_handle_the_assertion_still_verifies() -> None:
    authenticator = SoftAuthenticator(origin=ORIGIN)
    _, public_key, count = registered(authenticator)
    assert assert_ok(authenticator, public_key, count, with_user_handle=False) == 1
