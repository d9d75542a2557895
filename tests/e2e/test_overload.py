"""Overload over real gRPC against moto: with small caps, calls beyond them are refused at once
with RESOURCE_EXHAUSTED and a RetryInfo, the rest succeed, and the refused ones changed nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

import grpc
from biome.user.v1 import user_service_pb2 as pb
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from tests.e2e.auth_helpers import PASSWORD, TIMEOUT, register, sign_in
from tests.e2e.conftest import ServeThroughProxy, serving
from tests.e2e.harness import Service, service_settings
from tests.fault_proxy import FaultProxy
from tests.smtp_server import CapturingSmtpServer

BACKEND_DELAY_SECONDS = 0.5
PROMPT_SECONDS = 0.4  # a refusal comes sooner than the slow backend could have answered


async def timed(call: Awaitable[Any]) -> tuple[Any, float]:
    """The call's reply or its error, and how long it took."""
    started = time.monotonic()
    try:
        outcome = await call
    except grpc.aio.AioRpcError as error:
        outcome = error
    return outcome, time.monotonic() - started


def retry_delay_seconds(error: grpc.aio.AioRpcError) -> float:
    status = rpc_status.from_call(error)  # type: ignore[arg-type, unused-ignore]
    assert status is not None, "the refusal carries no google.rpc.Status"
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            return float(retry.retry_delay.ToTimedelta().total_seconds())
    raise AssertionError("the refusal carries no RetryInfo")


def split(
    outcomes: list[tuple[Any, float]],
) -> tuple[list[Any], list[tuple[grpc.aio.AioRpcError, float]]]:
    succeeded = [o for o, _ in outcomes if not isinstance(o, grpc.aio.AioRpcError)]
    refused = [(o, t) for o, t in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    return succeeded, refused


def assert_refused_promptly_with_retry_info(
    refused: list[tuple[grpc.aio.AioRpcError, float]], prompt_seconds: float
) -> None:
    for error, took in refused:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
        assert "retry later" in (error.details() or "")
        assert retry_delay_seconds(error) > 0
        assert took < prompt_seconds, f"a refusal took {took:.2f} s"


async def test_calls_beyond_the_concurrency_cap_are_refused_at_once_and_the_rest_succeed(
    serve_through_proxy: ServeThroughProxy, fault_proxy: FaultProxy
) -> None:
    async with serve_through_proxy(max_concurrent_rpcs=4) as service:
        account = await register(service)
        fault_proxy.delay(BACKEND_DELAY_SECONDS, operations=["GetItem"])
        request = pb.GetUserRequest(id=account.id)

        outcomes = await asyncio.gather(
            *(timed(service.stub.GetUser(request, timeout=TIMEOUT)) for _ in range(20))
        )
        health = await health_pb2_grpc.HealthStub(service.channel).Check(  # type: ignore[attr-defined]  # the stub's HealthStub declares no RPCs
            health_pb2.HealthCheckRequest(), timeout=TIMEOUT
        )
        fault_proxy.pass_through()
        after = await service.stub.GetUser(request, timeout=TIMEOUT)

    succeeded, refused = split(outcomes)
    assert len(succeeded) == 4 and len(refused) == 16
    assert all(user.id == account.id for user in succeeded)
    assert_refused_promptly_with_retry_info(refused, PROMPT_SECONDS)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert after.id == account.id


async def test_sign_ins_beyond_the_hashing_queue_are_refused_at_once_and_change_nothing(
    moto_endpoint: str, smtp_server: CapturingSmtpServer
) -> None:
    # One hashing thread, two waiting places, and hashes slow enough (about 0.3 s or more) for a
    # burst of sign-ins to fill the queue while the first ones are hashed.
    settings = service_settings(
        moto_endpoint,
        smtp_server,
        password_hash_workers=1,
        password_hash_max_waiting=2,
        argon2_time_cost=16,
    )
    async with serving(settings, smtp_server) as service:
        account = await register(service)

        outcomes = await asyncio.gather(
            *(timed(sign_in(service, account.email, PASSWORD)) for _ in range(20))
        )
        stored = await stored_user(service, account.id)
        sessions = await service.scan(service.tables.sessions)
        later = await sign_in(service, account.email, PASSWORD)

    succeeded, refused = split(outcomes)
    assert len(succeeded) >= 3 and refused, (len(succeeded), len(refused))
    assert len(succeeded) + len(refused) == 20
    slowest_success = max(took for o, took in outcomes if o in succeeded)
    assert_refused_promptly_with_retry_info(refused, slowest_success)
    # A refused sign-in opened no session and counted no failure.
    assert len(sessions) == len(succeeded)
    assert "FailedLogins" not in stored  # no failure counted: no counter stored
    assert later.refresh_token


async def stored_user(service: Service, user_id: str) -> dict[str, Any]:
    item = await service.dynamodb.get_item(
        TableName=service.tables.users, Key={"Id": {"S": user_id}}, ConsistentRead=True
    )
    user: dict[str, Any] = item["Item"]
    return user
