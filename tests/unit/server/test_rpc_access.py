"""Every RPC of the proto states its rule in server.rpc_access, and nothing else is open."""

from __future__ import annotations

from biome.user.v1 import user_service_pb2
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection

from server.roles import ROLES
from server.rpc_access import ANY_CALLER, PUBLIC, RULE_BY_RPC, method_path, rule_of

SERVICE = user_service_pb2.DESCRIPTOR.services_by_name["UserService"]
RPCS = {method.name for method in SERVICE.methods}


def test_every_rpc_of_the_proto_is_classified_and_nothing_else() -> None:
    assert set(RULE_BY_RPC) == RPCS


def test_an_own_user_field_is_a_string_field_of_the_rpc_s_request() -> None:
    for rpc, rule in RULE_BY_RPC.items():
        if rule.own_user_field is not None:
            request = SERVICE.methods_by_name[rpc].input_type
            field = request.fields_by_name[rule.own_user_field]
            assert field.type == field.TYPE_STRING, rpc


def test_every_role_named_by_a_rule_is_a_known_role() -> None:
    for rule in RULE_BY_RPC.values():
        assert rule.roles <= set(ROLES)


def test_open_to_any_caller_are_sign_up_sign_in_their_tokens_and_the_keys() -> None:
    open_rpcs = {rpc for rpc, rule in RULE_BY_RPC.items() if rule.any_caller}
    assert open_rpcs == {
        "RegisterUser",
        "Authenticate",
        "RefreshSession",
        "Logout",
        "RequestPasswordReset",
        "ResetPassword",
        "VerifyEmail",
        "ResendVerification",
        "GetJwks",
        "ConfirmEmailChange",
        "CancelEmailChange",
        "CompleteSignIn",
        "BeginPasskeySignIn",
        "FinishPasskeySignIn",
    }
    assert {rpc for rpc, rule in RULE_BY_RPC.items() if rule.field_rules} == {
        "RegisterUser",
        "DisableTotp",
    }
    assert {rpc for rpc in open_rpcs if RULE_BY_RPC[rpc] != ANY_CALLER} == {"RegisterUser"}


def test_only_users_admin_or_admin_may_register_a_user_with_a_verified_address() -> None:
    rule = RULE_BY_RPC["RegisterUser"]
    vouching = user_service_pb2.RegisterUserRequest(email="a@example.com", email_verified=True)
    plain = user_service_pb2.RegisterUserRequest(email="a@example.com")
    for roles in ({"users:admin"}, {"admin"}, {"users:read", "users:admin"}):
        assert rule.field_refused(frozenset(roles), vouching) is None, roles
    for roles in (set(), {"users:write"}, {"users:read", "sessions:admin", "events:read"}):
        refused = rule.field_refused(frozenset(roles), vouching)
        assert refused is not None and refused.field == "email_verified", roles
        assert (
            refused.describe_needs() == "setting email_verified needs the role admin or users:admin"
        )
        assert rule.field_refused(frozenset(roles), plain) is None, roles


def test_a_field_rule_names_a_field_of_the_rpc_s_request_and_known_roles() -> None:
    for rpc, rule in RULE_BY_RPC.items():
        request = SERVICE.methods_by_name[rpc].input_type
        for field_rule in rule.field_rules:
            assert field_rule.field in request.fields_by_name, rpc
            assert field_rule.roles <= set(ROLES), rpc


def test_a_user_s_token_stands_in_for_a_role_only_on_self_service_rpcs() -> None:
    own = {rpc: rule.own_user_field for rpc, rule in RULE_BY_RPC.items() if rule.own_user_field}
    assert own == {
        "GetUser": "id",
        "UpdateProfile": "id",
        "ChangePassword": "user_id",
        "LogoutAll": "user_id",
        "ListSessions": "user_id",
        "EndSession": "user_id",
        "ListUserEvents": "user_id",
        "RequestEmailChange": "id",
        "BeginTotpEnrollment": "user_id",
        "ConfirmTotpEnrollment": "user_id",
        "DisableTotp": "user_id",
        "RegenerateRecoveryCodes": "user_id",
        "BeginPasskeyRegistration": "user_id",
        "FinishPasskeyRegistration": "user_id",
        "ListPasskeys": "user_id",
        "RemovePasskey": "user_id",
    }


def test_only_users_admin_or_admin_may_turn_totp_off_without_a_code() -> None:
    rule = RULE_BY_RPC["DisableTotp"]
    without = user_service_pb2.DisableTotpRequest(user_id="u", without_code=True)
    with_code = user_service_pb2.DisableTotpRequest(user_id="u", totp_code="123456")
    for roles in ({"users:admin"}, {"admin"}):
        assert rule.field_refused(frozenset(roles), without) is None, roles
    for roles in (set(), {"users:write"}, {"users:read", "sessions:admin"}):
        refused = rule.field_refused(frozenset(roles), without)
        assert refused is not None and refused.field == "without_code", roles
        assert rule.field_refused(frozenset(roles), with_code) is None, roles
    assert RULE_BY_RPC["ResetSecondFactors"].roles == {"users:admin"}
    assert RULE_BY_RPC["ResetSecondFactors"].own_user_field is None


def test_a_user_s_sessions_are_listed_and_ended_by_the_user_or_the_sessions_admin_role() -> None:
    for rpc in ("ListSessions", "EndSession"):
        assert RULE_BY_RPC[rpc].roles == {"sessions:admin"}, rpc


def test_rpcs_over_every_user_need_a_role() -> None:
    # DeleteUser too: a user token outlives a logout or a disable, so it must open nothing
    # irreversible.
    rpcs = (
        "GetUserByEmail",
        "BatchGetUsers",
        "ListUsers",
        "DeleteUser",
        "DisableUser",
        "ChangeEmail",
    )
    for rpc in (*rpcs, "EnableUser"):
        rule = RULE_BY_RPC[rpc]
        assert rule.roles and rule.own_user_field is None and not rule.any_caller, rpc
    assert RULE_BY_RPC["WatchEvents"].roles == {"events:read"}


def test_admin_allows_every_rpc_on_any_user_and_no_role_allows_them_all() -> None:
    for rule in RULE_BY_RPC.values():
        assert rule.allows_any_user(frozenset({"admin"}))
    for role in set(ROLES) - {"admin"}:
        assert not all(rule.allows_any_user(frozenset({role})) for rule in RULE_BY_RPC.values())


def test_methods_are_looked_up_by_their_grpc_path() -> None:
    assert rule_of(method_path("ListUsers")) == RULE_BY_RPC["ListUsers"]
    assert rule_of(f"/{health.SERVICE_NAME}/Check") is PUBLIC
    assert rule_of(f"/{reflection.SERVICE_NAME}/ServerReflectionInfo") is PUBLIC
    assert rule_of("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo") is PUBLIC


def test_a_method_outside_the_classification_needs_what_nobody_has() -> None:
    assert rule_of(method_path("GrantEverything")) is None
    assert rule_of("/other.Service/GetUser") is None
    assert rule_of("GetUser") is None
