"""The one place domain errors become gRPC statuses: an interceptor around every unary handler
and every server-streaming handler of this service.

The interceptor also hands the caller's deadline to the DynamoDB client (persistence.deadline).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeAlias

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from domain.errors import (
    AccountDisabled,
    AccountLocked,
    AuthenticationFailed,
    ConcurrentRefresh,
    DeadlineExceeded,
    EmailAlreadyRegistered,
    InvalidArgument,
    InvalidRefreshToken,
    InvalidResetToken,
    StorageUnavailable,
    UserNotFound,
    VersionConflict,
)
from persistence.deadline import deadline_in
from server.caller_errors import (
    CallerNotPermitted,
    CallerUnauthenticated,
    ServiceShuttingDown,
    TooManyWatchers,
)
from server.handler_cache import WrappedHandlers

log = logging.getLogger(__name__)

RETRY_DELAY_SECONDS = 1
INTERNAL_MESSAGE = "internal error"


def rpc_status_for(error: Exception, method: str = "") -> status_pb2.Status:
    """The google.rpc.Status a caller sees for ``error``; unexpected errors are logged, hidden."""
    if isinstance(error, InvalidArgument):
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=violation.field, description=violation.description
                )
                for violation in error.violations
            ]
        )
        return _status(code_pb2.INVALID_ARGUMENT, str(error), bad_request)
    if isinstance(error, UserNotFound):
        return _status(code_pb2.NOT_FOUND, str(error))
    if isinstance(error, EmailAlreadyRegistered):
        return _status(code_pb2.ALREADY_EXISTS, str(error))
    if isinstance(error, (VersionConflict, ConcurrentRefresh)):
        return _status(code_pb2.ABORTED, str(error))
    if isinstance(error, (AuthenticationFailed, InvalidRefreshToken, InvalidResetToken)):
        return _status(code_pb2.UNAUTHENTICATED, str(error))
    if isinstance(error, AccountDisabled):
        return _status(code_pb2.PERMISSION_DENIED, str(error))
    if isinstance(error, AccountLocked):
        wait = Duration()
        wait.FromTimedelta(error.retry_after)
        return _status(
            code_pb2.RESOURCE_EXHAUSTED, str(error), error_details_pb2.RetryInfo(retry_delay=wait)
        )
    if isinstance(error, StorageUnavailable):
        log.warning("%s: storage unavailable: %s", method, error)
        return _status(code_pb2.UNAVAILABLE, str(error), _retry_soon())
    if isinstance(error, ServiceShuttingDown):
        return _status(code_pb2.UNAVAILABLE, str(error), _retry_soon())
    if isinstance(error, TooManyWatchers):
        return _status(code_pb2.RESOURCE_EXHAUSTED, str(error), _retry_soon())
    if isinstance(error, DeadlineExceeded):
        return _status(code_pb2.DEADLINE_EXCEEDED, str(error))
    if isinstance(error, CallerUnauthenticated):
        return _status(code_pb2.UNAUTHENTICATED, str(error))
    if isinstance(error, CallerNotPermitted):
        return _status(code_pb2.PERMISSION_DENIED, str(error))
    # StorageError and anything unforeseen: the details stay in the log, never in the reply.
    log.error("%s failed", method, exc_info=error)
    return _status(code_pb2.INTERNAL, INTERNAL_MESSAGE)


async def abort_with(
    context: grpc.aio.ServicerContext[Any, Any], status: status_pb2.Status
) -> NoReturn:
    """Ends the call with ``status`` (and its details), keeping the trailing metadata already set.

    ``context.abort_with_status`` would replace that metadata (the request id, for one) with the
    status's own ``grpc-status-details-bin``.
    """
    details = rpc_status.to_status(status)
    kept = tuple(
        (key, value)
        for key, value in context.trailing_metadata() or ()
        if key != _STATUS_DETAILS_KEY  # an earlier status's details: replaced by this one's
    )
    await context.abort(details.code, details.details, kept + tuple(details.trailing_metadata))


_STATUS_DETAILS_KEY = "grpc-status-details-bin"


def _retry_soon() -> error_details_pb2.RetryInfo:
    return error_details_pb2.RetryInfo(retry_delay=Duration(seconds=RETRY_DELAY_SECONDS))


def _status(code: int, message: str, *details: Message) -> status_pb2.Status:
    status = status_pb2.Status(code=code, message=message)
    for detail in details:
        status.details.add().Pack(detail)
    return status


_Behaviour = Callable[..., Any]
_Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class DomainErrorInterceptor(grpc.aio.ServerInterceptor):
    """Turns an exception escaping a unary-unary handler, or a unary-stream handler written as an
    async generator (WatchEvents), into the matching rich gRPC status."""

    def __init__(self) -> None:
        self._handlers = WrappedHandlers(_guarded_handler)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler  # unknown method
        if handler.unary_unary is None and not inspect.isasyncgenfunction(handler.unary_stream):
            return handler  # other streaming ones (reflection, Health/Watch) pass untouched
        return self._handlers.get(handler_call_details.method, handler)


def _guarded_handler(method: str, handler: _Handler) -> _Handler:
    if handler.unary_unary is None:
        return grpc.unary_stream_rpc_method_handler(
            _guarded_stream(handler.unary_stream, method),
            request_deserializer=_tolerant(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )
    return grpc.unary_unary_rpc_method_handler(
        _guarded(handler.unary_unary, method),
        request_deserializer=_tolerant(handler.request_deserializer),
        response_serializer=handler.response_serializer,
    )


# Stands for request bytes that are no message of the method's request type. Left to gRPC,
# such a request would end UNKNOWN, with the parser's exception text as the message.
_UNPARSABLE = object()
_UNPARSABLE_DESCRIPTION = "is not a valid protobuf message of this method's request type"


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def tolerant(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError:
            return _UNPARSABLE

    return tolerant


def _guarded(behaviour: _Behaviour, method: str) -> _Behaviour:
    async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if request is _UNPARSABLE:
            violation = error_details_pb2.BadRequest.FieldViolation(
                field="", description=_UNPARSABLE_DESCRIPTION
            )
            unparsable = _status(
                code_pb2.INVALID_ARGUMENT,
                f"the request {_UNPARSABLE_DESCRIPTION}",
                error_details_pb2.BadRequest(field_violations=[violation]),
            )
            await abort_with(context, unparsable)
        try:
            # gRPC cancels the handler when the deadline passes; this also stops a DynamoDB
            # request (or a botocore retry of one) from starting in the last moments before.
            with deadline_in(context.time_remaining()):
                reply = behaviour(request, context)
                return await reply if inspect.isawaitable(reply) else reply
        except grpc.aio.AbortError:
            raise  # the handler already chose its status
        except Exception as error:  # asyncio.CancelledError is a BaseException and passes untouched
            await abort_with(context, rpc_status_for(error, method))

    return guarded


def _guarded_stream(behaviour: _Behaviour, method: str) -> _Behaviour:
    # An async generator still (grpc.aio picks the streaming style from the function's kind): the
    # replies sent before an error stay sent, and the error ends the stream with its status.
    async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if request is _UNPARSABLE:
            await _guarded(behaviour, method)(request, context)  # refuses it, as for unary calls
        try:
            with deadline_in(context.time_remaining()):
                async for reply in behaviour(request, context):
                    yield reply
        except grpc.aio.AbortError:
            raise
        except Exception as error:  # asyncio.CancelledError (the caller went away) passes untouched
            await abort_with(context, rpc_status_for(error, method))

    return guarded
