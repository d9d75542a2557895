"""WrappedHandlers: one wrapping per method and handler, reused on every later call."""

from __future__ import annotations

from typing import Any

import grpc

from server.interceptors.wrapping import WrappedHandlers


def handler() -> grpc.RpcMethodHandler[Any, Any]:
    async def behaviour(request: bytes, context: object) -> bytes:
        return request

    return grpc.unary_unary_rpc_method_handler(behaviour)


def test_a_methods_handler_is_wrapped_once_and_the_wrapping_reused() -> None:
    wrapped: list[str] = []

    def wrap(method: str, original: grpc.RpcMethodHandler[Any, Any]) -> Any:
        wrapped.append(method)
        return ("wrapped", method, original)

    cache = WrappedHandlers(wrap)
    get_user, list_users = handler(), handler()

    first = cache.get("/s/GetUser", get_user)
    assert cache.get("/s/GetUser", get_user) is first
    assert cache.get("/s/ListUsers", list_users) == ("wrapped", "/s/ListUsers", list_users)
    assert wrapped == ["/s/GetUser", "/s/ListUsers"]


def test_a_new_handler_for_a_method_is_wrapped_anew() -> None:
    cache = WrappedHandlers(lambda method, original: ("wrapped", original))
    old, new = handler(), handler()

    cache.get("/s/GetUser", old)

    assert cache.get("/s/GetUser", new) == ("wrapped", new)
