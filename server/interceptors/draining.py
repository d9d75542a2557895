"""Draining at shutdown: new calls are refused with UNAVAILABLE while the calls under way finish."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeAlias

import grpc

from server.interceptors.wrapping import WrappedHandlers
from server.refusals import ServiceShuttingDown
from server.status import abort_with, rpc_status_for

# The server is stopped only once no gated call has arrived for this long: gRPC answers CANCELLED,
# not UNAVAILABLE, to a call that reached the server but no handler yet when it stops
# (grpc/grpc#41785), so every call that arrives must first have been handed to the gate.
QUIET_SECONDS = 0.25
_POLL_SECONDS = 0.05

_Behaviour = Callable[..., Any]
_Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class DrainGate(grpc.aio.ServerInterceptor):
    """Counts the unary calls to ``gated_services`` under way; once closed, refuses new ones.

    A refused call gets UNAVAILABLE with a google.rpc.RetryInfo before any of its work starts,
    so its caller may retry it elsewhere. Other services (health, reflection) pass untouched:
    a health check keeps answering NOT_SERVING while the calls under way finish, and a caller
    polling it does not delay the shutdown.
    """

    def __init__(self, gated_services: Collection[str]) -> None:
        self._prefixes = tuple(f"/{name}/" for name in gated_services)
        self._closed = False
        self._under_way = 0
        self._last_arrival = time.monotonic()
        self._handlers = WrappedHandlers(self._counted_handler)

    @property
    def under_way(self) -> int:
        return self._under_way

    def close(self) -> None:
        """From now on, new calls to the gated services are refused."""
        self._closed = True

    async def wait_until_quiet(self, seconds: float) -> bool:
        """Waits until no gated call is under way nor arriving; False if ``seconds`` pass first."""
        deadline = time.monotonic() + seconds
        while True:
            now = time.monotonic()
            if self._under_way == 0 and now - self._last_arrival >= QUIET_SECONDS:
                return True
            if now >= deadline:
                return False
            await asyncio.sleep(min(_POLL_SECONDS, deadline - now))

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[_Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> _Handler | None:
        gated = handler_call_details.method.startswith(self._prefixes)
        if gated:
            self._last_arrival = time.monotonic()
        handler = await continuation(handler_call_details)
        if not gated or handler is None or handler.unary_unary is None:
            return handler  # another service, or an unknown method (UNIMPLEMENTED at once)
        return self._handlers.get(handler_call_details.method, handler)

    def _counted_handler(self, method: str, handler: _Handler) -> _Handler:
        if handler.unary_unary is None:  # intercept_service passes unary-unary handlers only
            raise TypeError(f"{method}: not a unary-unary handler")
        return grpc.unary_unary_rpc_method_handler(
            self._counted(handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _counted(self, behaviour: _Behaviour) -> _Behaviour:
        async def counted(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            if self._closed:
                await abort_with(context, rpc_status_for(ServiceShuttingDown()))
            self._under_way += 1
            try:
                reply = behaviour(request, context)
                return await reply if inspect.isawaitable(reply) else reply
            finally:
                self._under_way -= 1

        return counted
