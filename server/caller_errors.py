"""Why a caller was turned away: the errors server.caller_auth raises and server.status maps."""

from __future__ import annotations


class CallerUnauthenticated(Exception):
    """The caller presented no valid API key or client certificate."""

    MESSAGE = "the caller presented no valid API key or client certificate"

    def __init__(self, reason: str) -> None:
        super().__init__(self.MESSAGE)
        self.reason = reason  # for the log only: callers all see the same message


class CallerNotPermitted(Exception):
    """The caller is known but lacks the role the method needs."""

    def __init__(self, role: str) -> None:
        super().__init__(f"this method needs the {role} role")
        self.role = role
