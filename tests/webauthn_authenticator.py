"""A software WebAuthn authenticator and the browser around it, for tests: it answers the options a
relying party sends (PublicKeyCredentialCreationOptions / RequestOptions as JSON) with what a
browser's ``PublicKeyCredential.toJSON()`` gives, following the WebAuthn Level 3 spec.

Each credential is an ES256 (P-256, SHA-256) key pair made with ``cryptography``, resident
(discoverable) and remembering its user handle; attestation is "none"; the authenticator data
carries the flags UP, UV, BE, BS (and AT when a credential is attested) and a sign counter that
goes up by one per assertion. Every ceremony can be told to misbehave: another origin, another rp
id's hash, another challenge, a broken signature, a counter going backwards, no user handle.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

# authenticatorData flags (WebAuthn §6.1)
UP, UV, BE, BS, AT, ED = 0x01, 0x04, 0x08, 0x10, 0x40, 0x80
# The AAGUID of a "none" attestation that names no model: all zeros.
ZERO_AAGUID = bytes(16)
ES256 = -7


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def from_b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CredentialExcluded(Exception):
    """The authenticator holds a credential the options exclude (the browser's
    InvalidStateError)."""


class NoCredential(Exception):
    """No credential held fits the request (the browser's NotAllowedError)."""


@dataclass
class Credential:
    """One resident credential: its id, key pair, the relying party and user it was made for,
    and its signature counter."""

    credential_id: bytes
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    rp_id: str
    user_handle: bytes
    sign_count: int = 0
    # Entries a misbehaving authenticator adds to its COSE key beside the ones it needs.
    cose_extra: dict[int, Any] = field(default_factory=dict)

    def cose_public_key(self) -> bytes:
        numbers = self.private_key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,  # kty: EC2
                3: ES256,  # alg
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
                **self.cose_extra,
            }
        )


@dataclass
class SoftAuthenticator:
    """A platform authenticator in a browser at ``origin``.

    ``counting``: False makes every signature counter stay 0, as synced passkeys do.
    ``backup_eligible`` / ``backed_up``: the BE and BS flags it sets.
    """

    origin: str = "http://localhost:8080"
    counting: bool = True
    backup_eligible: bool = True
    backed_up: bool = True
    user_verifying: bool = True
    credentials: dict[bytes, Credential] = field(default_factory=dict)

    # --- navigator.credentials.create() -----------------------------------------------------

    def create(
        self,
        options_json: str,
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        challenge: bytes | None = None,
        user_present: bool = True,
        credential_id: bytes | None = None,
        user_handle: bytes | None = None,
        cose_extra: dict[int, Any] | None = None,
        transports: list[str] | None = None,
    ) -> dict[str, Any]:
        """A new credential for the creation options, as ``PublicKeyCredential.toJSON()``.

        Misbehaving: ``origin`` (the browser's page), ``rp_id`` (the id whose SHA-256 heads the
        authenticator data), ``challenge`` (put in the client data instead of the options'),
        ``user_present`` False (flag UP unset), ``credential_id`` (chosen, not random),
        ``user_handle`` (kept instead of the options' user id), ``cose_extra`` (entries added
        to the COSE key), ``transports`` (the list the response claims). With "none"
        attestation nothing is signed.
        """
        options = json.loads(options_json)
        options_rp_id = options["rp"].get("id") or _host_of(self.origin)
        for excluded in options.get("excludeCredentials", []):
            held = self.credentials.get(from_b64url(excluded["id"]))
            if held is not None and held.rp_id == options_rp_id:
                raise CredentialExcluded("a credential of this authenticator is excluded")
        if not any(p.get("alg") == ES256 for p in options.get("pubKeyCredParams", [])):
            raise NoCredential("ES256 is not among the accepted algorithms")
        credential = Credential(
            credential_id=credential_id or secrets.token_bytes(16),
            private_key=ec.generate_private_key(ec.SECP256R1()),
            rp_id=options_rp_id,
            user_handle=user_handle or from_b64url(options["user"]["id"]),
            cose_extra=cose_extra or {},
        )
        self.credentials[credential.credential_id] = credential
        client_data = self._client_data(
            "webauthn.create",
            from_b64url(options["challenge"]) if challenge is None else challenge,
            origin,
        )
        attested = (
            ZERO_AAGUID
            + struct.pack(">H", len(credential.credential_id))
            + credential.credential_id
            + credential.cose_public_key()
        )
        auth_data = self._authenticator_data(
            rp_id or options_rp_id, credential.sign_count, user_present, extra_flags=AT
        )
        auth_data += attested
        attestation_object = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        public_key_der = credential.private_key.public_key().public_bytes(
            encoding=serialization.Encoding.DER,
            format=serialization.PublicFormat.SubjectPublicKeyInfo,
        )
        return {
            "id": b64url(credential.credential_id),
            "rawId": b64url(credential.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation_object),
                "authenticatorData": b64url(auth_data),
                "transports": ["hybrid", "internal"] if transports is None else transports,
                "publicKeyAlgorithm": ES256,
                "publicKey": b64url(public_key_der),
            },
        }

    # --- navigator.credentials.get() ----------------------------------------------------------

    def get(
        self,
        options_json: str,
        *,
        credential_id: bytes | None = None,
        origin: str | None = None,
        rp_id: str | None = None,
        challenge: bytes | None = None,
        bad_signature: bool = False,
        sign_count: int | None = None,
        with_user_handle: bool = True,
        user_handle: bytes | None = None,
    ) -> dict[str, Any]:
        """An assertion for the request options, as ``PublicKeyCredential.toJSON()``.

        The credential is ``credential_id`` when given, else the first one held that the
        options allow (any of the rp's when allowCredentials is empty: discoverable). Its
        counter goes up by one (unless the authenticator does not count), or is set to
        ``sign_count`` (a counter going backwards). Misbehaving: ``origin``, ``rp_id``,
        ``challenge`` as for ``create``; ``bad_signature`` flips a bit of the signature;
        ``with_user_handle`` False leaves userHandle out; ``user_handle`` puts another in (it
        is not signed: any client may).
        """
        options = json.loads(options_json)
        options_rp_id = options.get("rpId") or _host_of(self.origin)
        allowed = [from_b64url(c["id"]) for c in options.get("allowCredentials", [])]
        credential = self._choose(options_rp_id, allowed, credential_id)
        if sign_count is not None:
            credential.sign_count = sign_count
        elif self.counting:
            credential.sign_count += 1
        client_data = self._client_data(
            "webauthn.get",
            from_b64url(options["challenge"]) if challenge is None else challenge,
            origin,
        )
        auth_data = self._authenticator_data(rp_id or options_rp_id, credential.sign_count, True)
        signature = credential.private_key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        if bad_signature:
            signature = signature[:-1] + bytes([signature[-1] ^ 0x01])
        response: dict[str, Any] = {
            "clientDataJSON": b64url(client_data),
            "authenticatorData": b64url(auth_data),
            "signature": b64url(signature),
        }
        if with_user_handle:
            response["userHandle"] = b64url(user_handle or credential.user_handle)
        return {
            "id": b64url(credential.credential_id),
            "rawId": b64url(credential.credential_id),
            "type": "public-key",
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": response,
        }

    # --- internals ---------------------------------------------------------------------------

    def _choose(self, rp_id: str, allowed: list[bytes], credential_id: bytes | None) -> Credential:
        candidates = [
            c
            for c in self.credentials.values()
            if c.rp_id == rp_id and (not allowed or c.credential_id in allowed)
        ]
        if credential_id is not None:
            candidates = [c for c in candidates if c.credential_id == credential_id]
        if not candidates:
            raise NoCredential("no credential held fits the request")
        return candidates[0]

    def _client_data(self, kind: str, challenge: bytes, origin: str | None) -> bytes:
        return json.dumps(
            {
                "type": kind,
                "challenge": b64url(challenge),
                "origin": origin or self.origin,
                "crossOrigin": False,
            },
            separators=(",", ":"),
        ).encode()

    def _authenticator_data(
        self, rp_id: str, sign_count: int, user_present: bool, *, extra_flags: int = 0
    ) -> bytes:
        flags = extra_flags
        flags |= UP if user_present else 0
        flags |= UV if self.user_verifying else 0
        flags |= BE if self.backup_eligible else 0
        flags |= BS if self.backed_up else 0
        return (
            hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + struct.pack(">I", sign_count)
        )


def _host_of(origin: str) -> str:
    return origin.split("://", 1)[-1].split(":", 1)[0].split("/", 1)[0]
