"""The protos shipped for clients in other languages (protos/google/rpc, protos/grpc/health) say
exactly what the service itself speaks: compiled, each equals the descriptor of the Python package
the service uses (googleapis-common-protos, grpcio-health-checking), so the copies cannot drift."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import grpc_tools  # type: ignore[import-untyped]  # grpcio-tools ships no type hints
import pytest
from google.protobuf import descriptor_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[2]
WELL_KNOWN_TYPES = Path(grpc_tools.__file__).parent / "_proto"

SHIPPED = {
    "google/rpc/status.proto": status_pb2,
    "google/rpc/error_details.proto": error_details_pb2,
    "grpc/health/v1/health.proto": health_pb2,
}


def compiled(proto: str, into: Path) -> descriptor_pb2.FileDescriptorProto:
    """The shipped ``proto`` as protoc compiles it from protos/ (no source info)."""
    out = into / "set.binpb"
    includes = ["-I", str(ROOT / "protos"), "-I", str(WELL_KNOWN_TYPES)]
    code = protoc.main(["protoc", *includes, f"--descriptor_set_out={out}", proto])
    assert code == 0, f"protoc could not compile {proto}"
    [file] = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    return file


def installed(module: ModuleType) -> descriptor_pb2.FileDescriptorProto:
    """The descriptor the installed Python package was generated from, under its path in
    protos/ (grpcio-health-checking keeps health.proto as grpc_health/v1/health.proto; clients
    know it as grpc/health/v1/health.proto, its path in grpc-proto)."""
    file = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(file)
    file.name = next(name for name, shipped in SHIPPED.items() if shipped is module)
    return file


def without_json_names(
    file: descriptor_pb2.FileDescriptorProto,
) -> descriptor_pb2.FileDescriptorProto:
    """protoc fills in every field's json_name, CopyToProto none: both are the default."""
    copy = descriptor_pb2.FileDescriptorProto()
    copy.CopyFrom(file)
    messages = list(copy.message_type)
    while messages:
        message = messages.pop()
        messages.extend(message.nested_type)
        for field in message.field:
            field.ClearField("json_name")
    return copy


def shape(file: descriptor_pb2.FileDescriptorProto) -> dict[str, object]:
    """What a client depends on, readable in a failure: messages, fields, enums, methods."""
    return {
        "package": file.package,
        "dependencies": list(file.dependency),
        "messages": {
            message.name: [
                (field.name, field.number, field.label, field.type, field.type_name)
                for field in message.field
            ]
            for message in file.message_type
        },
        "nested": {
            message.name: [nested.name for nested in message.nested_type]
            + [enum.name for enum in message.enum_type]
            for message in file.message_type
        },
        "enums": {
            enum.name: [(value.name, value.number) for value in enum.value]
            for enum in file.enum_type
        },
        "methods": {
            f"{service.name}.{method.name}": (
                method.input_type,
                method.output_type,
                method.client_streaming,
                method.server_streaming,
            )
            for service in file.service
            for method in service.method
        },
    }


@pytest.mark.parametrize("proto", sorted(SHIPPED))
def test_a_shipped_proto_matches_the_installed_descriptor(proto: str, tmp_path: Path) -> None:
    shipped, reference = compiled(proto, tmp_path), installed(SHIPPED[proto])

    assert shape(shipped) == shape(reference)  # the readable part first
    assert without_json_names(shipped) == reference  # then all else: nested types, options


@pytest.mark.parametrize("proto", ["google/rpc/status.proto", "google/rpc/error_details.proto"])
def test_a_shipped_google_rpc_proto_is_the_installed_file(proto: str) -> None:
    installed_copy = Path(status_pb2.__file__).parents[2] / proto

    assert (ROOT / "protos" / proto).read_bytes() == installed_copy.read_bytes()


def test_every_shipped_third_party_proto_is_checked() -> None:
    shipped = {
        str(path.relative_to(ROOT / "protos"))
        for folder in ("google", "grpc")
        for path in (ROOT / "protos" / folder).rglob("*.proto")
    }

    assert shipped == set(SHIPPED)
