"""Why a call was turned away before any work (caller_auth, draining); server.status maps them."""

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


class ServiceShuttingDown(Exception):
    """The server is draining for shutdown; the call was refused before any of its work began."""

    def __init__(self) -> None:
        super().__init__("the service is shutting down; retry the call")
