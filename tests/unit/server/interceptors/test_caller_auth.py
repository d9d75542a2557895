"""Only identified callers reach non-public services, only admins the admin methods, and nobody
a method that server.rpc_access does not classify."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import grpc
import pytest
import pytest_asyncio
from biome.user.v1 import user_service_pb2, user_service_pb2_grpc
from google.rpc import code_pb2, error_details_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from domain.errors import StorageUnavailable
from server.crypto.access_token_verifier import AccessTokenVerifier, TokenUser
from server.crypto.access_tokens import JwtAccessTokenIssuer, generate_signing_keys
from server.crypto.api_keys import api_key_sha256, new_api_key
from server.crypto.tls import server_credentials
from server.interceptors.caller_auth import Caller, CallerAuthInterceptor, on_own_user_token
from server.interceptors.errors import DomainErrorInterceptor
from server.refusals import CallerNotPermitted, SignInNotRecent
from server.rpc_access import (
    ADMIN_ROLE,
    ANY_CALLER,
    RULE_BY_RPC,
    Rule,
    method_path,
    rule_of,
    service_of,
)
from server.settings import ApiKey
from server.status import rpc_status_for
from tests.tls_material import TlsMaterial, channel_credentials, make_tls_material

TIMEOUT = 5.0
USER_SERVICE = user_service_pb2.DESCRIPTOR.services_by_name["UserService"].full_name
STREAMS = "test.Streams"
PUBLIC = (health.SERVICE_NAME, reflection.SERVICE_NAME)
OK = grpc.StatusCode.OK
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED

SERVICE_KEY = new_api_key()
ADMIN_KEY = new_api_key()
READER_KEY = new_api_key()
API_KEYS = (
    ApiKey(name="billing", sha256=api_key_sha256(SERVICE_KEY)),
    ApiKey(name="ops", sha256=api_key_sha256(ADMIN_KEY), roles=(ADMIN_ROLE,)),
    ApiKey(name="directory", sha256=api_key_sha256(READER_KEY), roles=("users:read",)),
)
SIGNING_KEYS = generate_signing_keys()
TOKEN_ISSUER = JwtAccessTokenIssuer(
    SIGNING_KEYS, issuer="urn:test", audience="urn:test:services", lifetime_seconds=900
)
VERIFIER = AccessTokenVerifier(
    SIGNING_KEYS, issuer="urn:test", audience="urn:test:services", clock=lambda: datetime.now(UTC)
)
ADA = str(uuid.uuid4())
GRACE = str(uuid.uuid4())


def user_token(user_id: str, *, at: datetime | None = None) -> tuple[tuple[str, str]]:
    """Metadata carrying ``user_id``'s access token, issued ``at`` (by default now)."""
    token = TOKEN_ISSUER.issue(user_id=user_id, session_id="s-1", now=at or datetime.now(UTC))
    return (("x-user-token", token.value),)


class Start(Protocol):
    async def __call__(
        self,
        *,
        api_keys: Sequence[ApiKey] = API_KEYS,
        client_cert_roles: Mapping[str, Sequence[str]] | None = None,
        client_certs_required: bool = False,
        public_services: Sequence[str] = PUBLIC,
        credentials: grpc.ServerCredentials | None = None,
        access: Callable[[str], Rule | None] | None = None,
        session_in_force: Callable[[TokenUser], Awaitable[bool]] | None = None,
    ) -> str: ...


async def get_user(
    request: user_service_pb2.GetUserRequest, context: grpc.aio.ServicerContext[Any, Any]
) -> user_service_pb2.User:
    # first_name tells the test what the handler learnt of how the call was let through.
    own = "own user token" if on_own_user_token.get() else "not on its own token"
    return user_service_pb2.User(id=request.id, email="ada@example.com", first_name=own)


async def get_jwks(
    request: user_service_pb2.GetJwksRequest, context: grpc.aio.ServicerContext[Any, Any]
) -> user_service_pb2.GetJwksResponse:
    return user_service_pb2.GetJwksResponse()


async def list_users(
    request: user_service_pb2.ListUsersRequest, context: grpc.aio.ServicerContext[Any, Any]
) -> user_service_pb2.ListUsersResponse:
    return user_service_pb2.ListUsersResponse(users=[user_service_pb2.User(id="u-1")])


async def server_stream(
    request: bytes, context: grpc.aio.ServicerContext[Any, Any]
) -> AsyncIterator[bytes]:
    yield request
    yield request


async def client_stream(
    requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
) -> bytes:
    return b"".join([request async for request in requests])


async def bidi_stream(
    requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
) -> None:
    async for request in requests:
        await context.write(request)


def user_service_handler() -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        USER_SERVICE,
        {
            "GetUser": grpc.unary_unary_rpc_method_handler(
                get_user,
                request_deserializer=user_service_pb2.GetUserRequest.FromString,
                response_serializer=user_service_pb2.User.SerializeToString,
            ),
            "GetJwks": grpc.unary_unary_rpc_method_handler(
                get_jwks,
                request_deserializer=user_service_pb2.GetJwksRequest.FromString,
                response_serializer=user_service_pb2.GetJwksResponse.SerializeToString,
            ),
            "ListUsers": grpc.unary_unary_rpc_method_handler(
                list_users,
                request_deserializer=user_service_pb2.ListUsersRequest.FromString,
                response_serializer=user_service_pb2.ListUsersResponse.SerializeToString,
            ),
        },
    )


def streams_handler() -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        STREAMS,
        {
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
            "BidiStream": grpc.stream_stream_rpc_method_handler(bidi_stream),
        },
    )


def with_test_streams(method: str) -> Rule | None:
    """The service's classification, and the test streams open to any identified caller."""
    return ANY_CALLER if service_of(method) == STREAMS else rule_of(method)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls_material(tmp_path_factory.mktemp("tls"))


@pytest_asyncio.fixture
async def start() -> AsyncIterator[Start]:
    """Starts test servers behind [CallerAuthInterceptor, DomainErrorInterceptor]; their target."""
    servers: list[grpc.aio.Server] = []

    async def start(
        *,
        api_keys: Sequence[ApiKey] = API_KEYS,
        client_cert_roles: Mapping[str, Sequence[str]] | None = None,
        client_certs_required: bool = False,
        public_services: Sequence[str] = PUBLIC,
        credentials: grpc.ServerCredentials | None = None,
        access: Callable[[str], Rule | None] | None = None,
        session_in_force: Callable[[TokenUser], Awaitable[bool]] | None = None,
    ) -> str:
        interceptor = CallerAuthInterceptor(
            api_keys=api_keys,
            client_cert_roles=client_cert_roles or {},
            client_certs_required=client_certs_required,
            public_services=public_services,
            user_tokens=VERIFIER,
            session_in_force=session_in_force,
            access=access or with_test_streams,
        )
        server = grpc.aio.server(interceptors=[interceptor, DomainErrorInterceptor()])
        server.add_generic_rpc_handlers([user_service_handler(), streams_handler()])
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        reflection.enable_server_reflection([USER_SERVICE, *PUBLIC], server)
        if credentials is None:
            port = server.add_insecure_port("127.0.0.1:0")
        else:
            port = server.add_secure_port("127.0.0.1:0", credentials)
        await server.start()
        servers.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for server in servers:
        await server.stop(None)


def channel(target: str, credentials: grpc.ChannelCredentials | None = None) -> grpc.aio.Channel:
    if credentials is None:
        return grpc.aio.insecure_channel(target)
    return grpc.aio.secure_channel(target, credentials)


def bearer(key: str, scheme: str = "Bearer") -> tuple[tuple[str, str], ...]:
    return (("authorization", f"{scheme} {key}"),)


async def outcome(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str]:
    """The status code and details a call ends with."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return OK, ""


async def jwks_code(
    target: str,
    metadata: Sequence[tuple[str, str]] = (),
    credentials: grpc.ChannelCredentials | None = None,
) -> grpc.StatusCode:
    """The status of GetJwks, which any identified caller may call."""
    async with channel(target, credentials) as ch:
        stub = user_service_pb2_grpc.UserServiceStub(ch)
        request = user_service_pb2.GetJwksRequest()
        code, _ = await outcome(stub.GetJwks(request, metadata=metadata, timeout=TIMEOUT))
        return code


async def get_user_outcome(
    target: str, user_id: str, metadata: Sequence[tuple[str, str]] = ()
) -> tuple[grpc.StatusCode, str]:
    async with channel(target) as ch:
        stub = user_service_pb2_grpc.UserServiceStub(ch)
        request = user_service_pb2.GetUserRequest(id=user_id)
        return await outcome(stub.GetUser(request, metadata=metadata, timeout=TIMEOUT))


async def list_users_outcome(
    target: str,
    metadata: Sequence[tuple[str, str]] = (),
    credentials: grpc.ChannelCredentials | None = None,
) -> tuple[grpc.StatusCode, str]:
    async with channel(target, credentials) as ch:
        stub = user_service_pb2_grpc.UserServiceStub(ch)
        request = user_service_pb2.ListUsersRequest()
        return await outcome(stub.ListUsers(request, metadata=metadata, timeout=TIMEOUT))


async def health_check_code(
    target: str, metadata: Sequence[tuple[str, str]] = ()
) -> grpc.StatusCode:
    async with channel(target) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        request = health_pb2.HealthCheckRequest()
        code, _ = await outcome(stub.Check(request, metadata=metadata, timeout=TIMEOUT))  # type: ignore[attr-defined]  # the stub's HealthStub declares no RPCs
        return code


async def test_a_call_without_an_api_key_is_unauthenticated(start: Start) -> None:
    target = await start()
    assert await jwks_code(target) == UNAUTHENTICATED


async def test_a_call_with_an_unknown_api_key_is_unauthenticated_with_a_generic_message(
    start: Start,
) -> None:
    target = await start()
    code, details = await list_users_outcome(target, bearer(new_api_key()))
    assert (code, details) == (
        UNAUTHENTICATED,
        "the caller presented no valid API key or client certificate",
    )


@pytest.mark.parametrize(
    "authorization",
    [f"Basic {SERVICE_KEY}", SERVICE_KEY, "Bearer", "Bearer   ", f"Bearer {SERVICE_KEY} x"],
)
async def test_a_malformed_authorization_header_is_unauthenticated(
    start: Start, authorization: str
) -> None:
    target = await start()
    assert await jwks_code(target, (("authorization", authorization),)) == UNAUTHENTICATED


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_the_bearer_scheme_is_case_insensitive(start: Start, scheme: str) -> None:
    target = await start()
    assert await jwks_code(target, bearer(SERVICE_KEY, scheme)) == OK


async def test_a_roleless_key_may_get_the_jwks_but_not_list_users(start: Start) -> None:
    target = await start()
    assert await jwks_code(target, bearer(SERVICE_KEY)) == OK
    assert await list_users_outcome(target, bearer(SERVICE_KEY)) == (
        PERMISSION_DENIED,
        "this method needs the role admin or users:read",
    )


async def test_an_admin_key_may_call_admin_methods_and_replies_arrive_intact(
    start: Start,
) -> None:
    target = await start()
    async with channel(target) as ch:
        stub = user_service_pb2_grpc.UserServiceStub(ch)
        user = await stub.GetUser(
            user_service_pb2.GetUserRequest(id="u-7"), metadata=bearer(ADMIN_KEY), timeout=TIMEOUT
        )
        page = await stub.ListUsers(
            user_service_pb2.ListUsersRequest(), metadata=bearer(ADMIN_KEY), timeout=TIMEOUT
        )
    assert (user.id, user.email) == ("u-7", "ada@example.com")
    assert [listed.id for listed in page.users] == ["u-1"]


def unclassified(rpc: str) -> Callable[[str], Rule | None]:
    """The service's classification without ``rpc``."""
    return lambda method: None if method == f"/{USER_SERVICE}/{rpc}" else with_test_streams(method)


@pytest.mark.parametrize("api_keys", [API_KEYS, ()], ids=["with keys", "development"])
async def test_a_method_that_is_not_classified_is_refused_even_to_an_admin(
    start: Start, api_keys: Sequence[ApiKey]
) -> None:
    target = await start(api_keys=api_keys, access=unclassified("ListUsers"))
    assert await list_users_outcome(target, bearer(ADMIN_KEY)) == (
        PERMISSION_DENIED,
        "this method is open to no caller",
    )
    assert await jwks_code(target, bearer(ADMIN_KEY)) == OK


async def test_health_check_needs_no_key_when_health_is_public(start: Start) -> None:
    target = await start()
    assert await health_check_code(target) == OK


async def test_health_check_needs_a_key_when_health_is_not_public(start: Start) -> None:
    target = await start(public_services=())
    assert await health_check_code(target) == UNAUTHENTICATED
    assert await health_check_code(target, bearer(SERVICE_KEY)) == OK


async def test_health_watch_streams_only_to_identified_callers_when_not_public(
    start: Start,
) -> None:
    target = await start(public_services=())
    async with channel(target) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        request = health_pb2.HealthCheckRequest()
        refused = stub.Watch(request, timeout=TIMEOUT)  # type: ignore[attr-defined]  # the stub's HealthStub declares no RPCs
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await refused.read()
        admitted = stub.Watch(request, metadata=bearer(SERVICE_KEY), timeout=TIMEOUT)  # type: ignore[attr-defined]  # the stub's HealthStub declares no RPCs
        first = await admitted.read()
        admitted.cancel()
    assert error.value.code() == UNAUTHENTICATED
    assert first.status == health_pb2.HealthCheckResponse.SERVING


# Refused streaming calls send no request: grpc.aio's client reports INTERNAL ("Failed
# execute_batch") instead of the server's status when a write races the server closing the call.


async def test_reflection_needs_a_key_when_not_public(start: Start) -> None:
    target = await start(public_services=())
    async with channel(target) as ch:
        # Any: the stub's ServerReflectionInfo is a broken placeholder ("Incomplete" from binascii).
        stub: Any = reflection_pb2_grpc.ServerReflectionStub(ch)  # type: ignore[arg-type]  # the stub accepts only a sync channel
        refused = stub.ServerReflectionInfo(timeout=TIMEOUT)
        refused_code = await refused.code()
        admitted = stub.ServerReflectionInfo(metadata=bearer(SERVICE_KEY), timeout=TIMEOUT)
        await admitted.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        reply = await admitted.read()
        admitted.cancel()
    assert refused_code == UNAUTHENTICATED
    assert USER_SERVICE in [service.name for service in reply.list_services_response.service]


def streams_call(
    ch: grpc.aio.Channel, kind: str, metadata: Sequence[tuple[str, str]]
) -> grpc.aio.Call:
    """A call to test.Streams/<kind>; the streaming-request kinds have sent nothing yet."""
    method = f"/{STREAMS}/{kind}"
    if kind == "ServerStream":
        # No serializers: the request goes out as these bytes, the replies come back as bytes.
        server_stream: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = ch.unary_stream(method)
        return server_stream(b"a", metadata=metadata, timeout=TIMEOUT)
    if kind == "ClientStream":
        return ch.stream_unary(method)(metadata=metadata, timeout=TIMEOUT)
    return ch.stream_stream(method)(metadata=metadata, timeout=TIMEOUT)


async def call_streams(target: str, kind: str, metadata: Sequence[tuple[str, str]]) -> list[bytes]:
    """Calls test.Streams/<kind>, sending b"a" and b"b" when it streams requests; the replies."""
    async with channel(target) as ch:
        call: Any = streams_call(ch, kind, metadata)
        if kind != "ServerStream":
            for request in (b"a", b"b"):
                await call.write(request)
            await call.done_writing()
        if kind == "ClientStream":
            return [await call]
        return [reply async for reply in call]


STREAMING_REPLIES = {
    "ServerStream": [b"a", b"a"],
    "ClientStream": [b"ab"],
    "BidiStream": [b"a", b"b"],
}


@pytest.mark.parametrize("kind", sorted(STREAMING_REPLIES))
async def test_streaming_methods_of_every_kind_refuse_callers_without_a_key(
    start: Start, kind: str
) -> None:
    target = await start()
    async with channel(target) as ch:
        assert await streams_call(ch, kind, ()).code() == UNAUTHENTICATED


@pytest.mark.parametrize("kind", sorted(STREAMING_REPLIES))
async def test_streaming_methods_of_every_kind_work_with_a_key(start: Start, kind: str) -> None:
    target = await start()
    assert await call_streams(target, kind, bearer(SERVICE_KEY)) == STREAMING_REPLIES[kind]


async def test_without_keys_or_client_certificates_everyone_may_call_everything(
    start: Start,
) -> None:
    target = await start(api_keys=(), public_services=())
    assert await list_users_outcome(target) == (OK, "")
    assert await list_users_outcome(target, bearer("anything")) == (OK, "")
    assert await health_check_code(target) == OK


async def test_api_keys_work_over_tls(start: Start, tls: TlsMaterial) -> None:
    target = await start(
        credentials=server_credentials(
            cert_file=tls.server_cert, key_file=tls.server_key, client_ca_file=None
        )
    )
    trusting = channel_credentials(ca_file=tls.ca_cert)
    assert await jwks_code(target, credentials=trusting) == UNAUTHENTICATED
    assert await jwks_code(target, bearer(SERVICE_KEY), trusting) == OK
    assert await list_users_outcome(target, bearer(ADMIN_KEY), trusting) == (OK, "")


async def start_mutual_tls(start: Start, tls: TlsMaterial, **options: Any) -> str:
    credentials = server_credentials(
        cert_file=tls.server_cert, key_file=tls.server_key, client_ca_file=tls.ca_cert
    )
    return await start(
        credentials=credentials,
        client_certs_required=True,
        client_cert_roles={"ops-console": [ADMIN_ROLE]},
        **options,
    )


def client_credentials(tls: TlsMaterial, common_name: str) -> grpc.ChannelCredentials:
    cert, key = tls.client_cert(common_name)
    return channel_credentials(ca_file=tls.ca_cert, cert_file=cert, key_file=key)


async def test_a_client_certificate_whose_name_has_the_admin_role_may_list_users(
    start: Start, tls: TlsMaterial
) -> None:
    target = await start_mutual_tls(start, tls, api_keys=())
    admin = client_credentials(tls, "ops-console")
    assert await list_users_outcome(target, credentials=admin) == (OK, "")


async def test_a_client_certificate_without_roles_may_get_the_jwks_but_not_list_users(
    start: Start, tls: TlsMaterial
) -> None:
    target = await start_mutual_tls(start, tls, api_keys=())
    plain = client_credentials(tls, "billing-service")
    assert await jwks_code(target, credentials=plain) == OK
    code, _ = await list_users_outcome(target, credentials=plain)
    assert code == PERMISSION_DENIED


async def test_a_wrong_api_key_is_refused_even_with_a_valid_client_certificate(
    start: Start, tls: TlsMaterial
) -> None:
    target = await start_mutual_tls(start, tls)
    admin = client_credentials(tls, "ops-console")
    assert await jwks_code(target, bearer(new_api_key()), admin) == UNAUTHENTICATED


async def test_an_api_key_names_the_caller_even_over_a_client_certificate(
    start: Start, tls: TlsMaterial
) -> None:
    target = await start_mutual_tls(start, tls)
    admin = client_credentials(tls, "ops-console")
    code, _ = await list_users_outcome(target, bearer(SERVICE_KEY), admin)
    assert code == PERMISSION_DENIED


def test_a_certificate_name_is_ignored_unless_client_certificates_are_required() -> None:
    interceptor = CallerAuthInterceptor(
        api_keys=API_KEYS,
        client_cert_roles={"ops-console": [ADMIN_ROLE]},
        client_certs_required=False,
        public_services=(),
    )
    auth_context = {"transport_security_type": [b"ssl"], "x509_common_name": [b"ops-console"]}
    with pytest.raises(Exception, match="no valid API key or client certificate"):
        interceptor.identify([], auth_context)


def test_only_users_admin_or_admin_may_register_a_user_with_a_verified_address() -> None:
    interceptor = CallerAuthInterceptor(
        api_keys=API_KEYS, client_cert_roles={}, client_certs_required=False, public_services=()
    )
    method = method_path("RegisterUser")
    vouching = user_service_pb2.RegisterUserRequest(email="a@example.com", email_verified=True)
    plain = user_service_pb2.RegisterUserRequest(email="a@example.com")
    for roles in (set(), {"users:write", "users:read", "sessions:admin"}):
        caller = Caller("web", frozenset(roles))
        with pytest.raises(CallerNotPermitted, match="setting email_verified needs the role"):
            interceptor.authorize(caller, None, method, vouching)
        interceptor.authorize(caller, None, method, plain)
    for roles in ({"users:admin"}, {ADMIN_ROLE}):
        interceptor.authorize(Caller("support", frozenset(roles)), None, method, vouching)


async def test_denials_are_logged_with_the_caller_name_and_never_the_key(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    target = await start()
    wrong_key = new_api_key()
    await jwks_code(target, bearer(wrong_key))
    await list_users_outcome(target, bearer(SERVICE_KEY))
    await list_users_outcome(target, bearer(ADMIN_KEY))

    messages = [record.getMessage() for record in caplog.records]
    assert any(f"caller billing denied /{USER_SERVICE}/ListUsers" in m for m in messages)
    assert any(m.startswith("unknown caller") and "GetJwks" in m for m in messages)
    for key in (wrong_key, SERVICE_KEY, ADMIN_KEY):
        assert not any(key in message for message in messages)
        assert key not in caplog.text


# --- the end user's access token (x-user-token) ---------------------------------------------------


async def test_a_roleless_caller_may_get_no_user_without_a_user_token(start: Start) -> None:
    target = await start()
    assert await get_user_outcome(target, ADA, bearer(SERVICE_KEY)) == (
        PERMISSION_DENIED,
        "this method needs the role admin or users:read, or the x-user-token of the user "
        "its id names",
    )


async def test_a_user_token_lets_a_roleless_caller_get_that_user_only(start: Start) -> None:
    target = await start()
    own = bearer(SERVICE_KEY) + user_token(ADA)
    assert await get_user_outcome(target, ADA, own) == (OK, "")
    assert await get_user_outcome(target, ADA.upper(), own) == (OK, "")  # the same UUID
    assert await get_user_outcome(target, GRACE, own) == (
        PERMISSION_DENIED,
        "the x-user-token's user may act only on itself, and id names another user",
    )
    code, _ = await get_user_outcome(target, "not-a-uuid", own)
    assert code == PERMISSION_DENIED


async def test_a_user_token_does_not_widen_a_roleless_caller(start: Start) -> None:
    target = await start()
    code, _ = await list_users_outcome(target, bearer(SERVICE_KEY) + user_token(ADA))
    assert code == PERMISSION_DENIED


async def test_a_role_that_allows_any_user_is_not_narrowed_by_a_user_token(start: Start) -> None:
    target = await start()
    assert await get_user_outcome(target, GRACE, bearer(READER_KEY)) == (OK, "")
    assert await get_user_outcome(target, GRACE, bearer(READER_KEY) + user_token(ADA)) == (OK, "")


@pytest.mark.parametrize("api_keys", [API_KEYS, ()], ids=["with keys", "development"])
async def test_a_bad_user_token_is_unauthenticated_whatever_the_caller_s_role(
    start: Start, api_keys: Sequence[ApiKey]
) -> None:
    target = await start(api_keys=api_keys)
    expired = user_token(ADA, at=datetime.now(UTC) - timedelta(hours=1))
    forged = (("x-user-token", user_token(ADA)[0][1][:-4] + "AAAA"),)
    assert await get_user_outcome(target, ADA, bearer(ADMIN_KEY) + expired) == (
        UNAUTHENTICATED,
        "the x-user-token has expired; refresh the session for a new access token",
    )
    assert await get_user_outcome(target, ADA, bearer(ADMIN_KEY) + forged) == (
        UNAUTHENTICATED,
        "the x-user-token is not a valid access token of this service",
    )
    assert await jwks_code(target, bearer(ADMIN_KEY) + forged) == UNAUTHENTICATED
    two = bearer(ADMIN_KEY) + user_token(ADA) + user_token(ADA)
    code, _ = await get_user_outcome(target, ADA, two)
    assert code == UNAUTHENTICATED


async def test_a_user_token_never_identifies_the_caller(start: Start) -> None:
    target = await start()
    code, _ = await get_user_outcome(target, ADA, user_token(ADA))
    assert code == UNAUTHENTICATED


async def test_a_user_token_whose_session_has_ended_is_unauthenticated_whatever_the_roles(
    start: Start,
) -> None:
    asked: list[TokenUser] = []

    async def ended(token: TokenUser) -> bool:
        asked.append(token)
        return False

    target = await start(session_in_force=ended)
    for key in (SERVICE_KEY, ADMIN_KEY):
        code, message = await get_user_outcome(target, ADA, bearer(key) + user_token(ADA))
        assert code is grpc.StatusCode.UNAUTHENTICATED
        assert "session has ended" in message
    assert [token.user_id for token in asked] == [ADA, ADA]
    # Without a token nothing is asked of the store.
    assert (await get_user_outcome(target, ADA, bearer(ADMIN_KEY)))[0] is grpc.StatusCode.OK
    assert len(asked) == 2


async def told_the_handler(target: str, user_id: str, metadata: Sequence[tuple[str, str]]) -> str:
    """What GetUser's handler learnt of how the call was let through."""
    async with channel(target) as ch:
        stub = user_service_pb2_grpc.UserServiceStub(ch)
        request = user_service_pb2.GetUserRequest(id=user_id)
        reply = await stub.GetUser(request, metadata=metadata, timeout=TIMEOUT)
        return reply.first_name


@pytest.mark.parametrize("api_keys", [API_KEYS, ()], ids=["with keys", "development"])
async def test_the_handler_learns_whether_the_call_carries_the_named_user_s_own_token(
    start: Start, api_keys: Sequence[ApiKey]
) -> None:
    target = await start(api_keys=api_keys)
    own, role = "own user token", "not on its own token"
    assert await told_the_handler(target, ADA, bearer(SERVICE_KEY) + user_token(ADA)) == own
    # A role that also holds the user's own token: the end user asked all the same.
    assert await told_the_handler(target, ADA, bearer(ADMIN_KEY) + user_token(ADA)) == own
    assert await told_the_handler(target, ADA, bearer(ADMIN_KEY)) == role
    assert await told_the_handler(target, GRACE, bearer(ADMIN_KEY) + user_token(ADA)) == role
    assert await told_the_handler(target, GRACE, bearer(READER_KEY)) == role


def test_authorize_says_whether_a_call_acts_on_the_token_s_own_user() -> None:
    interceptor = CallerAuthInterceptor(
        api_keys=API_KEYS, client_cert_roles={}, client_certs_required=False, public_services=()
    )
    method = f"/{USER_SERVICE}/GetUser"
    roleless, admin = Caller("billing", frozenset()), Caller("ops", frozenset({ADMIN_ROLE}))
    ada = TokenUser(ADA, "s-1")
    request = user_service_pb2.GetUserRequest(id=ADA.upper())
    assert interceptor.authorize(roleless, ada, method, request) is True
    assert interceptor.authorize(admin, ada, method, request) is True
    assert interceptor.authorize(admin, None, method, request) is False
    grace = user_service_pb2.GetUserRequest(id=GRACE)
    assert interceptor.authorize(admin, ada, method, grace) is False
    list_users = user_service_pb2.ListUsersRequest()
    assert interceptor.authorize(admin, ada, f"/{USER_SERVICE}/ListUsers", list_users) is False


async def test_a_store_that_cannot_tell_makes_a_token_call_unavailable(start: Start) -> None:
    async def unreachable(token: TokenUser) -> bool:
        raise StorageUnavailable("DynamoDB GetItem failed (ReadTimeoutError); retry later")

    target = await start(session_in_force=unreachable)
    code, _ = await get_user_outcome(target, ADA, bearer(SERVICE_KEY) + user_token(ADA))

    assert code is grpc.StatusCode.UNAVAILABLE


RECENT_WINDOW = 900
SIGNED_IN = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
RECENT_SIGN_IN_RPCS = (
    "BeginTotpEnrollment",
    "ConfirmTotpEnrollment",
    "BeginPasskeyRegistration",
    "FinishPasskeyRegistration",
    "RemovePasskey",
    "RequestEmailChange",
)


def recent_sign_in_gate(now: datetime) -> CallerAuthInterceptor:
    return CallerAuthInterceptor(
        api_keys=API_KEYS,
        client_cert_roles={},
        client_certs_required=False,
        public_services=(),
        recent_sign_in_seconds=RECENT_WINDOW,
        clock=lambda: now,
    )


def own_request(rpc: str, user_id: str) -> object:
    request_class = getattr(user_service_pb2, f"{rpc}Request")
    field = RULE_BY_RPC[rpc].own_user_field
    assert field is not None
    return request_class(**{field: user_id})


@pytest.mark.parametrize("rpc", RECENT_SIGN_IN_RPCS)
def test_factor_and_address_changes_on_the_own_token_need_a_recent_sign_in(rpc: str) -> None:
    method, request = method_path(rpc), own_request(rpc, ADA)
    roleless = Caller("web", frozenset())
    signed_in = TokenUser(ADA, "s-1", auth_time=int(SIGNED_IN.timestamp()))
    at_the_edge = SIGNED_IN + timedelta(seconds=RECENT_WINDOW)
    assert recent_sign_in_gate(at_the_edge).authorize(roleless, signed_in, method, request)

    too_late = recent_sign_in_gate(at_the_edge + timedelta(seconds=1))
    with pytest.raises(SignInNotRecent):
        too_late.authorize(roleless, signed_in, method, request)
    with pytest.raises(SignInNotRecent):  # a token from before the claim says no sign-in time
        recent_sign_in_gate(SIGNED_IN).authorize(roleless, TokenUser(ADA, "s-1"), method, request)


@pytest.mark.parametrize("rpc", RECENT_SIGN_IN_RPCS)
def test_a_role_that_allows_any_user_needs_no_recent_sign_in(rpc: str) -> None:
    method, request = method_path(rpc), own_request(rpc, ADA)
    long_after = recent_sign_in_gate(SIGNED_IN + timedelta(days=1))
    old_token = TokenUser(ADA, "s-1", auth_time=int(SIGNED_IN.timestamp()))
    roles = RULE_BY_RPC[rpc].roles
    for role in (*roles, ADMIN_ROLE):
        caller = Caller("support", frozenset({role}))
        assert long_after.authorize(caller, old_token, method, request) is True
        assert long_after.authorize(caller, None, method, request) is False


def test_other_self_service_rpcs_take_an_old_sign_in() -> None:
    long_after = recent_sign_in_gate(SIGNED_IN + timedelta(days=1))
    old_token = TokenUser(ADA, "s-1", auth_time=int(SIGNED_IN.timestamp()))
    roleless = Caller("web", frozenset())
    for rpc, request in (
        ("GetUser", user_service_pb2.GetUserRequest(id=ADA)),
        ("ListPasskeys", user_service_pb2.ListPasskeysRequest(user_id=ADA)),
        ("DisableTotp", user_service_pb2.DisableTotpRequest(user_id=ADA)),
    ):
        assert long_after.authorize(roleless, old_token, method_path(rpc), request) is True
        no_time = TokenUser(ADA, "s-1")
        assert long_after.authorize(roleless, no_time, method_path(rpc), request) is True


def test_exactly_the_factor_and_address_changes_want_a_recent_sign_in() -> None:
    wanting = {rpc for rpc, rule in RULE_BY_RPC.items() if rule.recent_sign_in}
    assert wanting == set(RECENT_SIGN_IN_RPCS)


def test_a_sign_in_that_is_not_recent_is_failed_precondition_recent_sign_in_required() -> None:
    status = rpc_status_for(SignInNotRecent(RECENT_WINDOW))
    assert status.code == code_pb2.FAILED_PRECONDITION
    (detail,) = status.details
    info = error_details_pb2.ErrorInfo()
    assert detail.Unpack(info)
    assert (info.reason, info.domain) == ("RECENT_SIGN_IN_REQUIRED", "user.biome")
    assert "sign in again" in status.message
