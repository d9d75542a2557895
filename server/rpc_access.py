"""Who may call what: every RPC of UserService states its rule here, and only here.

A method missing from RULE_BY_RPC is refused to every caller, and a unit test fails while any
RPC of the proto is missing from it, so a new RPC is never open by omission. Callers are services,
identified by an API key or a client certificate and holding roles (server.roles); a call may
also carry the end user's access token (``x-user-token``), which narrows what the call may do and
never widens it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from biome.user.v1 import user_service_pb2
from grpc_health.v1 import health

from server import reflection
from server.roles import (
    ADMIN,
    EVENTS_READ,
    SESSIONS_ADMIN,
    USERS_ADMIN,
    USERS_READ,
    USERS_WRITE,
)

USER_SERVICE_NAME = user_service_pb2.DESCRIPTOR.services_by_name["UserService"].full_name
# Served to anyone who reaches the port, unless USER_SERVICE_PUBLIC_HEALTH_AND_REFLECTION=false
# (then they need an identified caller, as any-caller methods do).
PUBLIC_SERVICES = (health.SERVICE_NAME, *reflection.SERVICE_NAMES)
ADMIN_ROLE = ADMIN


@dataclass(frozen=True)
class FieldRule:
    """A request field that only some callers may set: set (to anything but its default), it
    needs one of ``roles`` (admin always counts), whatever the method's rule lets through."""

    field: str
    roles: frozenset[str]

    def refuses(self, roles: frozenset[str], request: object) -> bool:
        """Whether a caller holding ``roles`` may not send ``request`` (None: not yet read)."""
        if ADMIN in roles or self.roles & roles:
            return False
        return request is not None and bool(getattr(request, self.field, None))

    def describe_needs(self) -> str:
        roles = " or ".join(sorted(self.roles | {ADMIN}))
        return f"setting {self.field} needs the role {roles}"


@dataclass(frozen=True)
class Rule:
    """What a caller needs to call one method.

    ``public``: nothing at all. ``any_caller``: an identified caller. Otherwise one of ``roles``
    (admin always counts), which lets the caller act on any user; or, when ``own_user_field``
    names the request field that names the user, the x-user-token of that very user. Over and
    above that, each of ``field_rules`` says who may set one field of the request.

    ``recent_sign_in``: a call let through only by the user's own token (no role) also needs that
    token's sign-in (its auth_time) within USER_SERVICE_RECENT_SIGN_IN_SECONDS, as Ory Kratos's
    privileged session: a stolen refresh token keeps minting fresh access tokens, but none of
    them may add or remove a factor or move the account's address.
    """

    roles: frozenset[str] = frozenset()
    own_user_field: str | None = None
    any_caller: bool = False
    public: bool = False
    field_rules: tuple[FieldRule, ...] = ()
    recent_sign_in: bool = False

    def field_refused(self, roles: frozenset[str], request: object) -> FieldRule | None:
        """The first field of ``request`` a caller holding ``roles`` may not set, if any."""
        return next((rule for rule in self.field_rules if rule.refuses(roles, request)), None)

    def allows_any_user(self, roles: frozenset[str]) -> bool:
        """Whether a caller holding ``roles`` may call the method on any user."""
        return ADMIN in roles or bool(self.roles & roles)

    def describe_needs(self) -> str:
        """What a caller lacks when refused, for the refusal's message."""
        roles = " or ".join(sorted(self.roles | {ADMIN}))
        if self.own_user_field is None:
            return f"this method needs the role {roles}"
        return (
            f"this method needs the role {roles}, or the x-user-token of the user "
            f"its {self.own_user_field} names"
        )


PUBLIC = Rule(public=True)
ANY_CALLER = Rule(any_caller=True)


def own_user_or(field: str, role: str) -> Rule:
    """The user's own token (on the user ``field`` names), or ``role`` for any user."""
    return Rule(roles=frozenset({role}), own_user_field=field)


def own_recent_user_or(field: str, role: str) -> Rule:
    """As own_user_or, the own token's sign-in recent too (``recent_sign_in``)."""
    return Rule(roles=frozenset({role}), own_user_field=field, recent_sign_in=True)


def role_only(role: str) -> Rule:
    return Rule(roles=frozenset({role}))


RULE_BY_RPC: Mapping[str, Rule] = {
    # Accounts. Vouching for an address is an administrator's: it skips the mail that proves it.
    "RegisterUser": Rule(
        any_caller=True, field_rules=(FieldRule("email_verified", frozenset({USERS_ADMIN})),)
    ),
    "GetUser": own_user_or("id", USERS_READ),
    "GetUserByEmail": role_only(USERS_READ),
    "BatchGetUsers": role_only(USERS_READ),
    "UpdateProfile": own_user_or("id", USERS_WRITE),
    "ListUsers": role_only(USERS_READ),
    # Not with a user's own token: the token is checked statelessly and outlives a logout, a
    # password change or a disable by up to its lifetime, so it must open nothing irreversible.
    "DeleteUser": role_only(USERS_ADMIN),
    "DisableUser": role_only(USERS_ADMIN),
    "EnableUser": role_only(USERS_ADMIN),
    # Sessions: a refresh token is itself the proof of its session, whoever passes it on.
    "Authenticate": ANY_CALLER,
    # The challenge's token, from Authenticate after the right password, is the proof.
    "CompleteSignIn": ANY_CALLER,
    "RefreshSession": ANY_CALLER,
    "Logout": ANY_CALLER,
    "LogoutAll": own_user_or("user_id", SESSIONS_ADMIN),
    "ListSessions": own_user_or("user_id", SESSIONS_ADMIN),
    "EndSession": own_user_or("user_id", SESSIONS_ADMIN),
    "GetJwks": ANY_CALLER,
    # Passwords: ChangePassword also needs the current password; a reset, the mailed token.
    "ChangePassword": own_user_or("user_id", USERS_WRITE),
    "RequestPasswordReset": ANY_CALLER,
    "ResetPassword": ANY_CALLER,
    # Email verification: the mailed token or code is the proof, whoever passes it on.
    "VerifyEmail": ANY_CALLER,
    "ResendVerification": ANY_CALLER,
    # Events: they carry emails and names
    "ListUserEvents": own_user_or("user_id", EVENTS_READ),
    "WatchEvents": role_only(EVENTS_READ),
    # Email: a change is confirmed, or cancelled, by the token mailed for it, whoever passes it
    # on; support sets a verified address without mail, so only an admin role may. Requesting a
    # change on the own token needs a recent sign-in: the new address could then reset the
    # password.
    "RequestEmailChange": own_recent_user_or("id", USERS_WRITE),
    "ConfirmEmailChange": ANY_CALLER,
    "CancelEmailChange": ANY_CALLER,
    "ChangeEmail": role_only(USERS_ADMIN),
    # Second factors: the owner's own token (or users:admin) enrolls; with a current code, the
    # owner or users:write disables or regenerates; turning TOTP off without a code, or removing
    # every factor, is support's, for an owner who lost them. A factor is a credential: one a
    # service enrolls for someone else (a TOTP secret it is handed, a passkey whose key it holds)
    # signs in as them, so adding or removing one is never users:write's. On the owner's own
    # token, adding or removing one needs a recent sign-in (a stolen token must not plant one).
    "BeginTotpEnrollment": own_recent_user_or("user_id", USERS_ADMIN),
    "ConfirmTotpEnrollment": own_recent_user_or("user_id", USERS_ADMIN),
    "DisableTotp": Rule(
        roles=frozenset({USERS_WRITE}),
        own_user_field="user_id",
        field_rules=(FieldRule("without_code", frozenset({USERS_ADMIN})),),
    ),
    "RegenerateRecoveryCodes": own_user_or("user_id", USERS_WRITE),
    "ResetSecondFactors": role_only(USERS_ADMIN),
    # Passkeys: their owner registers and removes them (or users:admin, for any user); any
    # user's are listed with users:read. A passwordless sign-in is proven by the assertion
    # itself, whoever passes it on (as Authenticate by the password).
    "BeginPasskeyRegistration": own_recent_user_or("user_id", USERS_ADMIN),
    "FinishPasskeyRegistration": own_recent_user_or("user_id", USERS_ADMIN),
    "ListPasskeys": own_user_or("user_id", USERS_READ),
    "RemovePasskey": own_recent_user_or("user_id", USERS_ADMIN),
    "BeginPasskeySignIn": ANY_CALLER,
    "FinishPasskeySignIn": ANY_CALLER,
}


def method_path(rpc: str) -> str:
    """The gRPC method path of a UserService RPC: "/biome.user.v1.UserService/GetUser"."""
    return f"/{USER_SERVICE_NAME}/{rpc}"


_RULE_BY_PATH = {method_path(rpc): rule for rpc, rule in RULE_BY_RPC.items()}


def rule_of(method: str) -> Rule | None:
    """The rule of ``method`` (a gRPC method path); None for a method nobody may call."""
    found = _RULE_BY_PATH.get(method)
    if found is not None:
        return found
    if service_of(method) in PUBLIC_SERVICES:
        return PUBLIC
    return None


def service_of(method: str) -> str:
    """ "/pkg.Service/Method" -> "pkg.Service"."""
    return method.lstrip("/").rpartition("/")[0]
