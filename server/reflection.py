"""Server reflection under both of its names: grpc.reflection.v1, which grpcurl, Postman and the
current gRPC libraries ask first, and grpc.reflection.v1alpha, which older clients know.

grpcio-reflection (1.85) serves only v1alpha. v1 is the same protocol: its messages are
v1alpha's, field for field and number for number, under another package. So one servicer
answers both, its bytes read and written with v1alpha's message classes; v1's descriptor is
made from v1alpha's (the package renamed) and added to the default pool, so that a client
asking reflection about v1 itself gets an answer too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2

V1ALPHA_SERVICE_NAME = reflection.SERVICE_NAME
V1_PACKAGE = "grpc.reflection.v1"
V1_SERVICE_NAME = f"{V1_PACKAGE}.ServerReflection"
V1_FILE_NAME = "grpc/reflection/v1/reflection.proto"
# Both names, listed by reflection itself (as Go and Java servers list them).
SERVICE_NAMES = (V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME)


def v1_file_descriptor() -> descriptor.FileDescriptor:
    """grpc/reflection/v1/reflection.proto, in the default pool (added on the first call)."""
    pool = descriptor_pool.Default()
    try:
        return pool.FindFileByName(V1_FILE_NAME)
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    v1alpha = f".{reflection_pb2.DESCRIPTOR.package}."
    proto.name = V1_FILE_NAME
    proto.package = V1_PACKAGE
    for message in proto.message_type:
        for field in message.field:
            if field.HasField("type_name"):
                field.type_name = field.type_name.replace(v1alpha, f".{V1_PACKAGE}.")
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(v1alpha, f".{V1_PACKAGE}.")
            method.output_type = method.output_type.replace(v1alpha, f".{V1_PACKAGE}.")
    # v1alpha's file is marked deprecated; v1's options are those grpc-proto publishes.
    proto.options.Clear()
    proto.options.java_package = "io.grpc.reflection.v1"
    proto.options.java_outer_classname = "ServerReflectionProto"
    proto.options.java_multiple_files = True
    proto.options.go_package = "google.golang.org/grpc/reflection/grpc_reflection_v1"
    return pool.AddSerializedFile(proto.SerializeToString())


def enable_server_reflection(service_names: Iterable[str], server: grpc.aio.Server) -> None:
    """Serves reflection v1 and v1alpha on ``server``, listing ``service_names`` and both
    reflection services (the names may include them already)."""
    v1_file_descriptor()
    listed = tuple(dict.fromkeys([*service_names, *SERVICE_NAMES]))
    servicer = reflection.aio.ReflectionServicer(listed)
    handlers = {
        "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
        )
    }
    for name in SERVICE_NAMES:
        methods: dict[str, Any] = dict(handlers)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, methods),))
        server.add_registered_method_handlers(name, methods)
