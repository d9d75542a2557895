"""Many clients registering the same email at once, in different letter cases: exactly one wins."""

from __future__ import annotations

import asyncio
import random

import grpc
from biome.user.v1 import user_service_pb2 as pb

from tests.e2e.harness import Service

CONTENDERS = 50


def _random_case(text: str, rng: random.Random) -> str:
    return "".join(ch.upper() if rng.random() < 0.5 else ch.lower() for ch in text)


async def test_concurrent_registrations_of_one_email_in_mixed_case_create_exactly_one_user(
    service: Service,
) -> None:
    rng = random.Random(20261126)
    requests = [
        pb.RegisterUserRequest(
            email=_random_case("grace.hopper@example.com", rng),
            password="hunter2-hunter2",
            first_name=f"Grace{i}",
            last_name="Hopper",
        )
        for i in range(CONTENDERS)
    ]

    outcomes = await asyncio.gather(
        *(service.stub.RegisterUser(request) for request in requests), return_exceptions=True
    )

    winners = [outcome for outcome in outcomes if isinstance(outcome, pb.User)]
    losers = [outcome for outcome in outcomes if not isinstance(outcome, pb.User)]
    assert len(winners) == 1, f"{len(winners)} registrations succeeded"
    codes = [error.code() if isinstance(error, grpc.aio.AioRpcError) else error for error in losers]
    assert set(codes) == {grpc.StatusCode.ALREADY_EXISTS}, codes
    user_items = await service.scan(service.tables.users)
    guard_items = await service.scan(service.tables.emails)
    assert [item["Id"]["S"] for item in user_items] == [winners[0].id]
    assert [item["UserId"]["S"] for item in guard_items] == [winners[0].id]
