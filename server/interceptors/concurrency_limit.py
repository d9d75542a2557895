"""The cap on calls under way: beyond it, a call is refused at once with RESOURCE_EXHAUSTED and a
google.rpc.RetryInfo, rather than queueing behind the others without end."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeAlias

import grpc

from server.interceptors.wrapping import WrappedHandlers
from server.refusals import TooManyConcurrentCalls
from server.status import abort_with, rpc_status_for

_Behaviour = Callable[..., Any]
_Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class CallsUnderWay(Protocol):
    """Counts the calls under way, the one being let in included (server.interceptors.draining)."""

    @property
    def under_way(self) -> int: ...


class ConcurrencyLimit(grpc.aio.ServerInterceptor):
    """Refuses a unary call to ``limited_services`` while more than ``limit`` are under way.

    It does not count calls itself: ``counter`` does (the drain gate, which counts the same calls
    for shutdown), so it must come after the counter in the chain, where the count already holds
    the call being let in. Other services (health, reflection) are never refused, and streams
    (WatchEvents) have a cap of their own.
    """

    def __init__(self, counter: CallsUnderWay, limit: int, limited_services: list[str]) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._counter = counter
        self._limit = limit
        self._prefixes = tuple(f"/{name}/" for name in limited_services)
        self._handlers = WrappedHandlers(self._limited_handler)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        handler = await continuation(handler_call_details)
        limited = handler_call_details.method.startswith(self._prefixes)
        if not limited or handler is None or handler.unary_unary is None:
            return handler
        return self._handlers.get(handler_call_details.method, handler)

    def _limited_handler(self, method: str, handler: _Handler) -> _Handler:
        if handler.unary_unary is None:  # intercept_service passes unary-unary handlers only
            raise TypeError(f"{method}: not a unary-unary handler")
        return grpc.unary_unary_rpc_method_handler(
            self._limited(handler.unary_unary, method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _limited(self, behaviour: _Behaviour, method: str) -> _Behaviour:
        async def limited(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            if self._counter.under_way > self._limit:
                await abort_with(
                    context, rpc_status_for(TooManyConcurrentCalls(self._limit), method)
                )
            reply = behaviour(request, context)
            return await reply if inspect.isawaitable(reply) else reply

        return limited
