"""GET /.well-known/openid-configuration: where a verifier finds the keys, and what it checks.

Only what verifying an access token needs: this service issues tokens through its gRPC API, not
through OAuth endpoints, so none are listed.
"""

from __future__ import annotations

from server.http.documents import CachedDocument
from server.http.jwks import JWKS_PATH

DISCOVERY_PATH = "/.well-known/openid-configuration"


def discovery_document(
    *, issuer: str, public_url: str, keys: list[dict[str, str]]
) -> CachedDocument:
    """The issuer (the tokens' ``iss``), the JWKS URL under ``public_url``, the keys' algorithms."""
    return CachedDocument.of(
        {
            "issuer": issuer,
            "jwks_uri": public_url.rstrip("/") + JWKS_PATH,
            "id_token_signing_alg_values_supported": sorted({key["alg"] for key in keys}),
        }
    )
