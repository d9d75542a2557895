"""Sessions by device through the whole service over real TLS channels with API keys: sign in from
two devices with their client details, list them (as the user, as a sessions:admin caller), end
one (its refresh and access tokens stop working, the other's keep working), and the reason the
event records; refused callers and bad input change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeAlias
from uuid import uuid4

import grpc
import pytest
import pytest_asyncio
from biome.user.v1 import user_service_pb2 as pb
from biome.user.v1 import user_service_pb2_grpc

from server.crypto.api_keys import api_key_sha256, new_api_key
from server.settings import ApiKey
from tests.e2e.auth_helpers import PASSWORD, unique_email
from tests.e2e.harness import field_violations, rpc_error, service_settings
from tests.e2e.secured_service import RPC_TIMEOUT, SecuredService, bearer, secured_service
from tests.tls_material import TlsMaterial

Stub: TypeAlias = "user_service_pb2_grpc.UserServiceAsyncStub"
Metadata = tuple[tuple[str, str], ...]

FRONTEND, SUPPORT, DIRECTORY, AUDIT = new_api_key(), new_api_key(), new_api_key(), new_api_key()
KEYS = [
    ApiKey(name="web-frontend", sha256=api_key_sha256(FRONTEND), roles=()),
    ApiKey(name="support", sha256=api_key_sha256(SUPPORT), roles=("sessions:admin",)),
    ApiKey(name="directory", sha256=api_key_sha256(DIRECTORY), roles=("users:read",)),
    ApiKey(name="audit", sha256=api_key_sha256(AUDIT), roles=("events:read",)),
]
LAPTOP = pb.ClientDetails(
    user_agent="Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    ip_address="192.0.2.10",
    device_label="Work laptop",
)
PHONE = pb.ClientDetails(
    user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X)",
    ip_address="2001:DB8:0000::0042",
    device_label="  Phone ",
)


@pytest_asyncio.fixture
async def stub(moto_endpoint: str, tls: TlsMaterial) -> AsyncIterator[Stub]:
    settings = service_settings(
        moto_endpoint, tls_cert_file=tls.server_cert, tls_key_file=tls.server_key, api_keys=KEYS
    )
    running: SecuredService
    async with secured_service(settings, tls) as running, running.channel() as channel:
        yield user_service_pb2_grpc.UserServiceStub(channel)


def calls(key: str, signed_in: pb.AuthenticateResponse | None = None) -> dict[str, Any]:
    """Keyword arguments of a call through ``key``, carrying ``signed_in``'s access token."""
    metadata: Metadata = bearer(key)
    if signed_in is not None:
        metadata += (("x-user-token", signed_in.access_token),)
    return {"metadata": metadata, "timeout": RPC_TIMEOUT}


async def sign_up(stub: Stub) -> tuple[str, str]:
    email = unique_email("devices")
    user = await stub.RegisterUser(
        pb.RegisterUserRequest(email=email, password=PASSWORD, first_name="Ada", last_name="B"),
        **calls(FRONTEND),
    )
    return user.id, email


async def sign_in(
    stub: Stub, email: str, client: pb.ClientDetails | None = None
) -> pb.AuthenticateResponse:
    request = pb.AuthenticateRequest(email=email, password=PASSWORD, client=client)
    return await stub.Authenticate(request, **calls(FRONTEND))


async def sessions_of(stub: Stub, user_id: str, **call: Any) -> list[pb.SessionInfo]:
    reply = await stub.ListSessions(pb.ListSessionsRequest(user_id=user_id), **call)
    return list(reply.sessions)


async def refreshes(stub: Stub, signed_in: pb.AuthenticateResponse) -> grpc.StatusCode:
    request = pb.RefreshSessionRequest(refresh_token=signed_in.refresh_token)
    try:
        await stub.RefreshSession(request, **calls(FRONTEND))
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def last_revoked(stub: Stub, user_id: str) -> pb.UserEvent.SessionRevoked:
    page = await stub.ListUserEvents(
        pb.ListUserEventsRequest(user_id=user_id, page_size=100), **calls(AUDIT)
    )
    revoked = [e.session_revoked for e in page.events if e.HasField("session_revoked")]
    return revoked[-1]


async def test_sessions_are_listed_by_device_and_one_ended_by_the_user(stub: Stub) -> None:
    user_id, email = await sign_up(stub)
    laptop = await sign_in(stub, email, LAPTOP)
    phone = await sign_in(stub, email, PHONE)

    as_user = await sessions_of(stub, user_id, **calls(FRONTEND, laptop))
    as_support = await sessions_of(stub, user_id, **calls(SUPPORT))

    assert as_user == as_support
    assert [s.session_id for s in as_user] == [phone.session_id, laptop.session_id]
    assert as_user[0].client == pb.ClientDetails(
        user_agent=PHONE.user_agent, ip_address="2001:db8::42", device_label="Phone"
    )
    assert as_user[1].client == LAPTOP
    newest = as_user[0]
    assert newest.created_at.ToDatetime() <= newest.last_used_at.ToDatetime()
    assert newest.expires_at.ToDatetime() > newest.last_used_at.ToDatetime()
    listed = b"".join(s.SerializeToString() for s in as_user)
    for signed_in in (laptop, phone):  # never a token
        assert signed_in.refresh_token.rpartition(".")[2].encode() not in listed

    await stub.EndSession(
        pb.EndSessionRequest(user_id=user_id, session_id=phone.session_id),
        **calls(FRONTEND, laptop),
    )

    revoked = await last_revoked(stub, user_id)
    assert revoked.session_id == phone.session_id
    assert revoked.reason == pb.SESSION_END_REASON_REVOKED_BY_USER
    assert await refreshes(stub, phone) == grpc.StatusCode.UNAUTHENTICATED
    assert await refreshes(stub, laptop) == grpc.StatusCode.OK
    remaining = await sessions_of(stub, user_id, **calls(SUPPORT))
    assert [s.session_id for s in remaining] == [laptop.session_id]
    # The ended session's access token no longer speaks for the user (its session is checked).
    refused = await rpc_error(
        stub.ListSessions(pb.ListSessionsRequest(user_id=user_id), **calls(FRONTEND, phone))
    )
    assert refused.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "session has ended" in (refused.details() or "")


async def test_a_sessions_admin_ends_a_session_for_the_user(stub: Stub) -> None:
    user_id, email = await sign_up(stub)
    laptop, phone = await sign_in(stub, email, LAPTOP), await sign_in(stub, email)

    await stub.EndSession(
        pb.EndSessionRequest(user_id=user_id, session_id=laptop.session_id), **calls(SUPPORT)
    )

    revoked = await last_revoked(stub, user_id)
    assert (revoked.session_id, revoked.reason) == (
        laptop.session_id,
        pb.SESSION_END_REASON_REVOKED_BY_ADMIN,
    )
    assert await refreshes(stub, laptop) == grpc.StatusCode.UNAUTHENTICATED
    assert await refreshes(stub, phone) == grpc.StatusCode.OK


async def test_callers_without_the_user_s_token_or_the_role_are_refused(stub: Stub) -> None:
    user_id, email = await sign_up(stub)
    _, other_email = await sign_up(stub)
    mine, theirs = await sign_in(stub, email, LAPTOP), await sign_in(stub, other_email)
    end_mine = pb.EndSessionRequest(user_id=user_id, session_id=mine.session_id)

    for call in (calls(FRONTEND), calls(DIRECTORY), calls(FRONTEND, theirs)):
        listing = await rpc_error(
            stub.ListSessions(pb.ListSessionsRequest(user_id=user_id), **call)
        )
        ending = await rpc_error(stub.EndSession(end_mine, **call))
        assert listing.code() is ending.code() is grpc.StatusCode.PERMISSION_DENIED

    assert [s.session_id for s in await sessions_of(stub, user_id, **calls(SUPPORT))] == [
        mine.session_id
    ]


async def test_a_session_that_is_not_a_live_one_of_the_user_is_not_found(stub: Stub) -> None:
    user_id, email = await sign_up(stub)
    other_id, other_email = await sign_up(stub)
    mine, theirs = await sign_in(stub, email), await sign_in(stub, other_email)
    ended = await sign_in(stub, email)
    await stub.EndSession(
        pb.EndSessionRequest(user_id=user_id, session_id=ended.session_id), **calls(SUPPORT)
    )
    before = await last_revoked(stub, user_id)

    for session_id in (theirs.session_id, ended.session_id, str(uuid4())):
        request = pb.EndSessionRequest(user_id=user_id, session_id=session_id)
        for call in (calls(SUPPORT), calls(FRONTEND, mine)):
            error = await rpc_error(stub.EndSession(request, **call))
            assert error.code() is grpc.StatusCode.NOT_FOUND
    missing = await rpc_error(
        stub.EndSession(
            pb.EndSessionRequest(user_id=str(uuid4()), session_id=mine.session_id),
            **calls(SUPPORT),
        )
    )
    assert missing.code() is grpc.StatusCode.NOT_FOUND

    assert await last_revoked(stub, user_id) == before
    assert await refreshes(stub, theirs) == grpc.StatusCode.OK
    assert len(await sessions_of(stub, other_id, **calls(SUPPORT))) == 1


@pytest.mark.parametrize(
    ("client", "field"),
    [
        (pb.ClientDetails(user_agent="x" * 513), "client.user_agent"),
        (pb.ClientDetails(user_agent="curl/8\r\nX-Evil: 1"), "client.user_agent"),
        (pb.ClientDetails(ip_address="999.0.0.1"), "client.ip_address"),
        (pb.ClientDetails(ip_address="fe80::1%eth0"), "client.ip_address"),
        (pb.ClientDetails(device_label="x" * 65), "client.device_label"),
        (pb.ClientDetails(device_label="\u202eenohp"), "client.device_label"),
    ],
)
async def test_bad_client_details_are_invalid_arguments_and_open_no_session(
    stub: Stub, client: pb.ClientDetails, field: str
) -> None:
    user_id, email = await sign_up(stub)

    error = await rpc_error(sign_in(stub, email, client))

    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {field}
    assert await sessions_of(stub, user_id, **calls(SUPPORT)) == []


async def test_malformed_ids_are_invalid_arguments(stub: Stub) -> None:
    error = await rpc_error(
        stub.EndSession(pb.EndSessionRequest(user_id="nope", session_id="1"), **calls(SUPPORT))
    )
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"user_id", "session_id"}
    error = await rpc_error(stub.ListSessions(pb.ListSessionsRequest(user_id=""), **calls(SUPPORT)))
    assert set(field_violations(error)) == {"user_id"}
