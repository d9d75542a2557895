"""The request id of the RPC being served: from the caller's x-request-id, or a fresh one."""

from __future__ import annotations

import os
import re
from contextvars import ContextVar

from server.operations.wire_log_redaction import redact

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
    """``given`` when it is a sane id (1..128 printable ASCII, no spaces, nothing in the form of
    a secret); else a new one.

    A caller's value is never trusted into a log line raw: control characters could forge lines,
    and a huge value would bloat every line of the call. Nor does a secret sent as an id by
    mistake (a refresh token, an API key) reach the logs: the id is a field of every line of the
    call, beside the message that the record factory redacts, so an id that redaction would
    change is not used.
    """
    if isinstance(given, str) and _SANE.fullmatch(given) and redact(given) == given:
        return given
    return new_request_id()
