"""UserService over a real gRPC channel against moto_server: every RPC, its replies, its errors."""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any

import grpc
import pytest
from biome.user.v1 import user_service_pb2 as pb
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from domain.pagination import PageTokenCodec
from domain.values import UserId
from tests.e2e.harness import Service, field_violations, rpc_error

PASSWORD = "correct horse battery"


def registration(email: str = "Ada.Lovelace@Example.com", **changes: str) -> pb.RegisterUserRequest:
    fields: dict[str, Any] = {
        "email": email,
        "password": PASSWORD,
        "first_name": "Ada",
        "last_name": "Lovelace",
    }
    fields.update(changes)
    return pb.RegisterUserRequest(**fields)


async def register(
    service: Service, email: str = "Ada.Lovelace@Example.com", **changes: str
) -> pb.User:
    return await service.stub.RegisterUser(registration(email, **changes))


# --- happy paths ----------------------------------------------------------------------------------


async def test_register_user_returns_the_new_account_at_version_1(service: Service) -> None:
    user = await register(service, "  Ada.Lovelace@Example.com ")

    assert str(uuid.UUID(user.id)) == user.id
    assert (user.email, user.first_name, user.last_name) == (
        "Ada.Lovelace@Example.com",
        "Ada",
        "Lovelace",
    )
    assert user.status == pb.USER_STATUS_ACTIVE
    assert user.version == 1
    assert user.HasField("created_at") and user.created_at == user.updated_at
    assert user.created_at.seconds > 0


async def test_user_reply_never_carries_the_password_or_its_hash(service: Service) -> None:
    user = await register(service)

    assert set(pb.User.DESCRIPTOR.fields_by_name) == {
        "id",
        "email",
        "first_name",
        "last_name",
        "status",
        "version",
        "created_at",
        "updated_at",
        "email_verified",
        "email_verified_at",
        "totp_enabled",  # never the secret, only whether it is on
        "recovery_codes_remaining",  # never the codes, only how many are left
        "passkey_count",  # never a key, only how many
    }
    assert PASSWORD.encode() not in user.SerializeToString()
    [item] = await service.scan(service.tables.users)
    stored_hash = item["PasswordHash"]["S"]
    assert stored_hash.startswith("$argon2id$") and PASSWORD not in stored_hash
    assert stored_hash.encode() not in user.SerializeToString()


async def test_get_user_returns_the_registered_account(service: Service) -> None:
    registered = await register(service)

    assert await service.stub.GetUser(pb.GetUserRequest(id=registered.id.upper())) == registered


async def test_get_user_by_email_matches_any_letter_case_and_surrounding_space(
    service: Service,
) -> None:
    registered = await register(service, "Ada.Lovelace@Example.com")

    found = await service.stub.GetUserByEmail(
        pb.GetUserByEmailRequest(email="  ada.LOVELACE@example.COM ")
    )

    assert found == registered


async def test_update_profile_changes_the_given_name_only_and_bumps_the_version(
    service: Service,
) -> None:
    registered = await register(service)

    updated = await service.stub.UpdateProfile(
        pb.UpdateProfileRequest(id=registered.id, last_name=" Byron ", expected_version=1)
    )

    assert (updated.first_name, updated.last_name, updated.version) == ("Ada", "Byron", 2)
    assert updated.created_at == registered.created_at
    assert updated.updated_at.ToDatetime() >= registered.updated_at.ToDatetime()
    assert await service.stub.GetUser(pb.GetUserRequest(id=registered.id)) == updated


async def test_update_profile_changes_both_names(service: Service) -> None:
    registered = await register(service)

    updated = await service.stub.UpdateProfile(
        pb.UpdateProfileRequest(
            id=registered.id, first_name="Augusta", last_name="King", expected_version=1
        )
    )

    assert (updated.first_name, updated.last_name, updated.version) == ("Augusta", "King", 2)


async def test_list_users_pages_through_every_account_exactly_once(service: Service) -> None:
    registered = {(await register(service, f"user{i}@example.com")).id for i in range(7)}

    seen: list[str] = []
    token = ""
    for _ in range(10):
        page = await service.stub.ListUsers(pb.ListUsersRequest(page_size=3, page_token=token))
        assert len(page.users) <= 3
        seen.extend(user.id for user in page.users)
        token = page.next_page_token
        if not token:
            break

    assert sorted(seen) == sorted(registered)


async def test_list_users_with_page_size_0_returns_the_default_page(service: Service) -> None:
    registered = {(await register(service, f"user{i}@example.com")).id for i in range(3)}

    page = await service.stub.ListUsers(pb.ListUsersRequest())

    assert {user.id for user in page.users} == registered
    assert page.next_page_token == ""


async def test_delete_user_removes_the_account_and_frees_its_email(service: Service) -> None:
    registered = await register(service, "Ada@Example.com")

    reply = await service.stub.DeleteUser(
        pb.DeleteUserRequest(id=registered.id, expected_version=1)
    )

    assert reply == pb.DeleteUserResponse()
    error = await rpc_error(service.stub.GetUser(pb.GetUserRequest(id=registered.id)))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert await service.scan(service.tables.users) == []
    assert await service.scan(service.tables.emails) == []
    again = await register(service, "ADA@example.com")
    assert again.id != registered.id


# --- invalid input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"email": "not-an-email"}, {"email"}),
        ({"email": "ada@@example.com"}, {"email"}),
        ({"email": ""}, {"email"}),
        ({"first_name": "   "}, {"first_name"}),
        ({"last_name": "x" * 101}, {"last_name"}),
        ({"password": "short"}, {"password"}),
        ({"password": "p" * 129}, {"password"}),
        (
            {"email": "nope", "password": "", "first_name": "", "last_name": ""},
            {"email", "password", "first_name", "last_name"},
        ),
    ],
    ids=[
        "malformed-email",
        "double-at",
        "empty-email",
        "blank-first-name",
        "long-last-name",
        "weak-password",
        "long-password",
        "everything",
    ],
)
async def test_register_user_refuses_invalid_fields_naming_each_one(
    service: Service, changes: dict[str, str], fields: set[str]
) -> None:
    request = registration()
    for name, value in changes.items():
        setattr(request, name, value)

    error = await rpc_error(service.stub.RegisterUser(request))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == fields
    assert await service.scan(service.tables.users) == []
    assert await service.scan(service.tables.emails) == []


async def test_register_user_never_echoes_the_password_in_errors(service: Service) -> None:
    secret = "tiny"
    error = await rpc_error(service.stub.RegisterUser(registration(password=secret)))

    assert secret not in (error.details() or "")
    assert secret not in str(field_violations(error))


async def test_register_user_refuses_duplicate_email_in_other_case(service: Service) -> None:
    first = await register(service, "Ada.Lovelace@Example.com")

    error = await rpc_error(
        service.stub.RegisterUser(registration("  ADA.lovelace@example.COM", first_name="Eve"))
    )

    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    [user_item] = await service.scan(service.tables.users)
    assert user_item["Id"]["S"] == first.id and user_item["FirstName"]["S"] == "Ada"
    assert len(await service.scan(service.tables.emails)) == 1


async def test_get_user_refuses_a_malformed_id(service: Service) -> None:
    error = await rpc_error(service.stub.GetUser(pb.GetUserRequest(id="not-a-uuid")))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"id"}


async def test_get_user_reports_an_unknown_id_as_not_found(service: Service) -> None:
    error = await rpc_error(service.stub.GetUser(pb.GetUserRequest(id=str(uuid.uuid4()))))

    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_get_user_by_email_reports_an_unknown_email_as_not_found(service: Service) -> None:
    await register(service, "ada@example.com")

    error = await rpc_error(
        service.stub.GetUserByEmail(pb.GetUserByEmailRequest(email="eve@example.com"))
    )

    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_get_user_by_email_refuses_a_malformed_email(service: Service) -> None:
    error = await rpc_error(
        service.stub.GetUserByEmail(pb.GetUserByEmailRequest(email="no at sign"))
    )

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"email"}


async def test_update_profile_with_a_stale_version_is_aborted_and_changes_nothing(
    service: Service,
) -> None:
    registered = await register(service)
    current = await service.stub.UpdateProfile(
        pb.UpdateProfileRequest(id=registered.id, first_name="Augusta", expected_version=1)
    )

    error = await rpc_error(
        service.stub.UpdateProfile(
            pb.UpdateProfileRequest(id=registered.id, first_name="Eve", expected_version=1)
        )
    )

    assert error.code() == grpc.StatusCode.ABORTED
    assert await service.stub.GetUser(pb.GetUserRequest(id=registered.id)) == current


async def test_update_profile_without_either_name_is_refused(service: Service) -> None:
    registered = await register(service)

    error = await rpc_error(
        service.stub.UpdateProfile(pb.UpdateProfileRequest(id=registered.id, expected_version=1))
    )

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"first_name"}
    assert await service.stub.GetUser(pb.GetUserRequest(id=registered.id)) == registered


async def test_update_profile_refuses_an_empty_name_and_a_missing_version(service: Service) -> None:
    registered = await register(service)

    error = await rpc_error(
        service.stub.UpdateProfile(pb.UpdateProfileRequest(id=registered.id, last_name=""))
    )

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"last_name", "expected_version"}
    assert await service.stub.GetUser(pb.GetUserRequest(id=registered.id)) == registered


async def test_update_profile_of_an_unknown_user_is_not_found(service: Service) -> None:
    error = await rpc_error(
        service.stub.UpdateProfile(
            pb.UpdateProfileRequest(id=str(uuid.uuid4()), first_name="Eve", expected_version=1)
        )
    )

    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_delete_user_with_a_stale_version_is_aborted_and_keeps_the_user(
    service: Service,
) -> None:
    registered = await register(service)
    await service.stub.UpdateProfile(
        pb.UpdateProfileRequest(id=registered.id, first_name="Augusta", expected_version=1)
    )

    error = await rpc_error(
        service.stub.DeleteUser(pb.DeleteUserRequest(id=registered.id, expected_version=1))
    )

    assert error.code() == grpc.StatusCode.ABORTED
    assert (await service.stub.GetUser(pb.GetUserRequest(id=registered.id))).version == 2
    assert len(await service.scan(service.tables.emails)) == 1


async def test_delete_user_of_an_unknown_user_is_not_found(service: Service) -> None:
    error = await rpc_error(
        service.stub.DeleteUser(pb.DeleteUserRequest(id=str(uuid.uuid4()), expected_version=1))
    )

    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_delete_user_refuses_a_malformed_id_and_a_missing_version(service: Service) -> None:
    error = await rpc_error(service.stub.DeleteUser(pb.DeleteUserRequest(id="42")))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"id", "expected_version"}


@pytest.mark.parametrize("page_size", [-1, 101])
async def test_list_users_refuses_a_page_size_out_of_range(
    service: Service, page_size: int
) -> None:
    error = await rpc_error(service.stub.ListUsers(pb.ListUsersRequest(page_size=page_size)))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"page_size"}


def _forged_tokens() -> dict[str, str]:
    other_key = PageTokenCodec(b"another-service-key-0123456789ab").encode(
        UserId(str(uuid.uuid4()))
    )
    garbage = (
        base64.urlsafe_b64encode(b"\x01" + uuid.uuid4().bytes + b"\x00" * 16).decode().rstrip("=")
    )
    return {
        "signed-with-another-key": other_key,
        "unsigned": garbage,
        "not-base64": "%%%not a token%%%",
    }


@pytest.mark.parametrize("kind", ["signed-with-another-key", "unsigned", "not-base64", "corrupted"])
async def test_list_users_refuses_a_forged_or_corrupted_page_token(
    service: Service, kind: str
) -> None:
    for i in range(3):
        await register(service, f"user{i}@example.com")
    issued = (await service.stub.ListUsers(pb.ListUsersRequest(page_size=1))).next_page_token
    assert issued
    tokens = _forged_tokens()
    tokens["corrupted"] = issued[:-2] + ("AA" if not issued.endswith("AA") else "BB")

    error = await rpc_error(
        service.stub.ListUsers(pb.ListUsersRequest(page_size=1, page_token=tokens[kind]))
    )

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"page_token"}


# --- health and reflection ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "biome.user.v1.UserService"])
async def test_health_reports_serving_while_dynamodb_answers(service: Service, name: str) -> None:
    reply = await health_pb2_grpc.HealthStub(service.channel).Check(  # type: ignore[attr-defined, unused-ignore]
        health_pb2.HealthCheckRequest(service=name)
    )

    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_health_turns_not_serving_when_dynamodb_stops_answering(service: Service) -> None:
    health = health_pb2_grpc.HealthStub(service.channel)
    request = health_pb2.HealthCheckRequest(service="biome.user.v1.UserService")

    await service.dynamodb.delete_table(TableName=service.tables.emails)

    deadline = asyncio.get_running_loop().time() + 10
    while (await health.Check(request)).status != health_pb2.HealthCheckResponse.NOT_SERVING:  # type: ignore[attr-defined, unused-ignore]
        assert asyncio.get_running_loop().time() < deadline, (
            "still SERVING 10 s after losing a table"
        )
        await asyncio.sleep(0.1)


async def test_reflection_lists_the_user_health_and_reflection_services(service: Service) -> None:
    stub: Any = reflection_pb2_grpc.ServerReflectionStub(service.channel)  # type: ignore[arg-type, unused-ignore]
    request = reflection_pb2.ServerReflectionRequest(list_services="")

    replies = [reply async for reply in stub.ServerReflectionInfo(iter([request]))]

    names = {entry.name for entry in replies[0].list_services_response.service}
    assert names == {
        "biome.user.v1.UserService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    }
