"""Lazy migration end to end: the service over a real gRPC channel, DynamoDB (moto), and a real
HTTP server on loopback standing in for the old system (it checks every request's signature)."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator

import grpc
import pytest_asyncio
from biome.user.v1 import user_service_pb2 as pb
from pydantic import SecretStr

from tests.e2e.auth_helpers import (
    PASSWORD,
    TIMEOUT,
    WRONG_PASSWORD,
    reply_of,
    sign_in,
    sign_in_error,
    unique_email,
    verify_access_token,
)
from tests.e2e.conftest import serving
from tests.e2e.harness import Service, rpc_error, service_settings
from tests.legacy_system import OldSystem, old_system
from tests.smtp_server import CapturingSmtpServer

KEY = os.urandom(32)
OLD_ID = "3f2b8a3e-1c4d-4e5f-9a6b-7c8d9e0f1a2b"


@pytest_asyncio.fixture
async def system() -> AsyncIterator[OldSystem]:
    async with old_system(KEY) as running:
        yield running


@pytest_asyncio.fixture
async def migrating(
    moto_endpoint: str, smtp_server: CapturingSmtpServer, system: OldSystem
) -> AsyncIterator[Service]:
    settings = service_settings(
        moto_endpoint,
        smtp_server,
        legacy_auth_url=system.url,
        legacy_auth_hmac_key=SecretStr(base64.b64encode(KEY).decode()),
        legacy_auth_timeout_seconds=1.0,
    )
    async with serving(settings, smtp_server) as running:
        yield running


async def test_a_user_of_the_old_system_signs_in_and_is_here_from_then_on(
    migrating: Service, system: OldSystem
) -> None:
    email = unique_email("old")
    system.add(email, PASSWORD, id=OLD_ID, first_name="Grace", last_name="Hopper")

    signed_in = await sign_in(migrating, email, PASSWORD)

    claims = await verify_access_token(migrating, signed_in.access_token)
    assert claims["sub"] == OLD_ID
    assert system.bad_signatures == 0
    assert system.requests == [{"email": email, "password": PASSWORD}]
    user = await migrating.stub.GetUserByEmail(
        pb.GetUserByEmailRequest(email=email), timeout=TIMEOUT
    )
    assert (user.id, user.first_name, user.last_name) == (OLD_ID, "Grace", "Hopper")
    assert user.email_verified
    # From now on the service knows the user: the old system is not asked again.
    await sign_in(migrating, email, PASSWORD)
    wrong = await sign_in_error(migrating, email, WRONG_PASSWORD)
    assert wrong.code() == grpc.StatusCode.UNAUTHENTICATED
    assert len(system.requests) == 1


async def test_refused_slow_or_failing_old_systems_all_answer_as_a_wrong_password(
    migrating: Service, system: OldSystem
) -> None:
    known = unique_email("known")
    system.add(known, PASSWORD)
    await sign_in(migrating, known, PASSWORD)  # migrated: now a user of this service
    # A user of this service with a wrong password: the reply every case below must match.
    expected = reply_of(await sign_in_error(migrating, known, WRONG_PASSWORD))
    email = unique_email("old")
    system.add(email, PASSWORD)

    refused = await sign_in_error(migrating, email, WRONG_PASSWORD)
    system.behaviour = "slow"
    slow = await sign_in_error(migrating, email, PASSWORD)
    system.behaviour = "not-json"
    garbage = await sign_in_error(migrating, email, PASSWORD)

    for error in (refused, slow, garbage):
        assert reply_of(error) == expected
    missing = await rpc_error(
        migrating.stub.GetUserByEmail(pb.GetUserByEmailRequest(email=email), timeout=TIMEOUT)
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    assert len(system.requests) == 4


async def test_concurrent_first_sign_ins_of_one_user_create_one_user(
    migrating: Service, system: OldSystem
) -> None:
    email = unique_email("racer")
    system.add(email, PASSWORD, id=OLD_ID)

    results = await asyncio.gather(*(sign_in(migrating, email, PASSWORD) for _ in range(4)))

    subjects = {(await verify_access_token(migrating, r.access_token))["sub"] for r in results}
    assert subjects == {OLD_ID}
    items = await migrating.scan(migrating.tables.emails)
    assert len(items) == 1
