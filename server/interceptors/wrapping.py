"""Wrapped method handlers, built once per method rather than on every call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import grpc

_Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class WrappedHandlers:
    """``wrap(method, handler)`` once per method and handler; the same result afterwards."""

    def __init__(self, wrap: Callable[[str, _Handler], _Handler]) -> None:
        self._wrap = wrap
        self._by_method: dict[str, tuple[_Handler, _Handler]] = {}

    def get(self, method: str, handler: _Handler) -> _Handler:
        cached = self._by_method.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._by_method[method] = (handler, wrapped)
        return wrapped
