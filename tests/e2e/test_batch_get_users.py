"""BatchGetUsers over a real gRPC channel: order, duplicates, missing ids, limits, bad ids, keys."""

from __future__ import annotations

import base64
import uuid
from typing import TYPE_CHECKING

import grpc
import pytest
from biome.user.v1 import user_service_pb2 as pb
from biome.user.v1 import user_service_pb2_grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.e2e.harness import Service, field_violations, rpc_error
from tests.e2e.secured_service import RPC_TIMEOUT, CallerKeys, SecuredService, bearer
from tests.fault_proxy import FaultProxy

if TYPE_CHECKING:
    from tests.e2e.conftest import ServeThroughProxy

PASSWORD = "correct horse battery"


async def register(
    stub: user_service_pb2_grpc.UserServiceAsyncStub,
    email: str,
    metadata: tuple[tuple[str, str], ...] = (),
) -> pb.User:
    return await stub.RegisterUser(
        pb.RegisterUserRequest(email=email, password=PASSWORD, first_name="Ada", last_name="Byron"),
        metadata=metadata,
        timeout=RPC_TIMEOUT,
    )


def trailer_bytes(error: grpc.aio.AioRpcError) -> int:
    """The status's size on the wire as HTTP/2 counts it: name + value + 32 for each trailer."""
    message = (error.details() or "").encode()
    size = len("grpc-status") + 2 + 32 + len("grpc-message") + len(message) + 32
    for key, value in error.trailing_metadata() or ():
        encoded = base64.b64encode(value) if isinstance(value, bytes) else value.encode()
        size += len(key) + len(encoded) + 32
    return size


async def batch_get(service: Service, ids: list[str]) -> pb.BatchGetUsersResponse:
    return await service.stub.BatchGetUsers(pb.BatchGetUsersRequest(ids=ids), timeout=RPC_TIMEOUT)


async def test_answers_every_id_in_the_requested_order_reporting_missing_ones_in_place(
    service: Service,
) -> None:
    ada = await register(service.stub, "ada@example.com")
    grace = await register(service.stub, "grace@example.com")
    missing = str(uuid.uuid4())

    reply = await batch_get(service, [grace.id, missing, ada.id.upper(), grace.id])

    assert [(r.id, r.found) for r in reply.results] == [
        (grace.id, True),
        (missing, False),
        (ada.id, True),
        (grace.id, True),
    ]
    assert [r.user for r in reply.results] == [grace, pb.User(), ada, grace]
    assert not reply.results[1].HasField("user")


async def test_a_deleted_user_is_reported_missing_and_a_changed_one_as_it_is_now(
    service: Service,
) -> None:
    leaving = await register(service.stub, "leaving@example.com")
    renamed = await register(service.stub, "renamed@example.com")
    await service.stub.DeleteUser(pb.DeleteUserRequest(id=leaving.id, expected_version=1))
    updated = await service.stub.UpdateProfile(
        pb.UpdateProfileRequest(id=renamed.id, first_name="Augusta", expected_version=1)
    )

    reply = await batch_get(service, [leaving.id, renamed.id])

    assert [(r.found, r.user) for r in reply.results] == [(False, pb.User()), (True, updated)]


async def test_reads_one_hundred_ids_in_one_call(service: Service) -> None:
    users = [await register(service.stub, f"user{i}@example.com") for i in range(3)]
    ids = [str(uuid.uuid4()) for _ in range(97)] + [user.id for user in users]

    reply = await batch_get(service, ids)

    assert [r.id for r in reply.results] == ids
    assert [r.user for r in reply.results if r.found] == users


@pytest.mark.parametrize("count", [0, 101])
async def test_refuses_an_empty_list_or_more_than_one_hundred_ids(
    service: Service, count: int
) -> None:
    error = await rpc_error(batch_get(service, [str(uuid.uuid4()) for _ in range(count)]))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"ids"}


async def test_names_each_id_that_is_no_uuid_by_its_position(service: Service) -> None:
    good = str(uuid.uuid4())

    error = await rpc_error(batch_get(service, [good, "not-a-uuid", good, "", good + "0"]))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"ids[1]", "ids[3]", "ids[4]"}


async def test_one_hundred_bad_ids_get_a_refusal_any_grpc_client_accepts(
    service: Service,
) -> None:
    """The violations ride in the status trailers, which gRPC clients cap at 8 KiB by default:
    the first ten bad ids are named, the rest counted."""
    error = await rpc_error(batch_get(service, ["x" * 600] * 100))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(error)
    assert set(violations) == {f"ids[{i}]" for i in range(10)} | {"ids"}
    assert violations["ids"] == "90 more ids after those named are not UUIDs"
    assert trailer_bytes(error) < 8 * 1024, trailer_bytes(error)


async def test_a_key_with_users_read_may_batch_read_and_a_roleless_key_may_not(
    secured: SecuredService, keys: CallerKeys
) -> None:
    async with secured.channel() as channel:
        stub = user_service_pb2_grpc.UserServiceStub(channel)
        user = await register(stub, "plain@example.com", metadata=bearer(keys.plain))
        request = pb.BatchGetUsersRequest(ids=[user.id])

        reply = await stub.BatchGetUsers(request, metadata=bearer(keys.reader), timeout=RPC_TIMEOUT)
        roleless = await rpc_error(
            stub.BatchGetUsers(request, metadata=bearer(keys.plain), timeout=RPC_TIMEOUT)
        )
        refused = await rpc_error(stub.BatchGetUsers(request, timeout=RPC_TIMEOUT))

    assert [(r.found, r.user) for r in reply.results] == [(True, user)]
    assert roleless.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_throttled_batch_read_is_unavailable_with_retry_info_never_a_partial_answer(
    fault_proxy: FaultProxy, serve_through_proxy: ServeThroughProxy
) -> None:
    async with serve_through_proxy(dynamodb_max_attempts=2) as service:
        user = await register(service.stub, "throttled@example.com")
        fault_proxy.throttle(1.0, operations=["BatchGetItem"])

        error = await rpc_error(batch_get(service, [user.id, str(uuid.uuid4())]))

        fault_proxy.pass_through()
        reply = await batch_get(service, [user.id])

    assert error.code() == grpc.StatusCode.UNAVAILABLE
    status = rpc_status.from_call(error)  # type: ignore[arg-type, unused-ignore]
    assert status is not None
    assert any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in status.details)
    assert len(fault_proxy.requests("BatchGetItem")) == 3  # two attempts refused, one served
    assert [(r.found, r.user) for r in reply.results] == [(True, user)]
