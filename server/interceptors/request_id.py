"""The request id of the RPC being served: from the caller's x-request-id, or a fresh one."""

from __future__ import annotations

import os
import re
from contextvars import ContextVar

METADATA_KEY = "x-request-id"
MAX_LENGTH = 128
# Printable ASCII without spaces: safe to write into a log line as it is, in either format.
_SANE = re.compile(rf"[!-~]{{1,{MAX_LENGTH}}}")

# Set by the interceptor for the length of each call; log records carry it (logging_config).
current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def new_request_id() -> str:
    """32 random hex digits."""
    return os.urandom(16).hex()


def request_id_from(given: str | bytes | None) -> str:
    """``given`` when it is a sane id (1..128 printable ASCII, no spaces); else a new one.

    A caller's value is never trusted into a log line raw: control characters could forge lines,
    and a huge value would bloat every line of the call.
    """
    if isinstance(given, str) and _SANE.fullmatch(given):
        return given
    return new_request_id()
