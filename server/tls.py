"""TLS credentials for the server and its clients, read from PEM files and checked up front."""

from __future__ import annotations

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


def channel_credentials(
    *, ca_file: Path | None, cert_file: Path | None = None, key_file: Path | None = None
) -> grpc.ChannelCredentials:
    """Client TLS trusting ``ca_file`` (system roots when None), optionally with a client cert."""
    if (cert_file is None) != (key_file is None):
        raise TlsConfigError("a client certificate file and its key file go together")
    ca = None if ca_file is None else _read_certificates(ca_file)
    chain = key = None
    if cert_file is not None and key_file is not None:
        chain = _read_certificates(cert_file)
        key = _read_private_key(key_file, chain)
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=chain
    )


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
