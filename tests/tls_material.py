"""Throw-away certificate authorities and certificates (EC P-256) for TLS tests, as PEM files."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_DNS_NAME = "localhost"
SERVER_IP = "127.0.0.1"


@dataclass(frozen=True)
class _Authority:
    name: x509.Name
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate


@dataclass(frozen=True)
class TlsMaterial:
    """PEM files in ``directory``: a CA, a server certificate it signed, and client certificates."""

    directory: Path
    ca_cert: Path
    server_cert: Path
    server_key: Path
    untrusted_ca_cert: Path
    _ca: _Authority
    _untrusted_ca: _Authority

    def client_cert(self, common_name: str) -> tuple[Path, Path]:
        """A client certificate (and its key) for ``common_name``, signed by the trusted CA."""
        return self._client_cert(self._ca, common_name, "client")

    def untrusted_client_cert(self, common_name: str) -> tuple[Path, Path]:
        """A client certificate for ``common_name`` signed by a CA the server does not trust."""
        return self._client_cert(self._untrusted_ca, common_name, "untrusted-client")

    def _client_cert(self, ca: _Authority, common_name: str, prefix: str) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = (
            _builder(_name(common_name), ca, key)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca.key, hashes.SHA256())
        )
        stem = f"{prefix}-{common_name}"
        return (
            _write_certificate(self.directory / f"{stem}.crt", certificate),
            _write_key(self.directory / f"{stem}.key", key),
        )


def make_tls_material(directory: Path) -> TlsMaterial:
    """Writes a fresh CA, a server certificate for localhost and 127.0.0.1, and a second CA."""
    ca = _authority("Test CA")
    untrusted_ca = _authority("Untrusted Test CA")
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_certificate = (
        _builder(_name(SERVER_DNS_NAME), ca, server_key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName(SERVER_DNS_NAME),
                    x509.IPAddress(ipaddress.ip_address(SERVER_IP)),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    return TlsMaterial(
        directory=directory,
        ca_cert=_write_certificate(directory / "ca.crt", ca.certificate),
        server_cert=_write_certificate(directory / "server.crt", server_certificate),
        server_key=_write_key(directory / "server.key", server_key),
        untrusted_ca_cert=_write_certificate(
            directory / "untrusted-ca.crt", untrusted_ca.certificate
        ),
        _ca=ca,
        _untrusted_ca=untrusted_ca,
    )


def _authority(common_name: str) -> _Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.now(UTC) - timedelta(hours=1))
        .not_valid_after(datetime.now(UTC) + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _Authority(name=name, key=key, certificate=certificate)


def _builder(
    subject: x509.Name, ca: _Authority, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.now(UTC) - timedelta(hours=1))
        .not_valid_after(datetime.now(UTC) + timedelta(days=1))
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_certificate(path: Path, certificate: x509.Certificate) -> Path:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def channel_credentials(
    *, ca_file: Path, cert_file: Path | None = None, key_file: Path | None = None
) -> grpc.ChannelCredentials:
    """Client TLS trusting ``ca_file``, presenting a client certificate when one is given."""
    return grpc.ssl_channel_credentials(
        root_certificates=ca_file.read_bytes(),
        private_key=key_file.read_bytes() if key_file is not None else None,
        certificate_chain=cert_file.read_bytes() if cert_file is not None else None,
    )
