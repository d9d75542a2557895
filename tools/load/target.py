"""Where the load tool may send traffic: loopback addresses only, never another machine."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

ALLOWED = "127.0.0.0/8, ::1 or localhost"


class TargetRefused(ValueError):
    """A target or endpoint that is not a loopback address (or not an address at all)."""


def loopback_target(text: str) -> str:
    """``text`` if it is ``HOST:PORT`` with a loopback host; otherwise TargetRefused."""
    host, colon, port = text.strip().rpartition(":")
    if not colon or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise TargetRefused(f"refusing target {text!r}: expected HOST:PORT, e.g. 127.0.0.1:50051")
    if not is_loopback_host(host):
        raise TargetRefused(
            f"refusing target {text!r}: the load tool only drives an instance on this machine "
            f"({ALLOWED})"
        )
    return text.strip()


def loopback_url(url: str) -> str:
    """``url`` if its host is a loopback address (the spawned instance's DynamoDB endpoint)."""
    host = urlsplit(url).hostname or ""
    if not is_loopback_host(host):
        raise TargetRefused(
            f"refusing DynamoDB endpoint {url!r} for the spawned instance: "
            f"only a local endpoint ({ALLOWED}) or none (the embedded one) is allowed"
        )
    return url


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a literal address, possibly in brackets, or ``localhost``) is loopback.

    Other names are refused rather than resolved: a name can point anywhere.
    """
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if bare.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False
