"""GET /.well-known/jwks.json: the public keys that verify access tokens, as GetJwks has them."""

from __future__ import annotations

from server.http.documents import CachedDocument

JWKS_PATH = "/.well-known/jwks.json"


def jwks_document(keys: list[dict[str, str]]) -> CachedDocument:
    """``{"keys": [...]}``: the JWKs of the access-token issuer (server.crypto.access_tokens),
    signer first, the very list GetJwks answers with."""
    return CachedDocument.of({"keys": keys})
