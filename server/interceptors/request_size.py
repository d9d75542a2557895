"""The service's own request-size limit: a refusal that carries the request id and is logged.

gRPC itself refuses a message over its ``grpc.max_receive_message_length`` while receiving it,
before any interceptor's handler runs: such a call gets RESOURCE_EXHAUSTED with no x-request-id
and leaves no access line. So gRPC's limit is set above the service's (GRPC_RECEIVE_LIMIT_BYTES),
and requests between the two reach this interceptor, which refuses them after the request-id and
access-log interceptor has seen the call. Only requests over gRPC's limit are refused unseen.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc

from server.interceptors.wrapping import WrappedHandlers
from server.refusals import RequestTooLarge
from server.status import abort_with, rpc_status_for

# Every request of this API fits in a few KiB (BatchGetUsers' 100 ids: under 4 KiB).
MAX_REQUEST_BYTES = 64 * 1024
# What gRPC may receive: room above the service's limit, so the service answers there itself,
# while gRPC still bounds the memory one message can take before any of our code runs.
GRPC_RECEIVE_LIMIT_BYTES = 2 * MAX_REQUEST_BYTES

_Behaviour = Callable[..., Any]
_Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
_Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class RequestSizeLimit(grpc.aio.ServerInterceptor):
    """Refuses a request message larger than ``limit`` bytes (as serialized, after decompression)
    with RESOURCE_EXHAUSTED, before the handler runs. Request streams (reflection's) are left to
    gRPC's own limit: they carry small messages one at a time."""

    def __init__(self, limit: int = MAX_REQUEST_BYTES) -> None:
        self._limit = limit
        self._handlers = WrappedHandlers(self._limited_handler)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming:
            return handler
        return self._handlers.get(handler_call_details.method, handler)

    def _limited_handler(self, method: str, handler: _Handler) -> _Handler:
        serializers = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._limited(handler.unary_unary), **serializers
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._limited(handler.unary_stream), **serializers
            )
        raise TypeError(f"{method}: not a unary-request handler")

    async def _refuse_if_too_large(self, request: Any, context: _Context) -> None:
        size = request.ByteSize() if hasattr(request, "ByteSize") else 0
        if size > self._limit:
            await abort_with(context, rpc_status_for(RequestTooLarge(size, self._limit)))

    def _limited(self, behaviour: _Behaviour) -> _Behaviour:
        # grpc.aio picks the streaming style from the function's kind, so the wrapper keeps it.
        if inspect.isasyncgenfunction(behaviour):

            async def limited_stream(request: Any, context: _Context) -> AsyncIterator[Any]:
                await self._refuse_if_too_large(request, context)
                async for reply in behaviour(request, context):
                    yield reply

            return limited_stream

        async def limited(request: Any, context: _Context) -> Any:
            await self._refuse_if_too_large(request, context)
            reply = behaviour(request, context)
            return await reply if inspect.isawaitable(reply) else reply

        return limited
