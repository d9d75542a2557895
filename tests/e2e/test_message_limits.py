"""Requests over the size limit are refused before any DynamoDB request is sent: by the service
itself (with x-request-id and an access line) up to gRPC's own, higher limit; by gRPC beyond it."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
from biome.user.v1 import user_service_pb2 as pb

from domain.values import NAME_MAX_LENGTH
from server.interceptors.request_size import GRPC_RECEIVE_LIMIT_BYTES, MAX_REQUEST_BYTES
from tests.e2e.auth_helpers import PASSWORD, TIMEOUT, unique_email
from tests.e2e.harness import Service, field_violations, rpc_error
from tests.e2e.test_access_log import (
    JsonLog,
    error_trailers,
    log,
    request_id_in,
    with_request_id,
)

__all__ = ["log"]  # the fixture, shared with the access-log tests

# The health loop's probe reads this key (persistence.readiness); those reads are not the RPC's.
_READINESS_PROBE = b"readiness-probe"


class DynamoDbSends:
    """The operations of every HTTP request the service's DynamoDB client starts (probes aside)."""

    def __init__(self) -> None:
        self.operations: list[str] = []

    def __call__(self, event_name: str = "", request: Any = None, **_: Any) -> None:
        body = getattr(request, "body", b"") or b""
        if _READINESS_PROBE not in (body if isinstance(body, bytes) else body.encode()):
            self.operations.append(event_name.rpartition(".")[2])


@contextmanager
def dynamodb_sends(service: Service) -> Iterator[DynamoDbSends]:
    """Record, while the block runs, what the service sends to DynamoDB (botocore before-send)."""
    sends = DynamoDbSends()
    events = service.dynamodb.meta.events
    events.register("before-send.dynamodb", sends)
    try:
        yield sends
    finally:
        events.unregister("before-send.dynamodb", sends)


def registration(first_name: str = "Ada", **fields: str) -> pb.RegisterUserRequest:
    values: dict[str, Any] = {
        "email": unique_email("limits"),
        "password": PASSWORD,
        "last_name": "Byron",
    }
    return pb.RegisterUserRequest(**{**values, **fields, "first_name": first_name})


def registration_of_size(size: int) -> pb.RegisterUserRequest:
    """A registration whose serialized form is exactly ``size`` bytes (first_name fills it)."""
    request = registration(first_name="")
    length = size - request.ByteSize()
    for _ in range(3):  # a longer name may need a longer length prefix: correct for it
        request.first_name = "x" * length
        length -= request.ByteSize() - size
    assert request.ByteSize() == size
    return request


async def stored_users(service: Service) -> int:
    return len(await service.scan(service.tables.users))


async def test_an_oversized_request_is_refused_before_it_reaches_dynamodb(service: Service) -> None:
    oversized = registration(first_name="x" * (100 * 1024))
    before = await stored_users(service)

    with dynamodb_sends(service) as sends:
        error = await rpc_error(service.stub.RegisterUser(oversized, timeout=TIMEOUT))
        refused = list(sends.operations)
        # Control: the recorder does see what a registration sends.
        await service.stub.RegisterUser(registration(), timeout=TIMEOUT)

    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert refused == []
    assert "TransactWriteItems" in sends.operations
    assert await stored_users(service) == before + 1


async def test_the_limit_is_exact_one_byte_over_it_is_refused(service: Service) -> None:
    with dynamodb_sends(service) as sends:
        at_limit = await rpc_error(
            service.stub.RegisterUser(registration_of_size(MAX_REQUEST_BYTES), timeout=TIMEOUT)
        )
        over = await rpc_error(
            service.stub.RegisterUser(registration_of_size(MAX_REQUEST_BYTES + 1), timeout=TIMEOUT)
        )

    # At the limit the request reaches the service, which refuses the name as too long.
    assert at_limit.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert over.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert sends.operations == []


async def test_over_long_fields_under_the_size_limit_are_invalid_argument_and_store_nothing(
    service: Service,
) -> None:
    request = registration(
        first_name="x" * (MAX_REQUEST_BYTES // 2),
        last_name="y" * (NAME_MAX_LENGTH + 1),
        email="a" * 300 + "@example.com",
        password="p" * 5_000,
    )
    assert request.ByteSize() < MAX_REQUEST_BYTES
    before = await stored_users(service)

    with dynamodb_sends(service) as sends:
        error = await rpc_error(service.stub.RegisterUser(request, timeout=TIMEOUT))

    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"first_name", "last_name", "email", "password"}
    assert sends.operations == []
    assert await stored_users(service) == before


async def test_a_compressed_request_that_inflates_past_the_limit_is_refused(
    service: Service,
) -> None:
    # 2 MiB inflated, 2 KiB gzipped: under gRPC's default limit (4 MiB), over the one we set it.
    bomb = registration(first_name="\x00" * (2 * 1024 * 1024))
    assert len(gzip.compress(bomb.SerializeToString())) < MAX_REQUEST_BYTES

    with dynamodb_sends(service) as sends:
        error = await rpc_error(
            service.stub.RegisterUser(bomb, timeout=TIMEOUT, compression=grpc.Compression.Gzip)
        )

    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert sends.operations == []


async def test_oversized_metadata_is_refused_and_the_service_still_serves(
    service: Service,
) -> None:
    with dynamodb_sends(service) as sends:
        error = await rpc_error(
            service.stub.GetUserByEmail(
                pb.GetUserByEmailRequest(email="ada@example.com"),
                timeout=TIMEOUT,
                metadata=[("x-padding", "m" * (64 * 1024))],
            )
        )

    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert sends.operations == []
    user = await service.stub.RegisterUser(registration(), timeout=TIMEOUT)
    assert (await service.stub.GetUser(pb.GetUserRequest(id=user.id), timeout=TIMEOUT)) == user


# --- the service's own refusal: a request id and an access line (issue 13) ------------------------


async def test_a_request_over_the_service_limit_gets_its_request_id_and_an_access_line(
    service: Service, log: JsonLog
) -> None:
    request = registration_of_size(MAX_REQUEST_BYTES + 1024)
    assert request.ByteSize() < GRPC_RECEIVE_LIMIT_BYTES  # gRPC lets it through to the service

    with dynamodb_sends(service) as sends:
        error, request_id = await error_trailers(
            service.stub.RegisterUser(
                request, timeout=TIMEOUT, metadata=with_request_id("too-big-1")
            )
        )

    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.details() == (
        f"the request is {MAX_REQUEST_BYTES + 1024} bytes; "
        f"this service accepts at most {MAX_REQUEST_BYTES}"
    )
    assert request_id == "too-big-1"
    line = log.access("too-big-1")
    assert (line["method"], line["code"]) == (
        "/biome.user.v1.UserService/RegisterUser",
        "RESOURCE_EXHAUSTED",
    )
    assert sends.operations == []


async def test_beyond_grpcs_own_limit_grpc_refuses_alone_without_request_id_or_access_line(
    service: Service, log: JsonLog
) -> None:
    request = registration_of_size(GRPC_RECEIVE_LIMIT_BYTES + 1)

    error, request_id = await error_trailers(
        service.stub.RegisterUser(request, timeout=TIMEOUT, metadata=with_request_id("huge-1"))
    )

    # What the README says: gRPC refuses while receiving, before any interceptor's handler runs.
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert request_id is None
    assert not [e for e in log.entries() if e.get("request_id") == "huge-1"]


async def test_an_oversized_stream_request_is_refused_with_its_request_id_too(
    service: Service, log: JsonLog
) -> None:
    request = pb.WatchEventsRequest(after_cursor="c" * (MAX_REQUEST_BYTES + 1))
    watch = service.stub.WatchEvents(
        request, timeout=TIMEOUT, metadata=with_request_id("too-big-stream")
    )

    error = await rpc_error(watch.read())
    request_id = request_id_in(await watch.trailing_metadata())

    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "this service accepts at most" in (error.details() or "")
    assert request_id == "too-big-stream"
    line = await log.access_eventually("too-big-stream")
    assert line["code"] == "RESOURCE_EXHAUSTED"
