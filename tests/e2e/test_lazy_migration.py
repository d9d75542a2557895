"""Lazy migration end to end: the service over a real gRPC channel, DynamoDB (moto), and a real
HTTP server on loopback standing in for the old system (it checks every request's signature)."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import AsyncIterator

import grpc
import pytest
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
from tests.smtp_server import CapturingSmtpServer, reset_token_from

KEY = os.urandom(32)
OLD_ID = "3f2b8a3e-1c4d-4e5f-9a6b-7c8d9e0f1a2b"
NEW_PASSWORD = "Heron-Basket-31"
QUIET_PERIOD = 0.5  # seconds to wait for a mail that must not come
# The patient service waits this long for the old system: far beyond the RPC's own deadline
# (TIMEOUT), so a reply that waited for the old system's answer would miss its deadline.
PATIENT_HOOK_TIMEOUT_SECONDS = 30.0  # the setting's ceiling; TIMEOUT is 10


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


@pytest_asyncio.fixture
async def patient(
    moto_endpoint: str, smtp_server: CapturingSmtpServer, system: OldSystem
) -> AsyncIterator[Service]:
    """The hook on, waiting for the old system far longer than any RPC's deadline."""
    settings = service_settings(
        moto_endpoint,
        smtp_server,
        legacy_auth_url=system.url,
        legacy_auth_hmac_key=SecretStr(base64.b64encode(KEY).decode()),
        legacy_auth_timeout_seconds=PATIENT_HOOK_TIMEOUT_SECONDS,
    )
    async with serving(settings, smtp_server) as running:
        yield running


async def request_reset(service: Service, email: str) -> pb.RequestPasswordResetResponse:
    return await service.stub.RequestPasswordReset(
        pb.RequestPasswordResetRequest(email=email), timeout=TIMEOUT
    )


async def assert_no_mail_to(service: Service, email: str) -> None:
    with pytest.raises(AssertionError, match="no new message"):
        await service.smtp.wait_for_message(to=email, timeout=QUIET_PERIOD)


async def assert_unknown(service: Service, email: str) -> None:
    missing = await rpc_error(
        service.stub.GetUserByEmail(pb.GetUserByEmailRequest(email=email), timeout=TIMEOUT)
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND


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


# --- password reset: the old system is asked, with the email alone, after the reply ------------


async def test_a_reset_for_a_user_of_the_old_system_creates_it_and_mails_a_working_reset(
    migrating: Service, system: OldSystem
) -> None:
    email = unique_email("forgot")
    system.add(email, PASSWORD, id=OLD_ID, first_name="Grace", last_name="Hopper")

    reply = await request_reset(migrating, email)

    assert reply == pb.RequestPasswordResetResponse()
    token = reset_token_from(await migrating.smtp.wait_for_message(to=email))
    assert system.requests == [{"email": email, "purpose": "password_reset"}]
    assert system.bad_signatures == 0
    user = await migrating.stub.GetUserByEmail(
        pb.GetUserByEmailRequest(email=email), timeout=TIMEOUT
    )
    assert (user.id, user.first_name, user.email_verified) == (OLD_ID, "Grace", True)
    # The old password does not work here, and the old system is not asked again.
    wrong = await sign_in_error(migrating, email, PASSWORD)
    assert wrong.code() == grpc.StatusCode.UNAUTHENTICATED
    await migrating.stub.ResetPassword(
        pb.ResetPasswordRequest(reset_token=token, new_password=NEW_PASSWORD), timeout=TIMEOUT
    )
    signed_in = await sign_in(migrating, email, NEW_PASSWORD)
    assert (await verify_access_token(migrating, signed_in.access_token))["sub"] == OLD_ID
    assert len(system.requests) == 1


async def test_a_reset_for_an_email_neither_system_knows_creates_and_sends_nothing(
    migrating: Service, system: OldSystem
) -> None:
    email = unique_email("nobody")
    reply = await request_reset(migrating, email)
    assert reply == pb.RequestPasswordResetResponse()
    await assert_no_mail_to(migrating, email)
    assert system.requests == [{"email": email, "purpose": "password_reset"}]
    await assert_unknown(migrating, email)


@pytest.mark.parametrize("behaviour", ["slow", "not-json", "wrong-shape", "error"])
async def test_a_reset_with_the_old_system_failing_creates_and_sends_nothing(
    migrating: Service, system: OldSystem, behaviour: str
) -> None:
    email = unique_email("failing")
    system.add(email, PASSWORD)
    system.behaviour = behaviour  # "slow": 5 s, past the 1 s timeout

    reply = await request_reset(migrating, email)

    assert reply == pb.RequestPasswordResetResponse()
    await system_asked(system, 1)
    await assert_no_mail_to(migrating, email)
    await asyncio.sleep(1.0)  # past the timeout: the slow answer was given up on
    await assert_no_mail_to(migrating, email)
    await assert_unknown(migrating, email)


async def test_a_reset_with_the_old_system_down_creates_and_sends_nothing(
    moto_endpoint: str, smtp_server: CapturingSmtpServer
) -> None:
    async with old_system(KEY) as gone:
        url = gone.url  # a port nothing listens on once the block ends
    settings = service_settings(
        moto_endpoint,
        smtp_server,
        legacy_auth_url=url,
        legacy_auth_hmac_key=SecretStr(base64.b64encode(KEY).decode()),
        legacy_auth_timeout_seconds=1.0,
    )
    email = unique_email("down")
    async with serving(settings, smtp_server) as service:
        assert await request_reset(service, email) == pb.RequestPasswordResetResponse()
        await assert_no_mail_to(service, email)
        await assert_unknown(service, email)


async def test_the_reply_does_not_wait_for_a_slow_old_system(
    patient: Service, system: OldSystem
) -> None:
    email = unique_email("slowold")
    system.add(email, PASSWORD)
    system.hold = asyncio.Event()  # the old system answers nothing until the reply is in

    # A reply that waited for the old system would miss the RPC's deadline (TIMEOUT), the hook
    # waiting far longer: no clock is read here, the reply either comes first or not at all.
    reply = await request_reset(patient, email)
    assert reply == pb.RequestPasswordResetResponse()

    system.hold.set()
    await patient.smtp.wait_for_message(to=email, timeout=TIMEOUT)


async def test_concurrent_resets_of_one_new_email_create_one_user(
    migrating: Service, system: OldSystem
) -> None:
    email = unique_email("resetrace")
    system.add(email, PASSWORD, id=OLD_ID)

    await asyncio.gather(*(request_reset(migrating, email) for _ in range(4)))

    await migrating.smtp.wait_for_message(to=email)
    await asyncio.sleep(QUIET_PERIOD)  # the other jobs ran, or found the user
    items = await migrating.scan(migrating.tables.emails)
    assert len(items) == 1
    user = await migrating.stub.GetUserByEmail(
        pb.GetUserByEmailRequest(email=email), timeout=TIMEOUT
    )
    assert user.id == OLD_ID


async def system_asked(system: OldSystem, times: int, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while len(system.requests) < times:
        assert time.monotonic() < deadline, system.requests
        await asyncio.sleep(0.01)
