"""The roles a calling service may hold, each named for what it allows (server.rpc_access uses
them; the settings refuse any other name)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

ADMIN = "admin"
USERS_READ = "users:read"
USERS_WRITE = "users:write"
USERS_ADMIN = "users:admin"
SESSIONS_ADMIN = "sessions:admin"
EVENTS_READ = "events:read"

# Each role and what it allows; roles do not imply one another, except that admin allows all.
ROLES: Mapping[str, str] = {
    ADMIN: "every RPC, on any user",
    USERS_READ: (
        "read any user: by id, by email, in batches, or all of them page by page; list any "
        "user's passkeys"
    ),
    USERS_WRITE: (
        "change any user's profile, or password (given the current one), or ask to move it to "
        "another email address (confirmed from there); turn any user's authenticator app "
        "(TOTP) off or renew its recovery codes, given a current code"
    ),
    USERS_ADMIN: (
        "delete, disable and enable any user, set its email address, verified, or register one "
        "with a verified address; enroll an authenticator app (TOTP) or register or remove a "
        "passkey for any user, turn a user's TOTP off without a code, or remove every second "
        "factor of a user"
    ),
    SESSIONS_ADMIN: "list the sessions of any user, end one or every one of them",
    EVENTS_READ: "read any user's domain events, or watch every user's",
}


def check_roles(roles: Iterable[str]) -> None:
    """Raises ValueError naming the first role that is not one of ROLES."""
    for role in roles:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; the roles are {', '.join(ROLES)}")
