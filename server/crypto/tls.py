"""TLS credentials for the server, read from PEM files and checked up front."""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization


class TlsConfigError(ValueError):
    """A TLS file is missing, unreadable or not valid PEM; the message names just its path."""


def server_credentials(
    *, cert_file: Path, key_file: Path, client_ca_file: Path | None
) -> grpc.ServerCredentials:
    """Server TLS from a certificate chain and its key; with ``client_ca_file``, mutual TLS.

    With a client CA, every client must present a certificate that CA signed (the handshake
    fails otherwise); without one, clients are not asked for a certificate at all.
    """
    chain = _read_certificates(cert_file)
    key = _read_private_key(key_file, chain)
    client_ca = None if client_ca_file is None else _read_certificates(client_ca_file)
    return grpc.ssl_server_credentials(
        [(key, chain)],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def server_ssl_context(*, cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """Server TLS for the HTTP listener, with the gRPC port's certificate and key, checked alike.

    No client certificate is asked for, even when the gRPC port requires one: the kubelet's
    probes and token verifiers present none, and nothing served there is secret.
    """
    _read_private_key(key_file, _read_certificates(cert_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(cert_file, key_file)
    return context


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise TlsConfigError(f"cannot read TLS file {path}: {error.strerror}") from None


def _read_certificates(path: Path) -> bytes:
    pem = _read(path)
    try:
        x509.load_pem_x509_certificates(pem)
    except ValueError:
        # from None: the parser's message may quote the file, and it holds nothing useful.
        raise TlsConfigError(f"TLS file {path} holds no PEM certificate") from None
    return pem


def _read_private_key(path: Path, chain: bytes) -> bytes:
    pem = _read(path)
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise TlsConfigError(f"TLS file {path} holds no unencrypted PEM private key") from None
    leaf = x509.load_pem_x509_certificates(chain)[0]
    if key.public_key() != leaf.public_key():
        raise TlsConfigError(f"the private key in {path} does not belong to its certificate")
    return pem
