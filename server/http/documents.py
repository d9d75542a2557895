"""Documents every caller may cache: a fixed JSON body, its strong ETag and Cache-Control.

The key set is loaded at start-up and never changes while the process runs, so each document is
serialized once; a restart with other keys gives other bodies and so other ETags.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web

# How long a verifier (or a proxy between) may use a copy without asking again. A new signing key
# must be published at least this long before it signs (README, "Rotating the signing keys").
CACHE_MAX_AGE_SECONDS = 300
CACHE_CONTROL = f"public, max-age={CACHE_MAX_AGE_SECONDS}"


@dataclass(frozen=True)
class CachedDocument:
    """A JSON document's body and its strong ETag, a digest of exactly those bytes."""

    body: bytes
    etag: str

    @classmethod
    def of(cls, document: object) -> CachedDocument:
        body = json.dumps(document, separators=(",", ":")).encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=")
        return cls(body=body, etag=f'"{digest.decode("ascii")}"')

    def respond(self, request: web.Request) -> web.Response:
        """200 with the body, or 304 without it when If-None-Match names the current ETag."""
        headers = {"Cache-Control": CACHE_CONTROL, "ETag": self.etag}
        if none_match_names(request.headers.getall("If-None-Match", ()), self.etag):
            return web.Response(status=304, headers=headers)
        return web.Response(body=self.body, content_type="application/json", headers=headers)


def none_match_names(header_values: Iterable[str], etag: str) -> bool:
    """Whether If-None-Match header values name ``etag`` or ``*`` (RFC 9110 13.1.2: the weak
    comparison, so ``W/"x"`` names ``"x"``)."""
    for value in header_values:
        for candidate in value.split(","):
            candidate = candidate.strip()
            if candidate == "*" or candidate.removeprefix("W/") == etag:
                return True
    return False
