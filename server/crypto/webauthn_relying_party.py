"""The relying party's side of WebAuthn with py_webauthn: the options the browser passes to
navigator.credentials, and the verification of what its authenticator answered (domain.passkeys'
WebAuthn port), for one relying party id and its origins (USER_SERVICE_WEBAUTHN_*)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from domain.errors import InvalidValue
from domain.passkeys import (
    CEREMONY_LIFETIME,
    CREDENTIAL_ID_MAX_BYTES,
    PUBLIC_KEY_MAX_BYTES,
    NewPasskey,
    Passkey,
    PasskeyNotVerified,
    PresentedAssertion,
    VerifiedAssertion,
    b64url,
    parse_passkey_id,
    passkey_id_bytes,
    user_handle,
)
from domain.values import UserId

log = logging.getLogger(__name__)

# ES256 first: every platform authenticator has it; EdDSA and RS256 for the keys that have not.
ALGORITHMS = [
    COSEAlgorithmIdentifier.ECDSA_SHA_256,
    COSEAlgorithmIdentifier.EDDSA,
    COSEAlgorithmIdentifier.RSASSA_PKCS1_v1_5_SHA_256,
]
TIMEOUT_MS = int(CEREMONY_LIFETIME.total_seconds() * 1000)
MALFORMED = "is not the JSON of a PublicKeyCredential (PublicKeyCredential.toJSON())"


class PyWebAuthnRelyingParty:
    """One relying party: its id (a registrable domain, "example.com"), the name authenticators
    show, and the origins ("https://app.example.com") whose pages may run its ceremonies.

    Attestation is "none": the service trusts the key it is given, not a vendor's statement of
    the authenticator's make (which would need a metadata service to mean anything). User
    verification is preferred, not required: a security key without a PIN still proves
    possession.
    """

    def __init__(self, *, rp_id: str, rp_name: str, origins: Sequence[str]) -> None:
        self._rp_id = rp_id
        self._rp_name = rp_name
        self._origins = list(origins)

    def creation_options(
        self,
        *,
        user_id: UserId,
        user_name: str,
        display_name: str,
        challenge: bytes,
        exclude: Sequence[Passkey],
    ) -> str:
        options = generate_registration_options(
            rp_id=self._rp_id,
            rp_name=self._rp_name,
            user_name=user_name,
            user_id=user_handle(user_id),
            user_display_name=display_name,
            challenge=challenge,
            timeout=TIMEOUT_MS,
            attestation=AttestationConveyancePreference.NONE,
            # A discoverable credential is what lets the user sign in without naming an account.
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            exclude_credentials=[_descriptor(p) for p in exclude],
            supported_pub_key_algs=ALGORITHMS,
        )
        return options_to_json(options)

    def request_options(
        self, *, challenge: bytes, allow: Sequence[Passkey], require_user_verification: bool = False
    ) -> str:
        options = generate_authentication_options(
            rp_id=self._rp_id,
            challenge=challenge,
            timeout=TIMEOUT_MS,
            allow_credentials=[_descriptor(p) for p in allow],
            user_verification=(
                UserVerificationRequirement.REQUIRED
                if require_user_verification
                else UserVerificationRequirement.PREFERRED
            ),
        )
        return options_to_json(options)

    def read_registration(self, credential_json: str) -> str:
        return _credential_id(_registration(credential_json).raw_id)

    def verify_registration(self, credential_json: str, *, challenge: bytes) -> NewPasskey:
        credential = _registration(credential_json)
        try:
            verified = verify_registration_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self._rp_id,
                expected_origin=self._origins,
                supported_pub_key_algs=ALGORITHMS,
            )
        except Exception as error:  # py_webauthn raises more than its own errors on odd input
            log.info("a passkey registration did not verify: %s", type(error).__name__)
            raise PasskeyNotVerified() from None
        if len(verified.credential_public_key) > PUBLIC_KEY_MAX_BYTES:
            log.info("a passkey registration's public key is over %d bytes", PUBLIC_KEY_MAX_BYTES)
            raise PasskeyNotVerified()
        return NewPasskey(
            passkey_id=_credential_id(verified.credential_id),
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            # Each known transport once (a response may repeat them; unknown ones are dropped).
            transports=tuple(dict.fromkeys(t.value for t in credential.response.transports or ())),
            backup_eligible=verified.credential_device_type is CredentialDeviceType.MULTI_DEVICE,
            backed_up=verified.credential_backed_up,
        )

    def read_assertion(self, credential_json: str) -> PresentedAssertion:
        credential = _authentication(credential_json)
        handle = credential.response.user_handle
        return PresentedAssertion(_credential_id(credential.raw_id), handle or None)

    def verify_assertion(
        self, credential_json: str, *, challenge: bytes, passkey: Passkey
    ) -> VerifiedAssertion:
        credential = _authentication(credential_json)
        if _credential_id(credential.raw_id) != passkey.passkey_id:
            raise PasskeyNotVerified()
        try:
            verified = verify_authentication_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self._rp_id,
                expected_origin=self._origins,
                credential_public_key=passkey.public_key,
                credential_current_sign_count=passkey.sign_count,
            )
        except Exception as error:  # py_webauthn raises more than its own errors on odd input
            log.info("a passkey assertion did not verify: %s", type(error).__name__)
            raise PasskeyNotVerified() from None
        return VerifiedAssertion(
            verified.new_sign_count, verified.credential_backed_up, verified.user_verified
        )


def _registration(credential_json: str) -> RegistrationCredential:
    try:
        credential = parse_registration_credential_json(credential_json)
    except Exception:  # not JSON, too deep, a field missing or not base64url
        raise InvalidValue(MALFORMED) from None
    _credential_id(credential.raw_id)
    if b64url(credential.raw_id) != credential.id:
        raise InvalidValue("id and rawId differ")
    return credential


def _authentication(credential_json: str) -> AuthenticationCredential:
    try:
        credential = parse_authentication_credential_json(credential_json)
    except Exception:  # not JSON, too deep, a field missing or not base64url
        raise InvalidValue(MALFORMED) from None
    _credential_id(credential.raw_id)
    if b64url(credential.raw_id) != credential.id:
        raise InvalidValue("id and rawId differ")
    return credential


def _credential_id(raw: bytes) -> str:
    if not raw or len(raw) > CREDENTIAL_ID_MAX_BYTES:
        raise InvalidValue(f"has a credential id of {len(raw)} bytes (1..1023 allowed)")
    return parse_passkey_id(b64url(raw))


def _descriptor(passkey: Passkey) -> PublicKeyCredentialDescriptor:
    transports = []
    for name in passkey.transports:
        try:
            transports.append(AuthenticatorTransport(name))
        except ValueError:
            continue  # a transport newer than this library: left out of the hint
    return PublicKeyCredentialDescriptor(
        id=passkey_id_bytes(passkey.passkey_id), transports=transports or None
    )
