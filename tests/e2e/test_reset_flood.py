"""A flood of RequestPasswordReset calls for one address, over real gRPC against moto and a real
SMTP server: at most one mail per cool-down, the same reply every time, no ERROR in the log, and
the work after the reply merged per address rather than one job per request."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from biome.user.v1 import user_service_pb2 as pb

from tests.e2e.auth_helpers import NEW_PASSWORD, TIMEOUT, register, sign_in, unique_email
from tests.e2e.conftest import ServeThroughProxy
from tests.e2e.harness import Service
from tests.fault_proxy import FaultProxy
from tests.smtp_server import reset_token_from

# 200 requests in waves over about two seconds: longer than one reset's work takes, so the flood
# meets both the merging of work under way and the limit kept on the user item.
WAVES, PER_WAVE, WAVE_PAUSE_SECONDS = 10, 20, 0.2
FLOOD = WAVES * PER_WAVE
SETTLE_SECONDS = 1.5  # after the flood: time for any further (wrong) mail to arrive


async def flood(service: Service, email: str) -> list[pb.RequestPasswordResetResponse]:
    request = pb.RequestPasswordResetRequest(email=email)
    replies: list[pb.RequestPasswordResetResponse] = []
    for _ in range(WAVES):
        replies += await asyncio.gather(
            *(service.stub.RequestPasswordReset(request, timeout=TIMEOUT) for _ in range(PER_WAVE))
        )
        await asyncio.sleep(WAVE_PAUSE_SECONDS)
    return replies


def mails_to(service: Service, email: str) -> int:
    return sum(1 for message in service.smtp.messages if email in str(message["To"]))


async def reset_events(service: Service, user_id: str) -> int:
    page = await service.dynamodb.query(
        TableName=service.tables.events,
        KeyConditionExpression="UserId = :id",
        ExpressionAttributeValues={":id": {"S": user_id}},
        ConsistentRead=True,
    )
    return sum(1 for item in page["Items"] if item["Type"]["S"] == "PasswordResetRequested")


async def test_a_flood_for_one_address_mails_once_with_the_same_reply_and_no_error(
    serve_through_proxy: ServeThroughProxy,
    fault_proxy: FaultProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with serve_through_proxy() as service:
        account = await register(service, label="flooded")
        nobody = unique_email("nobody")
        fault_proxy.clear_record()

        started = time.monotonic()
        replies = await flood(service, account.email)
        elapsed = time.monotonic() - started
        first = await service.smtp.wait_for_message(to=account.email)
        await asyncio.sleep(SETTLE_SECONDS)
        reads = len(fault_proxy.requests("GetItem"))
        writes = len(fault_proxy.requests("TransactWriteItems"))
        unknown_replies = await flood(service, nobody)
        await asyncio.sleep(SETTLE_SECONDS)

        assert elapsed < 10, f"{FLOOD} requests took {elapsed:.1f} s"
        assert len(replies) == len(unknown_replies) == FLOOD
        assert all(reply == pb.RequestPasswordResetResponse() for reply in replies)
        assert all(reply == pb.RequestPasswordResetResponse() for reply in unknown_replies)
        assert mails_to(service, account.email) == 1
        assert mails_to(service, nobody) == 0
        assert await reset_events(service, account.id) == 1
        # One job per request would read the guard and the user for each (2 x FLOOD reads).
        assert writes == 1 and reads < FLOOD, (reads, writes)
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors == [], [r.getMessage() for r in errors]
        # The one link sent still works: no later request replaced its token.
        await service.stub.ResetPassword(
            pb.ResetPasswordRequest(reset_token=reset_token_from(first), new_password=NEW_PASSWORD),
            timeout=TIMEOUT,
        )
        assert (await sign_in(service, account.email, NEW_PASSWORD)).refresh_token


async def test_after_the_cool_down_a_second_flood_mails_exactly_once_more(
    service: Service,
) -> None:
    account = await register(service, label="flooded-twice")
    await flood(service, account.email)
    await service.smtp.wait_for_message(to=account.email)
    await asyncio.sleep(SETTLE_SECONDS)

    service.clock.advance(seconds=61)
    await flood(service, account.email)
    second = await service.smtp.wait_for_message(to=account.email)
    await asyncio.sleep(SETTLE_SECONDS)

    assert mails_to(service, account.email) == 2
    assert await reset_events(service, account.id) == 2
    await service.stub.ResetPassword(
        pb.ResetPasswordRequest(reset_token=reset_token_from(second), new_password=NEW_PASSWORD),
        timeout=TIMEOUT,
    )
