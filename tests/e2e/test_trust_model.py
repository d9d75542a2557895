"""The trust model through the whole service, over real gRPC channels: calling services hold
roles by API key; an end user's access token (x-user-token) ties a call to that user only."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc
import pytest
import pytest_asyncio
from biome.user.v1 import user_service_pb2 as pb
from biome.user.v1 import user_service_pb2_grpc

from tests.e2e.auth_helpers import NEW_PASSWORD, PASSWORD, unique_email
from tests.e2e.harness import Service, rpc_error
from tests.e2e.secured_service import RPC_TIMEOUT, CallerKeys, SecuredService, bearer
from tests.e2e.test_cli import cli_environment, run_cli

# The async stub type exists only in the .pyi stubs, so it is named as a string.
Stub: TypeAlias = "user_service_pb2_grpc.UserServiceAsyncStub"
Metadata = tuple[tuple[str, str], ...]


@pytest_asyncio.fixture
async def stub(secured: SecuredService) -> AsyncIterator[Stub]:
    async with secured.channel() as channel:
        yield user_service_pb2_grpc.UserServiceStub(channel)


async def signed_up(stub: Stub, key: str) -> tuple[pb.User, Metadata]:
    """A new user, registered and signed in through ``key``; the metadata carrying its token."""
    email = unique_email("trust")
    user = await stub.RegisterUser(
        pb.RegisterUserRequest(email=email, password=PASSWORD, first_name="Ada", last_name="B"),
        metadata=bearer(key),
        timeout=RPC_TIMEOUT,
    )
    signed_in = await stub.Authenticate(
        pb.AuthenticateRequest(email=email, password=PASSWORD),
        metadata=bearer(key),
        timeout=RPC_TIMEOUT,
    )
    return user, (("x-user-token", signed_in.access_token),)


async def current(stub: Stub, keys: CallerKeys, user: pb.User) -> pb.User:
    return await stub.GetUser(
        pb.GetUserRequest(id=user.id), metadata=bearer(keys.admin), timeout=RPC_TIMEOUT
    )


def rename(user: pb.User) -> pb.UpdateProfileRequest:
    return pb.UpdateProfileRequest(id=user.id, first_name="Mallory", expected_version=user.version)


def change_password(user: pb.User) -> pb.ChangePasswordRequest:
    return pb.ChangePasswordRequest(
        user_id=user.id, current_password=PASSWORD, new_password=NEW_PASSWORD
    )


async def test_a_roleless_caller_cannot_read_by_email_rename_or_change_another_s_password(
    stub: Stub, keys: CallerKeys
) -> None:
    victim, _ = await signed_up(stub, keys.plain)
    roleless = bearer(keys.plain)

    by_email = await rpc_error(
        stub.GetUserByEmail(
            pb.GetUserByEmailRequest(email=victim.email), metadata=roleless, timeout=RPC_TIMEOUT
        )
    )
    renamed = await rpc_error(
        stub.UpdateProfile(rename(victim), metadata=roleless, timeout=RPC_TIMEOUT)
    )
    changed = await rpc_error(
        stub.ChangePassword(change_password(victim), metadata=roleless, timeout=RPC_TIMEOUT)
    )

    for error in (by_email, renamed, changed):
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error
    assert "x-user-token of the user its id names" in (renamed.details() or "")
    assert await current(stub, keys, victim) == victim
    # The password did not change: the old one still signs in.
    await stub.Authenticate(
        pb.AuthenticateRequest(email=victim.email, password=PASSWORD),
        metadata=roleless,
        timeout=RPC_TIMEOUT,
    )


async def test_a_user_token_acts_on_its_own_user(stub: Stub, keys: CallerKeys) -> None:
    user, token = await signed_up(stub, keys.plain)
    as_user = bearer(keys.plain) + token

    read = await stub.GetUser(pb.GetUserRequest(id=user.id), metadata=as_user, timeout=RPC_TIMEOUT)
    renamed = await stub.UpdateProfile(rename(user), metadata=as_user, timeout=RPC_TIMEOUT)
    events = await stub.ListUserEvents(
        pb.ListUserEventsRequest(user_id=user.id), metadata=as_user, timeout=RPC_TIMEOUT
    )
    # Keeping no session, the change ends every one, the token's own included.
    await stub.ChangePassword(change_password(user), metadata=as_user, timeout=RPC_TIMEOUT)

    assert read == user
    assert renamed.first_name == "Mallory"
    assert events.events and {event.user_id for event in events.events} == {user.id}
    await stub.Authenticate(
        pb.AuthenticateRequest(email=user.email, password=NEW_PASSWORD),
        metadata=bearer(keys.plain),
        timeout=RPC_TIMEOUT,
    )


@pytest.mark.parametrize("ending", ["Logout", "LogoutAll", "DisableUser"])
async def test_a_user_token_is_refused_once_its_session_has_ended(
    stub: Stub, keys: CallerKeys, ending: str
) -> None:
    email = unique_email("ended")
    user = await stub.RegisterUser(
        pb.RegisterUserRequest(email=email, password=PASSWORD, first_name="Ada", last_name="B"),
        metadata=bearer(keys.plain),
        timeout=RPC_TIMEOUT,
    )
    signed_in = await stub.Authenticate(
        pb.AuthenticateRequest(email=email, password=PASSWORD),
        metadata=bearer(keys.plain),
        timeout=RPC_TIMEOUT,
    )
    as_user = (*bearer(keys.plain), ("x-user-token", signed_in.access_token))
    assert await stub.GetUser(pb.GetUserRequest(id=user.id), metadata=as_user, timeout=RPC_TIMEOUT)

    admin = bearer(keys.admin)
    if ending == "Logout":
        request: Any = pb.LogoutRequest(refresh_token=signed_in.refresh_token)
        await stub.Logout(request, metadata=bearer(keys.plain), timeout=RPC_TIMEOUT)
    elif ending == "LogoutAll":
        await stub.LogoutAll(
            pb.LogoutAllRequest(user_id=user.id), metadata=admin, timeout=RPC_TIMEOUT
        )
    else:
        await stub.DisableUser(
            pb.DisableUserRequest(id=user.id), metadata=admin, timeout=RPC_TIMEOUT
        )

    # The token has not expired, and its signature is good: the session it names has ended.
    refusals = [
        await rpc_error(
            stub.GetUser(pb.GetUserRequest(id=user.id), metadata=as_user, timeout=RPC_TIMEOUT)
        ),
        await rpc_error(stub.UpdateProfile(rename(user), metadata=as_user, timeout=RPC_TIMEOUT)),
        await rpc_error(
            stub.ListUserEvents(
                pb.ListUserEventsRequest(user_id=user.id), metadata=as_user, timeout=RPC_TIMEOUT
            )
        ),
    ]
    assert {error.code() for error in refusals} == {grpc.StatusCode.UNAUTHENTICATED}
    assert all("session has ended" in (error.details() or "") for error in refusals)
    assert (await current(stub, keys, user)).first_name == "Ada"


async def test_a_user_token_cannot_delete_even_its_own_user(stub: Stub, keys: CallerKeys) -> None:
    # A token outlives Logout, ChangePassword and DisableUser by up to its lifetime (it is
    # checked statelessly), so a stolen one must open nothing that cannot be undone.
    user, token = await signed_up(stub, keys.plain)

    refused = await rpc_error(
        stub.DeleteUser(
            pb.DeleteUserRequest(id=user.id, expected_version=user.version),
            metadata=bearer(keys.plain) + token,
            timeout=RPC_TIMEOUT,
        )
    )

    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "users:admin" in (refused.details() or "")
    assert await current(stub, keys, user) == user


async def test_a_user_token_is_refused_on_another_user_and_changes_nothing(
    stub: Stub, keys: CallerKeys
) -> None:
    victim, _ = await signed_up(stub, keys.plain)
    _, attacker_token = await signed_up(stub, keys.plain)
    as_attacker = bearer(keys.plain) + attacker_token

    refusals = [
        await rpc_error(
            stub.GetUser(pb.GetUserRequest(id=victim.id), metadata=as_attacker, timeout=RPC_TIMEOUT)
        ),
        await rpc_error(
            stub.UpdateProfile(rename(victim), metadata=as_attacker, timeout=RPC_TIMEOUT)
        ),
        await rpc_error(
            stub.ChangePassword(change_password(victim), metadata=as_attacker, timeout=RPC_TIMEOUT)
        ),
        await rpc_error(
            stub.LogoutAll(
                pb.LogoutAllRequest(user_id=victim.id), metadata=as_attacker, timeout=RPC_TIMEOUT
            )
        ),
        await rpc_error(
            stub.DeleteUser(
                pb.DeleteUserRequest(id=victim.id, expected_version=victim.version),
                metadata=as_attacker,
            )
        ),
        await rpc_error(
            stub.ListUsers(pb.ListUsersRequest(), metadata=as_attacker, timeout=RPC_TIMEOUT)
        ),
    ]

    assert [error.code() for error in refusals] == [grpc.StatusCode.PERMISSION_DENIED] * 6
    assert "may act only on itself" in (refusals[1].details() or "")
    assert await current(stub, keys, victim) == victim


async def test_users_write_may_update_anyone_and_a_user_token_does_not_narrow_it(
    stub: Stub, keys: CallerKeys
) -> None:
    user, _ = await signed_up(stub, keys.plain)
    _, other_token = await signed_up(stub, keys.plain)

    renamed = await stub.UpdateProfile(
        rename(user), metadata=bearer(keys.writer), timeout=RPC_TIMEOUT
    )
    again = await stub.UpdateProfile(
        pb.UpdateProfileRequest(id=user.id, last_name="C", expected_version=renamed.version),
        metadata=bearer(keys.writer) + other_token,
        timeout=RPC_TIMEOUT,
    )
    # users:write is no users:read: writing is not reading by email.
    by_email = await rpc_error(
        stub.GetUserByEmail(
            pb.GetUserByEmailRequest(email=user.email),
            metadata=bearer(keys.writer),
            timeout=RPC_TIMEOUT,
        )
    )

    assert (renamed.first_name, again.last_name) == ("Mallory", "C")
    assert by_email.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_forged_user_token_is_unauthenticated_even_for_an_admin(
    stub: Stub, keys: CallerKeys
) -> None:
    user, token = await signed_up(stub, keys.plain)
    header, payload, signature = token[0][1].split(".")
    forged = (("x-user-token", f"{header}.{payload}.{signature[::-1]}"),)

    error = await rpc_error(
        stub.GetUser(
            pb.GetUserRequest(id=user.id), metadata=bearer(keys.admin) + forged, timeout=RPC_TIMEOUT
        )
    )

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error.details() == "the x-user-token is not a valid access token of this service"


async def test_in_development_everyone_is_admin_but_a_user_token_is_still_verified(
    service: Service,
) -> None:
    user = await service.stub.RegisterUser(
        pb.RegisterUserRequest(
            email=unique_email("dev"), password=PASSWORD, first_name="A", last_name="B"
        ),
        timeout=RPC_TIMEOUT,
    )
    listed = await service.stub.ListUsers(pb.ListUsersRequest(), timeout=RPC_TIMEOUT)
    error = await rpc_error(
        service.stub.GetUser(
            pb.GetUserRequest(id=user.id),
            metadata=(("x-user-token", "not.a.token"),),
            timeout=RPC_TIMEOUT,
        )
    )

    assert [listed_user.id for listed_user in listed.users] == [user.id]
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_serve_refuses_an_api_key_with_an_unknown_role_at_start() -> None:
    entry = '[{"name": "billing", "sha256": "' + "ab" * 32 + '", "roles": ["superuser"]}]'
    code, _, stderr = await run_cli(
        "serve", environment=cli_environment(USER_SERVICE_API_KEYS=entry)
    )

    assert code == 2
    assert stderr.strip().splitlines() == [
        "user-service: invalid setting USER_SERVICE_API_KEYS: unknown role 'superuser'; the "
        "roles are admin, users:read, users:write, users:admin, sessions:admin, events:read"
    ]


async def test_user_tokens_never_appear_in_the_log(
    stub: Stub, keys: CallerKeys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    victim, _ = await signed_up(stub, keys.plain)
    _, token = await signed_up(stub, keys.plain)
    raw = token[0][1]
    forged = (("x-user-token", raw[:-4] + "AAAA"),)
    as_user = bearer(keys.plain) + token

    await rpc_error(
        stub.GetUser(pb.GetUserRequest(id=victim.id), metadata=as_user, timeout=RPC_TIMEOUT)
    )
    await rpc_error(
        stub.GetUser(
            pb.GetUserRequest(id=victim.id),
            metadata=bearer(keys.plain) + forged,
            timeout=RPC_TIMEOUT,
        )
    )

    messages = [record.getMessage() for record in caplog.records]
    # The refusals were logged (so the check below looked at the right records)...
    assert sum("denied" in message and "GetUser" in message for message in messages) == 2
    # ...without the token, nor its signature, which alone is what makes it worth stealing.
    signature = raw.rpartition(".")[2]
    assert signature[:16] not in caplog.text
    assert raw.partition(".")[2][:32] not in caplog.text
