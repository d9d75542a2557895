"""Reflection v1's descriptor, made from v1alpha's: the same messages, fields and method under
the package grpc.reflection.v1, so v1alpha's servicer speaks v1 byte for byte."""

from __future__ import annotations

from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2

from server.reflection import V1_SERVICE_NAME, v1_file_descriptor


def as_proto(file: object) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    file.CopyToProto(proto)  # type: ignore[attr-defined]
    return proto


def package_free(file: descriptor_pb2.FileDescriptorProto) -> list[tuple[object, ...]]:
    """Every message's fields and every method, with type names relative to the package."""
    prefix = f".{file.package}."
    shape: list[tuple[object, ...]] = []
    for message in file.message_type:
        for field in message.field:
            type_name = field.type_name.removeprefix(prefix)
            oneof = field.oneof_index if field.HasField("oneof_index") else None
            shape.append((message.name, field.name, field.number, field.type, type_name, oneof))
    for service in file.service:
        for method in service.method:
            shape.append(
                (
                    service.name,
                    method.name,
                    method.input_type.removeprefix(prefix),
                    method.output_type.removeprefix(prefix),
                    method.client_streaming,
                    method.server_streaming,
                )
            )
    return shape


def test_v1_is_v1alpha_under_another_package() -> None:
    v1, v1alpha = as_proto(v1_file_descriptor()), as_proto(reflection_pb2.DESCRIPTOR)

    assert (v1.name, v1.package) == ("grpc/reflection/v1/reflection.proto", "grpc.reflection.v1")
    assert package_free(v1) == package_free(v1alpha)
    assert len(package_free(v1)) > 20  # every field of the 8 messages, and the method
    assert not v1.options.deprecated and v1alpha.options.deprecated


def test_the_v1_service_is_found_by_name_and_built_once() -> None:
    file = v1_file_descriptor()

    assert file.services_by_name["ServerReflection"].full_name == V1_SERVICE_NAME
    assert v1_file_descriptor() is file
