"""A DynamoDB slower than the caller's deadline: DEADLINE_EXCEEDED, and exactly what may still land.

What is promised:

- An RPC whose deadline passes ends with DEADLINE_EXCEEDED at its deadline, however slow
  DynamoDB is.
- No DynamoDB request starts after the caller's deadline has passed: neither the next step of
  a use case (an UpdateProfile whose read outlasts the deadline never sends its write, and the
  user stays as it was) nor a botocore retry of an attempt that timed out.

What cannot be promised:

- A write already sent when the deadline passes may still be applied. DynamoDB does not take
  back a request it has received; its answer, or the request itself, may merely be late. So
  DEADLINE_EXCEEDED, like UNAVAILABLE (which may follow a timeout or a lost connection), means
  "the outcome is unknown", not "nothing happened".

What makes that safe: every write is conditional, so repeating the same RPC never applies it
twice; it reports the state instead. RegisterUser again answers ALREADY_EXISTS; UpdateProfile
again, with the expected_version it sent, answers ABORTED; DeleteUser again answers NOT_FOUND;
the account exists once. Read the user to learn which outcome it was. Within one RPC,
botocore's own retries of a TransactWriteItems re-send the same ClientRequestToken, so DynamoDB
applies it at most once (moto, used in these tests, ignores the token).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import grpc
import pytest
from biome.user.v1 import user_service_pb2 as pb

from tests.e2e.harness import Service, rpc_error
from tests.fault_proxy import FaultProxy

if TYPE_CHECKING:
    from tests.e2e.conftest import ServeThroughProxy

DEADLINE = 1.5  # seconds the caller gives each RPC here
# The last test needs each write sent before the deadline, even on a loaded machine (RegisterUser
# hashes the password first): its RPCs get longer.
WRITE_DEADLINE = 3.0
LATENCY = 4.0  # seconds the proxy holds a request (or its answer): past either deadline
# Long enough that only the deadline ends an RPC; health probes rare, so they add no noise.
SETTINGS = {"dynamodb_read_timeout": 20.0, "health_check_interval_seconds": 30.0}
PASSWORD = "correct horse battery"

Code = grpc.StatusCode


def registration(email: str) -> pb.RegisterUserRequest:
    return pb.RegisterUserRequest(
        email=email, password=PASSWORD, first_name="Ada", last_name="Lovelace"
    )


def about(user_id: str, proxy: FaultProxy, operation: str) -> list[Any]:
    """The recorded requests of ``operation`` that name ``user_id`` (not the health probes)."""
    return [r for r in proxy.requests(operation) if user_id.encode() in r.body]


def answer_late(proxy: FaultProxy) -> None:
    """TransactWriteItems reach DynamoDB at once; their answers come LATENCY seconds later."""
    proxy.delay(LATENCY, operations=["TransactWriteItems"], after_forwarding=True)


async def stored_user(service: Service, user_id: str) -> dict[str, Any] | None:
    response = await service.dynamodb.get_item(
        TableName=service.tables.users, Key={"Id": {"S": user_id}}, ConsistentRead=True
    )
    item: dict[str, Any] | None = response.get("Item")
    return item


async def deadline_exceeded(call: Any) -> float:
    """Seconds until the RPC failed, which must be with DEADLINE_EXCEEDED."""
    started = time.monotonic()
    error = await rpc_error(call)
    assert error.code() is Code.DEADLINE_EXCEEDED, error
    return time.monotonic() - started


@pytest.mark.slow
async def test_latency_above_the_deadline_gives_deadline_exceeded_and_no_request_after_it(
    fault_proxy: FaultProxy, serve_through_proxy: ServeThroughProxy
) -> None:
    # Each GetItem attempt times out after 0.6 s and botocore would try 6 times (3.6 s): no more
    # than 3 attempts can start before a 1.5 s deadline.
    settings = {**SETTINGS, "dynamodb_read_timeout": 0.6, "dynamodb_max_attempts": 6}
    async with serve_through_proxy(**settings) as service:
        user = await service.stub.RegisterUser(registration(f"{uuid4().hex[:8]}@example.com"))
        fault_proxy.delay(LATENCY, operations=["GetItem"])

        took = await deadline_exceeded(
            service.stub.GetUser(pb.GetUserRequest(id=user.id), timeout=DEADLINE)
        )
        assert took < LATENCY - 1.0  # ended by the deadline, not by the backend
        await asyncio.sleep(6 * 0.6 + 1.0)  # when all of botocore's attempts would have begun

        attempts = about(user.id, fault_proxy, "GetItem")
        assert 1 <= len(attempts) <= 3, [a.received_at for a in attempts]
        fault_proxy.pass_through()
        assert (await service.stub.GetUser(pb.GetUserRequest(id=user.id))).id == user.id


@pytest.mark.slow
async def test_a_use_case_whose_read_outlasts_the_deadline_never_sends_its_write(
    fault_proxy: FaultProxy, serve_through_proxy: ServeThroughProxy
) -> None:
    async with serve_through_proxy(**SETTINGS) as service:
        user = await service.stub.RegisterUser(registration(f"{uuid4().hex[:8]}@example.com"))
        fault_proxy.clear_record()
        fault_proxy.delay(LATENCY, operations=["GetItem"])

        update = pb.UpdateProfileRequest(id=user.id, first_name="Augusta", expected_version=1)
        took = await deadline_exceeded(service.stub.UpdateProfile(update, timeout=DEADLINE))
        assert took < LATENCY - 1.0
        await asyncio.sleep(LATENCY - took + 1.5)  # the read has reached DynamoDB and returned
        fault_proxy.pass_through()

        assert about(user.id, fault_proxy, "GetItem"), "the read never reached the proxy"
        assert about(user.id, fault_proxy, "TransactWriteItems") == []
        item = await stored_user(service, user.id)
        assert item is not None
        assert (item["Version"]["N"], item["FirstName"]["S"]) == ("1", "Ada")
        # Nothing changed: the same update, made again, applies on version 1.
        assert (await service.stub.UpdateProfile(update)).version == 2


@pytest.mark.slow
async def test_a_write_answered_after_the_deadline_lands_and_retrying_it_is_safe(
    fault_proxy: FaultProxy, serve_through_proxy: ServeThroughProxy
) -> None:
    email = f"{uuid4().hex[:8]}@example.com"
    async with serve_through_proxy(**SETTINGS) as service:
        # RegisterUser: the write lands, the caller sees DEADLINE_EXCEEDED; again: ALREADY_EXISTS.
        answer_late(fault_proxy)
        await deadline_exceeded(
            service.stub.RegisterUser(registration(email), timeout=WRITE_DEADLINE)
        )
        fault_proxy.pass_through()
        again = await rpc_error(service.stub.RegisterUser(registration(email)))
        assert again.code() is Code.ALREADY_EXISTS
        user = await service.stub.GetUserByEmail(pb.GetUserByEmailRequest(email=email))
        assert user.version == 1
        assert [i["Id"]["S"] for i in await service.scan(service.tables.users)] == [user.id]
        assert [i["UserId"]["S"] for i in await service.scan(service.tables.emails)] == [user.id]

        # UpdateProfile: lands once; the same request again is ABORTED, not applied twice.
        update = pb.UpdateProfileRequest(id=user.id, first_name="Augusta", expected_version=1)
        answer_late(fault_proxy)
        await deadline_exceeded(service.stub.UpdateProfile(update, timeout=WRITE_DEADLINE))
        fault_proxy.pass_through()
        assert (await rpc_error(service.stub.UpdateProfile(update))).code() is Code.ABORTED
        item = await stored_user(service, user.id)
        assert item is not None
        assert (item["Version"]["N"], item["FirstName"]["S"]) == ("2", "Augusta")

        # DeleteUser: lands; the same request again is NOT_FOUND; no guard is left behind.
        delete = pb.DeleteUserRequest(id=user.id, expected_version=2)
        answer_late(fault_proxy)
        await deadline_exceeded(service.stub.DeleteUser(delete, timeout=WRITE_DEADLINE))
        fault_proxy.pass_through()
        assert (await rpc_error(service.stub.DeleteUser(delete))).code() is Code.NOT_FOUND
        assert await service.scan(service.tables.users) == []
        assert await service.scan(service.tables.emails) == []

        # One transaction per write that landed (botocore did not retry them); the repeated
        # UpdateProfile and DeleteUser stopped at their read, and wrote nothing.
        assert len(about(user.id, fault_proxy, "TransactWriteItems")) == 3
