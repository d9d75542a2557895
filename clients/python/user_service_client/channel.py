"""A channel to user-service: a gRPC service config (deadlines per method, retries of UNAVAILABLE
where repeating a call is safe), keepalive, the caller's API key or client certificate, and typed
errors (user_service_client.errors) from every unary call."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import grpc

from user_service_client._proto import user_service_pb2_grpc
from user_service_client.errors import typed_error

SERVICE = "biome.user.v1.UserService"

# Reads, and writes whose repetition changes nothing (RFC 7009 Logout; LogoutAll, DisableUser,
# EnableUser, ResetSecondFactors end in the same state however often they run): retried on
# UNAVAILABLE. Every other write is not: the server may have done it before its answer was lost
# (e.g. storage answered late), and a repeat would then fail where the first succeeded
# (RegisterUser: ALREADY_EXISTS; UpdateProfile: ABORTED; RefreshSession: the rotated token, reused,
# ends the session) or count a failure (Authenticate).
RETRIED_READS = (
    "GetUser",
    "GetUserByEmail",
    "BatchGetUsers",
    "ListUsers",
    "ListSessions",
    "GetJwks",
    "ListUserEvents",
    "ListPasskeys",
    "BeginPasskeySignIn",
)
RETRIED_WRITES = ("Logout", "LogoutAll", "DisableUser", "EnableUser", "ResetSecondFactors")
# Calls that hash a password or a code (argon2id, on a bounded pool of workers): longer deadlines.
HASHING = (
    "RegisterUser",
    "Authenticate",
    "ChangePassword",
    "ResetPassword",
    "CompleteSignIn",
    "ConfirmTotpEnrollment",
    "DisableTotp",
    "RegenerateRecoveryCodes",
)
# A stream that follows new events until cancelled: no deadline, never retried.
STREAMS = ("WatchEvents",)

READ_TIMEOUT_SECONDS = 5.0
WRITE_TIMEOUT_SECONDS = 10.0
HASHING_TIMEOUT_SECONDS = 20.0
RETRY_POLICY: dict[str, Any] = {
    # gRPC caps attempts at 5; with 0.2 s doubling to at most 2 s the tries span about 3 s.
    "maxAttempts": 4,
    "initialBackoff": "0.2s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
# The server keeps gRPC's default ping policy (no more than one ping per 5 minutes, none
# without a call in flight): pinging more often gets the connection closed (too_many_pings).
KEEPALIVE_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 300_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 0),
)
# BatchGetUsers may answer 100 users; a ListUsers page 100: well under gRPC's 4 MiB default.
AUTHORIZATION_KEY = "authorization"
USER_TOKEN_KEY = "x-user-token"


def service_config(*, wait_for_ready: bool = False) -> dict[str, Any]:
    """The gRPC service config the kit's channels use (a JSON object as a dict): the retry policy.

    It names no timeouts: grpc.aio (1.85) starts a service config's timeout from a stale clock,
    so a 5 s one fired after 3.5 to 3.8 s (measured); the kit sets each call's deadline instead
    (``default_timeout``), which gRPC keeps exactly, retries included."""

    def names(methods: Sequence[str]) -> list[dict[str, str]]:
        return [{"service": SERVICE, "method": method} for method in methods]

    ready = {"waitForReady": True} if wait_for_ready else {}
    return {
        "methodConfig": [
            {
                "name": names((*RETRIED_READS, *RETRIED_WRITES)),
                "retryPolicy": RETRY_POLICY,
                **ready,
            },
            # Every other method of the service: not retried.
            {"name": [{"service": SERVICE}], **ready},
        ]
    }


def default_timeout(method: str) -> float | None:
    """The deadline (seconds) of a call to ``method`` (its name, or its path
    "/biome.user.v1.UserService/GetUser") made without ``timeout=``; None for the event stream."""
    name = method.rsplit("/", 1)[-1]
    if name in STREAMS:
        return None
    if name in RETRIED_READS:
        return READ_TIMEOUT_SECONDS
    if name in HASHING:
        return HASHING_TIMEOUT_SECONDS
    return WRITE_TIMEOUT_SECONDS


def user_token(access_token: str) -> tuple[tuple[str, str]]:
    """Call metadata carrying an end user's access token (self-service RPCs): pass it as
    ``metadata=``."""
    return ((USER_TOKEN_KEY, access_token),)


if TYPE_CHECKING:
    _Stub = user_service_pb2_grpc.UserServiceAsyncStub
else:
    _Stub = user_service_pb2_grpc.UserServiceStub


class UserServiceClient(_Stub):
    """The service's stub over a configured channel: one method per RPC, as in the proto, each
    raising a typed error. Close it (``await client.close()`` or ``async with``)."""

    def __new__(cls, channel: grpc.aio.Channel) -> UserServiceClient:
        return object.__new__(cls)

    def __init__(self, channel: grpc.aio.Channel) -> None:
        super().__init__(channel)
        self.channel = channel

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> UserServiceClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


def connect(
    target: str,
    *,
    api_key: str | None = None,
    client_cert: tuple[bytes, bytes] | None = None,
    root_certificates: bytes | None = None,
    tls: bool | None = None,
    wait_for_ready: bool = False,
    options: Sequence[tuple[str, Any]] = (),
) -> UserServiceClient:
    """A client of the service at ``target`` ("host:port", or a gRPC target name).

    TLS is on unless ``tls`` is False or, with ``tls`` left None, the target is on this machine
    (localhost, 127.0.0.0/8, ::1, a unix socket) and neither ``client_cert`` (PEM certificate
    chain, PEM private key) nor ``root_certificates`` (PEM; the system's roots when None) is
    given: the API key and users' tokens never cross a network in plaintext unless the caller
    says ``tls=False``. ``api_key`` goes with every call as "authorization: Bearer <key>".
    ``wait_for_ready`` makes calls wait for the server (up to their deadline) instead of failing
    UNAVAILABLE at once while it cannot be reached.
    """
    if tls is None:
        certificates = client_cert is not None or root_certificates is not None
        use_tls = certificates or not is_loopback(target)
    else:
        use_tls = tls
    if not use_tls and (client_cert is not None or root_certificates is not None):
        raise ValueError("certificates need TLS (tls=False was given)")
    channel_options = [
        ("grpc.service_config", json.dumps(service_config(wait_for_ready=wait_for_ready))),
        ("grpc.enable_retries", 1),
        *KEEPALIVE_OPTIONS,
        *options,
    ]
    interceptors: list[grpc.aio.ClientInterceptor] = [_UnaryDeadline()]
    if api_key is not None:
        interceptors += [_UnaryApiKey(api_key), _StreamApiKey(api_key)]
    interceptors += [_UnaryTypedErrors(), _StreamTypedErrors()]
    if use_tls:
        private_key, chain = (client_cert[1], client_cert[0]) if client_cert else (None, None)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=root_certificates, private_key=private_key, certificate_chain=chain
        )
        channel = grpc.aio.secure_channel(
            target, credentials, options=channel_options, interceptors=interceptors
        )
    else:
        channel = grpc.aio.insecure_channel(
            target, options=channel_options, interceptors=interceptors
        )
    return UserServiceClient(channel)


def is_loopback(target: str) -> bool:
    """Whether every address of a gRPC ``target`` is on this machine: localhost, 127.0.0.0/8,
    ::1 (as "host:port", "[::1]:port", "dns:///host:port", "ipv4:a:p,b:p", "ipv6:[a]:p") or a
    unix socket. Anything else, a name not understood included, is not."""
    scheme, colon, rest = target.partition(":")
    if colon and scheme in ("unix", "unix-abstract"):
        return True
    if colon and scheme in ("ipv4", "ipv6"):
        return all(_is_loopback_host(_host(address)) for address in rest.split(","))
    if colon and scheme == "dns":
        # dns:[//authority/]host[:port]: the authority is the DNS server, not the target.
        target = rest.split("/", 3)[-1] if rest.startswith("//") else rest
    return _is_loopback_host(_host(target))


def _host(address: str) -> str:
    """The host of "host", "host:port", "[v6]" or "[v6]:port"; a bare IPv6 address as is."""
    if address.startswith("["):
        return address[1:].partition("]")[0]
    if address.count(":") > 1:
        return address
    return address.partition(":")[0]


def _is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


_Details = grpc.aio.ClientCallDetails
_Continuation = Callable[[_Details, Any], Awaitable[Any]]


# grpc.aio files each interceptor under the first kind of call it handles (an if/elif over the
# classes), so one class per kind: a class handling two would see only unary calls.


class _ApiKey:
    """Adds "authorization: Bearer <key>" to every call (the key is never in a repr)."""

    def __init__(self, api_key: str) -> None:
        self._header = (AUTHORIZATION_KEY, f"Bearer {api_key}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<redacted>)"

    def _with_key(self, details: _Details) -> _Details:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        metadata.add(*self._header)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


class _UnaryApiKey(_ApiKey, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self, continuation: _Continuation, details: _Details, request: Any
    ) -> Any:
        return await continuation(self._with_key(details), request)


class _StreamApiKey(_ApiKey, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self, continuation: _Continuation, details: _Details, request: Any
    ) -> Any:
        return await continuation(self._with_key(details), request)


class _UnaryDeadline(grpc.aio.UnaryUnaryClientInterceptor):
    """Gives a unary call made without ``timeout=`` its method's default deadline."""

    async def intercept_unary_unary(
        self, continuation: _Continuation, details: _Details, request: Any
    ) -> Any:
        if details.timeout is None:
            method = details.method
            name = method.decode() if isinstance(method, bytes) else method
            details = grpc.aio.ClientCallDetails(
                details.method,
                default_timeout(name),
                details.metadata,
                details.credentials,
                details.wait_for_ready,
            )
        return await continuation(details, request)


class _UnaryTypedErrors(grpc.aio.UnaryUnaryClientInterceptor):
    """Raises the typed error (a grpc.aio.AioRpcError subclass) for a failed unary call."""

    async def intercept_unary_unary(
        self, continuation: _Continuation, details: _Details, request: Any
    ) -> Any:
        call = await continuation(details, request)
        try:
            await call
        except grpc.aio.AioRpcError as error:
            raise typed_error(error) from None
        return call


class _StreamTypedErrors(grpc.aio.UnaryStreamClientInterceptor):
    """Raises the typed error from iterating a stream (WatchEvents) that ends with an error."""

    async def intercept_unary_stream(
        self, continuation: _Continuation, details: _Details, request: Any
    ) -> Any:
        return _typed_stream(await continuation(details, request))


async def _typed_stream(call: AsyncIterable[Any]) -> AsyncIterator[Any]:
    try:
        async for response in call:
            yield response
    except grpc.aio.AioRpcError as error:
        raise typed_error(error) from None
