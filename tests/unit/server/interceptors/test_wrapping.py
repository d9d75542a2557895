"""WrappedHandlers: one wrapping per method and handler, reused on every later call."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from server.interceptors.wrapping import WrappedHandlers, with_behaviour


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


def _behaviour(request: object, context: object) -> object:
    return request


@pytest.mark.parametrize(
    ("make", "attribute", "wrapper"),
    [
        (grpc.unary_unary_rpc_method_handler, "unary_unary", "unary"),
        (grpc.unary_stream_rpc_method_handler, "unary_stream", "stream"),
        (grpc.stream_unary_rpc_method_handler, "stream_unary", "unary"),
        (grpc.stream_stream_rpc_method_handler, "stream_stream", "stream"),
    ],
)
def test_with_behaviour_wraps_each_kind_by_how_it_answers_and_keeps_the_serializers(
    make: Any, attribute: str, wrapper: str
) -> None:
    deserialize: Any = bytes.fromhex
    serialize: Any = str.encode
    handler = make(_behaviour, request_deserializer=deserialize, response_serializer=serialize)
    wrapped_by: list[str] = []

    def wrapping(kind: str) -> Any:
        def wrap(behaviour: Any) -> Any:
            assert behaviour is _behaviour
            wrapped_by.append(kind)
            return lambda request, context: ("wrapped", behaviour(request, context))

        return wrap

    wrapped = with_behaviour(handler, wrapping("unary"), wrapping("stream"))

    assert wrapped_by == [wrapper]
    assert getattr(wrapped, attribute)(1, None) == ("wrapped", 1)
    assert wrapped.request_deserializer is deserialize
    assert wrapped.response_serializer is serialize
    assert (wrapped.request_streaming, wrapped.response_streaming) == (
        handler.request_streaming,
        handler.response_streaming,
    )


def test_with_behaviour_refuses_a_handler_without_one() -> None:
    empty: grpc.RpcMethodHandler[Any, Any] = grpc.unary_unary_rpc_method_handler(
        None,  # type: ignore[arg-type]
    )
    with pytest.raises(TypeError):
        with_behaviour(empty, lambda b: b, lambda b: b)
