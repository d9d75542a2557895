"""Checks of the WebAuthn settings: the relying party id is a host name, and every origin is one
of its pages (the origin's host is the id or under it), over https in production but for
localhost (browsers treat http://localhost as a secure context)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

_HOST = re.compile(
    r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$"
)


def check_rp_id(value: str) -> str:
    if not _HOST.fullmatch(value):
        raise ValueError("must be a lower-case host name such as example.com (no scheme or port)")
    return value


def parse_origins(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def check_origins(origins: Sequence[str], rp_id: str, *, production: bool) -> None:
    """ValueError naming the first origin that is no page of ``rp_id`` (or not https in
    production, but for localhost)."""
    if not origins:
        raise ValueError("USER_SERVICE_WEBAUTHN_ORIGINS must name at least one origin")
    for origin in origins:
        parts = urlsplit(origin)
        host = parts.hostname or ""
        if (
            parts.scheme not in {"http", "https"}
            or not host
            or parts.path
            or parts.query
            or parts.fragment
            or origin != f"{parts.scheme}://{parts.netloc}"
        ):
            raise ValueError(
                f"USER_SERVICE_WEBAUTHN_ORIGINS: {origin!r} must be an origin such as "
                "https://app.example.com (scheme, host, optional port; no path)"
            )
        if host != rp_id and not host.endswith("." + rp_id):
            raise ValueError(
                f"USER_SERVICE_WEBAUTHN_ORIGINS: {origin!r} is not a page of the relying party "
                f"{rp_id!r} (USER_SERVICE_WEBAUTHN_RP_ID): its host must be it or under it"
            )
        if production and parts.scheme != "https" and host != "localhost":
            raise ValueError(
                f"USER_SERVICE_WEBAUTHN_ORIGINS: {origin!r} must be https in production "
                "(browsers run WebAuthn only in secure contexts)"
            )
