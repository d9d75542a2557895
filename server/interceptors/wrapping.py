"""Wrapped method handlers, built once per method rather than on every call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeAlias, TypeVar

import grpc

_Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
_Wrapped = TypeVar("_Wrapped")  # what wrap makes of a handler: another handler, in the service


class WrappedHandlers(Generic[_Wrapped]):
    """``wrap(method, handler)`` once per method and handler; the same result afterwards."""

    def __init__(self, wrap: Callable[[str, _Handler], _Wrapped]) -> None:
        self._wrap = wrap
        self._by_method: dict[str, tuple[_Handler, _Wrapped]] = {}

    def get(self, method: str, handler: _Handler) -> _Wrapped:
        cached = self._by_method.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._by_method[method] = (handler, wrapped)
        return wrapped


_Behaviour: TypeAlias = Callable[..., Any]


def with_behaviour(
    handler: _Handler,
    unary: Callable[[_Behaviour], _Behaviour],
    stream: Callable[[_Behaviour], _Behaviour],
) -> _Handler:
    """``handler`` with its behaviour wrapped, serializers kept: by ``unary`` when it answers
    once (unary-unary, stream-unary), by ``stream`` when it streams its answer."""
    serializers = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), **serializers)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(stream(handler.unary_stream), **serializers)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary), **serializers)
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(stream(handler.stream_stream), **serializers)
    raise TypeError(f"a method handler without behaviour: {handler!r}")
