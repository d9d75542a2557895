"""Who may call: API keys and client certificates identify callers, roles let them act on any
user, and an end user's access token (x-user-token) ties a call to that user."""

from __future__ import annotations

import hmac
import inspect
import logging
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Mapping,
    Sequence,
)
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias

import grpc

from domain.errors import DomainError, InvalidValue
from domain.values import UserId
from server.crypto.access_token_verifier import AccessTokenVerifier, InvalidAccessToken, TokenUser
from server.crypto.api_keys import api_key_sha256
from server.interceptors.wrapping import WrappedHandlers
from server.refusals import (
    CallerNotPermitted,
    CallerUnauthenticated,
    NotTheTokensUser,
    SignInNotRecent,
    UserTokenRejected,
)
from server.rpc_access import ADMIN_ROLE, Rule, rule_of, service_of
from server.settings import ApiKey
from server.status import abort_with, rpc_status_for

log = logging.getLogger(__name__)

ANONYMOUS = "anonymous"

_AUTHORIZATION = "authorization"
USER_TOKEN = "x-user-token"
_BEARER = "bearer"
_TLS = [b"ssl"]


# Set for the length of each call it admits: whether the call carries the x-user-token of the very
# user its request names (the end user asked), as opposed to a role acting on any user, or no
# check at all (development). A handler that records who acted reads it (EndSession).
on_own_user_token: ContextVar[bool] = ContextVar("on_own_user_token", default=False)


@dataclass(frozen=True)
class Caller:
    """An identified caller: an API key's name or a client certificate's common name."""

    name: str
    roles: frozenset[str]


_Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
_Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
_Behaviour = Callable[..., Any]
_Admit = Callable[[Any, Any], Awaitable[None]]  # (request or None, context)


class CallerAuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuses non-public services to unidentified callers, and each method to callers without
    what server.rpc_access says it needs.

    An "x-user-token: <access token>" is verified whenever it is sent (UNAUTHENTICATED when it
    is no valid, unexpired token of this service, or, with ``session_in_force``, when the
    session it names has ended since it was issued). A caller without a role that allows a method
    on any user may still call a self-service method with it, on the token's user only.

    A caller is identified by "authorization: Bearer <key>" metadata matching a configured key's
    SHA-256, or else by the common name of a client certificate the TLS layer verified (only
    trusted when ``client_certs_required``: only then did the handshake check it against the
    client CA). A wrong or malformed authorization header is refused even with a certificate.
    A method whose rule wants a recent sign-in, let through by the user's own token alone, also
    needs the token's auth_time within ``recent_sign_in_seconds`` of ``clock``.
    With neither API keys nor required client certificates everyone passes, as an admin (user
    tokens are still verified).
    """

    def __init__(
        self,
        *,
        api_keys: Sequence[ApiKey],
        client_cert_roles: Mapping[str, Sequence[str]],
        client_certs_required: bool,
        public_services: Collection[str],
        user_tokens: AccessTokenVerifier | None = None,
        session_in_force: Callable[[TokenUser], Awaitable[bool]] | None = None,
        access: Callable[[str], Rule | None] = rule_of,
        recent_sign_in_seconds: int = 900,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._api_keys = tuple(
            (key.sha256, Caller(key.name, frozenset(key.roles))) for key in api_keys
        )
        self._client_cert_roles = {
            name: frozenset(roles) for name, roles in client_cert_roles.items()
        }
        self._client_certs_required = client_certs_required
        self._public_services = frozenset(public_services)
        self._user_tokens = user_tokens
        self._session_in_force = session_in_force
        self._access = access
        self._recent_sign_in_seconds = recent_sign_in_seconds
        self._clock = clock
        self._handlers = WrappedHandlers(self._admitting_handler)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or service_of(method) in self._public_services:
            return handler
        return self._handlers.get(method, handler)

    def _admitting_handler(self, method: str, handler: _Handler) -> _Handler:
        async def admit(request: Any, context: _Context) -> None:
            await self._admit(request, context, method)

        return _guarded_handler(handler, admit)

    def identify(
        self,
        metadata: Iterable[tuple[str, str | bytes]],
        auth_context: Mapping[str, Iterable[bytes]],
    ) -> Caller:
        """The caller that ``metadata`` and the TLS ``auth_context`` show; CallerUnauthenticated."""
        if not self._api_keys and not self._client_certs_required:
            return Caller(ANONYMOUS, frozenset({ADMIN_ROLE}))  # development: nothing to check
        headers = [value for key, value in metadata if key == _AUTHORIZATION]
        if headers:
            return self._caller_with_key(headers)
        transport = list(auth_context.get("transport_security_type") or [])
        if self._client_certs_required and transport == _TLS:
            names = list(auth_context.get("x509_common_name") or [])
            if names:
                name = names[0].decode("utf-8", errors="replace")
                return Caller(name, self._client_cert_roles.get(name, frozenset()))
        raise CallerUnauthenticated("no API key or client certificate")

    def user_of(self, metadata: Iterable[tuple[str, str | bytes]]) -> TokenUser | None:
        """The user whose x-user-token ``metadata`` carries (None: no token); UserTokenRejected."""
        tokens = [value for key, value in metadata if key == USER_TOKEN]
        if not tokens:
            return None
        if len(tokens) != 1 or not isinstance(tokens[0], str) or self._user_tokens is None:
            raise UserTokenRejected(expired=False)
        try:
            return self._user_tokens.verify(tokens[0].strip())
        except InvalidAccessToken as error:
            raise UserTokenRejected(expired=error.expired) from None

    def authorize(
        self, caller: Caller, user: TokenUser | None, method: str, request: object
    ) -> bool:
        """Raises CallerNotPermitted unless ``caller`` (perhaps for ``user``) has what ``method``
        needs, as server.rpc_access says (a field of ``request`` only some roles may set
        included), and NotTheTokensUser when ``user`` may call it but ``request`` names another
        user, and SignInNotRecent when only ``user``'s token lets it through and the rule wants a
        recent sign-in that token lacks. A method not classified there is refused to everyone.
        Whether the call acts on the token's own user: ``user`` is the user of a self-service
        method's request (then the end user asked, whatever roles the caller also holds)."""
        rule = self._access(method)
        if rule is None:
            raise CallerNotPermitted(None)
        refused_field = rule.field_refused(caller.roles, request)
        if refused_field is not None:
            raise CallerNotPermitted(refused_field.describe_needs())
        field = rule.own_user_field
        # The id as the use case reads it: another spelling of the token's UUID is the same
        # user; a malformed id, or a streamed request (None), names none.
        own = (
            field is not None
            and user is not None
            and request is not None
            and _named_user(getattr(request, field, None)) == user.user_id
        )
        if rule.allows_any_user(caller.roles) or rule.public or rule.any_caller:
            return own
        if own:
            assert user is not None
            if rule.recent_sign_in and not self._signed_in_recently(user):
                raise SignInNotRecent(self._recent_sign_in_seconds)
            return True
        if field is None or user is None:
            raise CallerNotPermitted(rule.describe_needs())
        raise NotTheTokensUser(field)

    def _signed_in_recently(self, user: TokenUser) -> bool:
        """Whether the token's sign-in is within the window (a token without auth_time: no)."""
        if user.auth_time is None:
            return False
        return self._clock().timestamp() - user.auth_time <= self._recent_sign_in_seconds

    def _caller_with_key(self, headers: Sequence[str | bytes]) -> Caller:
        if len(headers) != 1 or not isinstance(headers[0], str):
            raise CallerUnauthenticated("malformed authorization metadata")
        scheme, _, key = headers[0].strip().partition(" ")
        key = key.strip()
        if scheme.lower() != _BEARER or not key:
            raise CallerUnauthenticated("malformed authorization metadata")
        presented = api_key_sha256(key)
        found: Caller | None = None
        for digest, caller in self._api_keys:  # every key compared: no early exit
            if hmac.compare_digest(presented, digest) and found is None:
                found = caller
        if found is None:
            raise CallerUnauthenticated("unknown API key")
        return found

    async def _admit(self, request: object, context: _Context, method: str) -> None:
        caller: Caller | None = None
        try:
            metadata = context.invocation_metadata() or ()
            caller = self.identify(metadata, context.auth_context())
            user = self.user_of(metadata)
            if user is not None and self._session_in_force is not None:
                # After the signature: a store read only for a token this service signed.
                if not await self._session_in_force(user):
                    raise UserTokenRejected(expired=False, session_ended=True)
            on_own_user_token.set(self.authorize(caller, user, method, request))
        except DomainError as error:  # the store could not tell (StorageUnavailable)
            await _abort(context, error, method)
        except (CallerUnauthenticated, UserTokenRejected) as error:
            reason = getattr(error, "reason", error)
            name = "unknown caller" if caller is None else f"caller {caller.name}"
            log.info("%s at %s denied %s: %s", name, context.peer(), method, reason)
            await _abort(context, error, method)
        except (CallerNotPermitted, NotTheTokensUser, SignInNotRecent) as error:
            assert caller is not None
            log.info("caller %s denied %s: %s", caller.name, method, error)
            await _abort(context, error, method)


def _named_user(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return UserId.parse(value).value
    except InvalidValue:
        return None


async def _abort(context: _Context, error: Exception, method: str) -> None:
    await abort_with(context, rpc_status_for(error, method))


def _guarded_handler(handler: _Handler, admit: _Admit) -> _Handler:
    """The same handler, of the same kind and with the same (de)serializers, admitting first."""
    serializers = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _guarded_unary(handler.unary_unary, admit), **serializers
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _guarded_stream(handler.unary_stream, admit), **serializers
        )
    # A streamed request is admitted before any of it is read: the rules see no request.
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _guarded_unary(handler.stream_unary, _before_any_request(admit)), **serializers
        )
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(
            _guarded_stream(handler.stream_stream, _before_any_request(admit)), **serializers
        )
    raise TypeError(f"a method handler without behaviour: {handler!r}")


def _before_any_request(admit: _Admit) -> _Admit:
    async def admit_without_request(requests: Any, context: _Context) -> None:
        await admit(None, context)

    return admit_without_request


def _guarded_unary(behaviour: _Behaviour, admit: _Admit) -> _Behaviour:
    async def guarded(request: Any, context: _Context) -> Any:
        await admit(request, context)
        reply = behaviour(request, context)
        return await reply if inspect.isawaitable(reply) else reply

    return guarded


def _guarded_stream(behaviour: _Behaviour, admit: _Admit) -> _Behaviour:
    # grpc.aio picks the streaming style from the function's kind, so the guard keeps it.
    if inspect.isasyncgenfunction(behaviour):

        async def guarded_generator(request: Any, context: _Context) -> AsyncIterator[Any]:
            await admit(request, context)
            async for reply in behaviour(request, context):
                yield reply

        return guarded_generator

    async def guarded(request: Any, context: _Context) -> None:
        await admit(request, context)
        replies = behaviour(request, context)
        if inspect.isawaitable(replies):
            await replies  # the handler writes its replies with context.write
            return
        for reply in replies or ():  # a plain generator; it runs on the event loop
            await context.write(reply)

    return guarded
