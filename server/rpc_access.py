"""Who may call what: every RPC of UserService is classified here, and only here.

A method missing from ACCESS_BY_RPC is refused to every caller, and a unit test fails while any
RPC of the proto is missing from it, so a new RPC is never open by omission.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from biome.user.v1 import user_service_pb2
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection

USER_SERVICE_NAME = user_service_pb2.DESCRIPTOR.services_by_name["UserService"].full_name
# Served to anyone who reaches the port, unless USER_SERVICE_PUBLIC_HEALTH_AND_REFLECTION=false
# (then they need an identified caller, as CALLER methods do).
PUBLIC_SERVICES = (health.SERVICE_NAME, reflection.SERVICE_NAME)
ADMIN_ROLE = "admin"


class Access(enum.Enum):
    """What a caller needs to call a method."""

    PUBLIC = "public"  # nothing: health and reflection
    CALLER = "caller"  # an identified caller: an API key or a verified client certificate
    ADMIN = "admin"  # an identified caller with the admin role


ACCESS_BY_RPC: Mapping[str, Access] = {
    # Accounts
    "RegisterUser": Access.CALLER,
    "GetUser": Access.CALLER,
    "GetUserByEmail": Access.CALLER,
    "BatchGetUsers": Access.CALLER,
    "UpdateProfile": Access.CALLER,
    "ListUsers": Access.ADMIN,
    "DeleteUser": Access.ADMIN,
    "DisableUser": Access.ADMIN,
    "EnableUser": Access.ADMIN,
    # Sessions
    "Authenticate": Access.CALLER,
    "RefreshSession": Access.CALLER,
    "Logout": Access.CALLER,
    "LogoutAll": Access.ADMIN,
    "GetJwks": Access.CALLER,
    # Passwords
    "ChangePassword": Access.CALLER,
    "RequestPasswordReset": Access.CALLER,
    "ResetPassword": Access.CALLER,
    # Events: they carry emails and names, of every user
    "ListUserEvents": Access.ADMIN,
    "WatchEvents": Access.ADMIN,
}


def method_path(rpc: str) -> str:
    """The gRPC method path of a UserService RPC: "/biome.user.v1.UserService/GetUser"."""
    return f"/{USER_SERVICE_NAME}/{rpc}"


_ACCESS_BY_PATH = {method_path(rpc): access for rpc, access in ACCESS_BY_RPC.items()}


def access_of(method: str) -> Access | None:
    """What ``method`` (a gRPC method path) needs; None for a method nobody may call."""
    found = _ACCESS_BY_PATH.get(method)
    if found is not None:
        return found
    if service_of(method) in PUBLIC_SERVICES:
        return Access.PUBLIC
    return None


def service_of(method: str) -> str:
    """ "/pkg.Service/Method" -> "pkg.Service"."""
    return method.lstrip("/").rpartition("/")[0]
