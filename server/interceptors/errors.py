"""The interceptor that turns an exception escaping a handler into its status (server.status),
refuses request bytes that are no message of the method's type, and hands the caller's deadline
to the DynamoDB client (persistence.deadline)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import grpc
from google.protobuf.message import DecodeError

from persistence.deadline import deadline_in
from server.interceptors.wrapping import WrappedHandlers
from server.refusals import UndecodableRequest
from server.status import abort_with, rpc_status_for

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
        if handler.unary_stream is None:  # intercept_service passes no other kind of handler here
            raise TypeError(f"{method}: neither a unary-unary nor a unary-stream handler")
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
            await abort_with(context, rpc_status_for(UndecodableRequest(), method))
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
