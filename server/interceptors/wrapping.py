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
