"""Why a call was turned away before any work (caller auth, user tokens, draining, the watcher cap,
bytes that are no request, overload); server.status maps them."""

from __future__ import annotations


class CallerUnauthenticated(Exception):
    """The caller presented no valid API key or client certificate."""

    MESSAGE = "the caller presented no valid API key or client certificate"

    def __init__(self, reason: str) -> None:
        super().__init__(self.MESSAGE)
        self.reason = reason  # for the log only: callers all see the same message


class CallerNotPermitted(Exception):
    """The caller is known but lacks what the method needs (None: no caller may call it)."""

    def __init__(self, needs: str | None) -> None:
        super().__init__("this method is open to no caller" if needs is None else needs)
        self.needs = needs


class UserTokenRejected(Exception):
    """The call's x-user-token is no valid, unexpired access token of this service, or its
    session is no longer in force."""

    def __init__(self, *, expired: bool, session_ended: bool = False) -> None:
        if expired:
            reason = "the x-user-token has expired; refresh the session for a new access token"
        elif session_ended:
            reason = (
                "the x-user-token's session has ended (a logout, EndSession, a password change, "
                "a disabled account); sign in again"
            )
        else:
            reason = "the x-user-token is not a valid access token of this service"
        super().__init__(reason)
        self.expired = expired


class NotTheTokensUser(Exception):
    """The call carries a user's token and names another user, and the caller holds no role that
    lets it act on any user."""

    def __init__(self, field: str) -> None:
        super().__init__(
            f"the x-user-token's user may act only on itself, and {field} names another user"
        )
        self.field = field


class SignInNotRecent(Exception):
    """The call, allowed on the user's own token only, needs that token's sign-in to be recent
    (server.rpc_access's recent_sign_in), and it is not (or the token does not say when)."""

    def __init__(self, max_age_seconds: int) -> None:
        super().__init__(
            f"this change needs a sign-in within the last {max_age_seconds} seconds; sign in "
            "again (a refreshed session does not count) and retry with the new access token"
        )
        self.max_age_seconds = max_age_seconds


class ServiceShuttingDown(Exception):
    """The server is draining for shutdown; the call was refused before any of its work began."""

    def __init__(self) -> None:
        super().__init__("the service is shutting down; retry the call")


class TooManyWatchers(Exception):
    """The server already serves as many WatchEvents streams as it is configured to."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"this server already serves its maximum of {limit} event watchers; "
            "retry later or on another replica"
        )


class UndecodableRequest(Exception):
    """The request bytes are no protobuf message of the method's request type."""

    DESCRIPTION = "is not a valid protobuf message of this method's request type"

    def __init__(self) -> None:
        super().__init__(f"the request {self.DESCRIPTION}")


class RequestTooLarge(Exception):
    """The request message is larger than the service accepts."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the request is {size} bytes; this service accepts at most {limit}")
        self.size = size
        self.limit = limit


class TooManyConcurrentCalls(Exception):
    """The server already handles as many calls at once as it is configured to."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"this server already handles its maximum of {limit} calls at once; "
            "retry later or on another replica"
        )


class PasswordHashQueueFull(Exception):
    """As many password hashes wait for a hashing thread as may; the call changed nothing."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"this server already has {limit} password checks waiting; "
            "retry later or on another replica"
        )
