"""Every RPC of the proto is classified in server.rpc_access, and nothing else is."""

from __future__ import annotations

from biome.user.v1 import user_service_pb2
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection

from server.rpc_access import ACCESS_BY_RPC, Access, access_of, method_path

RPCS = {
    method.name for method in user_service_pb2.DESCRIPTOR.services_by_name["UserService"].methods
}


def test_every_rpc_of_the_proto_is_classified_and_nothing_else() -> None:
    assert set(ACCESS_BY_RPC) == RPCS


def test_the_admin_rpcs_are_those_over_every_user_or_any_user_s_status() -> None:
    admin = {"ListUsers", "DeleteUser", "DisableUser", "EnableUser", "LogoutAll"}
    admin |= {"ListUserEvents", "WatchEvents"}  # events carry every user's email and names
    assert {rpc for rpc, access in ACCESS_BY_RPC.items() if access is Access.ADMIN} == admin


def test_methods_are_looked_up_by_their_grpc_path() -> None:
    assert access_of(method_path("ListUsers")) is Access.ADMIN
    assert access_of(method_path("GetUser")) is Access.CALLER
    assert access_of(f"/{health.SERVICE_NAME}/Check") is Access.PUBLIC
    assert access_of(f"/{reflection.SERVICE_NAME}/ServerReflectionInfo") is Access.PUBLIC


def test_a_method_outside_the_classification_needs_what_nobody_has() -> None:
    assert access_of(method_path("GrantEverything")) is None
    assert access_of("/other.Service/GetUser") is None
    assert access_of("GetUser") is None
