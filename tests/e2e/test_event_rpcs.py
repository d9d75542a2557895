"""ListUserEvents and WatchEvents over a real gRPC channel, on the service writing real events."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import grpc
import pytest
import pytest_asyncio
from biome.user.v1 import user_service_pb2 as pb
from biome.user.v1 import user_service_pb2_grpc
from google.protobuf import text_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from domain.events import DomainEvent, ProfileUpdated, UserRegistered
from persistence.event_mapper import event_to_item
from server.settings import Settings
from tests.e2e.auth_helpers import PASSWORD, TIMEOUT, register, sign_in
from tests.e2e.conftest import serving
from tests.e2e.harness import Service, field_violations, rpc_error, service_settings
from tests.smtp_server import CapturingSmtpServer, reset_token_from

pytestmark = pytest.mark.slow

SETTLE = 2.1  # seconds: the least the settings take (the commit window is 2 s)
POLL = 0.2
# How long a new event may take to come: the settle delay, a poll, and a generous margin.
DELIVERY = SETTLE + POLL + 10.0
GRACE = 2.0


def event_settings(moto_endpoint: str, smtp: CapturingSmtpServer, **overrides: Any) -> Settings:
    """The service's settings with an events table of its own and short stream delays."""
    return service_settings(
        moto_endpoint,
        smtp,
        events_table_name=f"UserEvents-{uuid.uuid4().hex[:8]}",
        events_settle_seconds=SETTLE,
        events_poll_interval_seconds=POLL,
        shutdown_grace_seconds=GRACE,
        **overrides,
    )


@pytest_asyncio.fixture
async def service(moto_endpoint: str, smtp_server: CapturingSmtpServer) -> AsyncIterator[Service]:
    async with serving(event_settings(moto_endpoint, smtp_server), smtp_server) as running:
        yield running


async def list_all(service: Service, user_id: str, page_size: int = 2) -> list[pb.UserEvent]:
    events: list[pb.UserEvent] = []
    token = ""
    for _ in range(50):
        page = await service.stub.ListUserEvents(
            pb.ListUserEventsRequest(user_id=user_id, page_size=page_size, page_token=token),
            timeout=TIMEOUT,
        )
        events.extend(page.events)
        token = page.next_page_token
        if not token:
            return events
    raise AssertionError("ListUserEvents never ended")


async def take(call: Any, count: int) -> list[pb.UserEvent]:
    """The next ``count`` events of a WatchEvents call, each within the delivery bound."""
    events = []
    for _ in range(count):
        event = await asyncio.wait_for(call.read(), DELIVERY)
        assert isinstance(event, pb.UserEvent), "the stream ended"
        events.append(event)
    return events


async def nothing_more(call: Any) -> None:
    """No event arrives while a new one would have had time to settle and be sent."""
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(call.read(), SETTLE + 4 * POLL + 1.0)


def kinds(events: list[pb.UserEvent]) -> list[str | None]:
    return [event.WhichOneof("kind") for event in events]


async def seed(service: Service, event: DomainEvent, sequence: int, recorded_at: datetime) -> None:
    """Writes an event item straight into the service's events table."""
    item = event_to_item(
        event, sequence=sequence, recorded_at=recorded_at, expires_at=recorded_at + timedelta(30)
    )
    await service.dynamodb.put_item(TableName=service.tables.events, Item=item)


async def test_list_user_events_gives_the_events_of_real_rpcs_in_order_without_secrets(
    service: Service,
) -> None:
    account = await register(service, label="events")
    user = await service.stub.UpdateProfile(
        pb.UpdateProfileRequest(id=account.id, first_name="Augusta", expected_version=1),
        timeout=TIMEOUT,
    )
    signed_in = await sign_in(service, account.email, PASSWORD)
    await service.stub.Logout(
        pb.LogoutRequest(refresh_token=signed_in.refresh_token), timeout=TIMEOUT
    )
    await service.stub.RequestPasswordReset(
        pb.RequestPasswordResetRequest(email=account.email), timeout=TIMEOUT
    )
    reset_token = reset_token_from(
        await service.smtp.wait_for_message(to=account.email, timeout=10)
    )

    events = await list_all(service, account.id)

    assert kinds(events) == [
        "user_registered",
        "email_verified",  # registered with a verified address (auth_helpers.register)
        "profile_updated",
        "session_started",
        "session_revoked",
        "password_reset_requested",
    ]
    assert [event.sequence for event in events] == [1, 2, 3, 4, 5, 6]
    assert {event.user_id for event in events} == {account.id}
    assert events[0].user_registered.email == account.email
    assert events[1].email_verified.email == account.email
    assert events[2].profile_updated.first_name == "Augusta" == user.first_name
    assert events[3].session_started.session_id == signed_in.session_id
    assert events[4].session_revoked.session_id == signed_in.session_id
    assert events[4].session_revoked.reason == pb.SESSION_END_REASON_LOGOUT
    text = "".join(text_format.MessageToString(event) for event in events)
    for secret in (PASSWORD, signed_in.refresh_token, signed_in.access_token, reset_token):
        assert secret not in text
    assert [event.cursor for event in events] == sorted(event.cursor for event in events)


async def test_list_user_events_of_an_unknown_user_is_empty_and_bad_input_is_refused(
    service: Service,
) -> None:
    empty = await service.stub.ListUserEvents(
        pb.ListUserEventsRequest(user_id=str(uuid.uuid4())), timeout=TIMEOUT
    )
    error = await rpc_error(
        service.stub.ListUserEvents(
            pb.ListUserEventsRequest(user_id="nope", page_size=101), timeout=TIMEOUT
        )
    )

    assert list(empty.events) == [] and empty.next_page_token == ""
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"user_id", "page_size"}


async def test_watch_replays_seeded_events_then_follows_and_resumes_after_a_cursor(
    service: Service,
) -> None:
    users = [str(uuid.uuid4()) for _ in range(3)]
    now = service.clock()
    # Yesterday's and today's partitions, written out of stream order.
    moments = [now - timedelta(days=1, minutes=5), now - timedelta(minutes=3)]
    for user, at in zip(users, moments, strict=False):
        await seed(
            service,
            UserRegistered(user, at, email="a@example.com", first_name="A", last_name="B"),
            1,
            at,
        )

    async with grpc.aio.insecure_channel(service.target) as channel:
        stub = user_service_pb2_grpc.UserServiceStub(channel)
        watch = stub.WatchEvents(pb.WatchEventsRequest())
        replayed = await take(watch, 2)
        assert [e.user_id for e in replayed] == users[:2]

        later = service.clock()
        await seed(
            service, ProfileUpdated(users[0], later, first_name="C", last_name="D"), 2, later
        )
        started = time.monotonic()
        [new] = await take(watch, 1)
        assert (new.user_id, new.sequence, new.WhichOneof("kind")) == (
            users[0],
            2,
            "profile_updated",
        )
        assert time.monotonic() - started < DELIVERY
        watch.cancel()

        resumed = stub.WatchEvents(pb.WatchEventsRequest(after_cursor=replayed[1].cursor))
        assert [e.cursor for e in await take(resumed, 1)] == [new.cursor]
        await nothing_more(resumed)
        resumed.cancel()


async def test_watch_delivers_the_events_of_rpcs_made_while_it_is_open(service: Service) -> None:
    account = await register(service, label="watched")
    async with grpc.aio.insecure_channel(service.target) as channel:
        watch = user_service_pb2_grpc.UserServiceStub(channel).WatchEvents(pb.WatchEventsRequest())
        registered, verified = await take(watch, 2)
        assert (registered.user_id, registered.sequence) == (account.id, 1)
        assert kinds([verified]) == ["email_verified"]

        await service.stub.UpdateProfile(
            pb.UpdateProfileRequest(id=account.id, last_name="King", expected_version=1),
            timeout=TIMEOUT,
        )
        await service.stub.DisableUser(pb.DisableUserRequest(id=account.id), timeout=TIMEOUT)

        followed = await take(watch, 2)
        assert kinds(followed) == ["profile_updated", "user_disabled"]
        assert [e.sequence for e in followed] == [3, 4]
        watch.cancel()


async def test_a_malformed_cursor_is_invalid_argument_on_after_cursor(service: Service) -> None:
    call = service.stub.WatchEvents(pb.WatchEventsRequest(after_cursor="2026-11-26#nope"))

    error = await rpc_error(call.read())

    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"after_cursor"}


def retry_info(error: grpc.aio.AioRpcError) -> error_details_pb2.RetryInfo | None:
    status = rpc_status.from_call(error)  # type: ignore[arg-type, unused-ignore]
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info
    return None


async def test_a_watcher_beyond_the_limit_is_refused_with_resource_exhausted(
    moto_endpoint: str, smtp_server: CapturingSmtpServer
) -> None:
    settings = event_settings(moto_endpoint, smtp_server, max_event_watchers=1)
    async with serving(settings, smtp_server) as service:
        account = await register(service, label="capped")
        first = service.stub.WatchEvents(pb.WatchEventsRequest())
        assert (await take(first, 1))[0].user_id == account.id

        error = await rpc_error(service.stub.WatchEvents(pb.WatchEventsRequest()).read())

        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert retry_info(error) is not None
        first.cancel()


async def test_a_shutdown_ends_an_open_watch_promptly_with_unavailable(
    moto_endpoint: str, smtp_server: CapturingSmtpServer
) -> None:
    running = serving(event_settings(moto_endpoint, smtp_server), smtp_server)
    service = await running.__aenter__()
    stopped = False
    try:
        account = await register(service, label="shutdown")
        # A channel of its own: the service's own channel closes with it.
        async with grpc.aio.insecure_channel(service.target) as channel:
            watch = user_service_pb2_grpc.UserServiceStub(channel).WatchEvents(
                pb.WatchEventsRequest()
            )
            # UserRegistered and EmailVerified: nothing more is to come.
            assert {e.user_id for e in await take(watch, 2)} == {account.id}

            started = time.monotonic()
            shutdown = asyncio.ensure_future(running.__aexit__(None, None, None))
            error = await rpc_error(asyncio.wait_for(watch.read(), GRACE + 5))
            ended_after = time.monotonic() - started
            await asyncio.wait_for(shutdown, GRACE + 10)
            stopped = True
            stopped_after = time.monotonic() - started

        assert error.code() is grpc.StatusCode.UNAVAILABLE, error
        assert retry_info(error) is not None
        assert ended_after < GRACE, "the stream outlived the shutdown grace"
        assert stopped_after < GRACE + 3.0, "the service did not stop within its grace"
    finally:
        if not stopped:
            with contextlib.suppress(Exception):
                await running.__aexit__(None, None, None)


async def test_events_expire_after_the_configured_retention(
    moto_endpoint: str, smtp_server: CapturingSmtpServer
) -> None:
    settings = event_settings(moto_endpoint, smtp_server, events_retention_days=3)
    async with serving(settings, smtp_server) as service:
        account = await register(service)
        response = await service.dynamodb.query(
            TableName=service.tables.events,
            KeyConditionExpression="UserId = :id",
            ExpressionAttributeValues={":id": {"S": account.user.id}},
            ConsistentRead=True,
        )

    item, _ = response["Items"]  # UserRegistered, EmailVerified
    recorded_at = datetime.fromisoformat(item["RecordedAt"]["S"])
    expires_at = int(item["ExpiresAt"]["N"])
    assert expires_at == int((recorded_at + timedelta(days=3)).timestamp())


async def test_watch_delivers_an_event_that_shows_later_than_the_settle_delay_once_in_order(
    moto_endpoint: str, smtp_server: CapturingSmtpServer
) -> None:
    # moto's index shows an item at once, so the lag is made by writing the event item late:
    # to a reader that is exactly an index entry showing after the head passed its place.
    lookback = 6.0
    settings = event_settings(moto_endpoint, smtp_server, events_lookback_seconds=lookback)
    async with serving(settings, smtp_server) as service:
        user = str(uuid.uuid4())
        first_at = service.clock()
        await seed(
            service,
            UserRegistered(user, first_at, email="a@example.com", first_name="A", last_name="B"),
            1,
            first_at,
        )
        async with grpc.aio.insecure_channel(service.target) as channel:
            stub = user_service_pb2_grpc.UserServiceStub(channel)
            watch = stub.WatchEvents(pb.WatchEventsRequest())
            assert [e.sequence for e in await take(watch, 1)] == [1]

            late_at = service.clock()
            third_at = late_at + timedelta(milliseconds=500)
            await seed(service, ProfileUpdated(user, third_at, "C", "D"), 3, third_at)
            # The second event shows 2 settle delays after its recording: the head has passed
            # its place and holds the third back for it.
            await asyncio.sleep(2 * SETTLE)
            await seed(service, ProfileUpdated(user, late_at, "E", "F"), 2, late_at)

            followed = await take(watch, 2)
            assert [(e.user_id, e.sequence) for e in followed] == [(user, 2), (user, 3)]
            await nothing_more(watch)
            watch.cancel()


async def test_watch_merges_the_stream_shards_in_order_and_resumes_an_old_cursor_across_them(
    service: Service,
) -> None:
    # An event written before the shards (the day alone, shard 0), then users registered by the
    # service itself, which spreads them over its 8 shards (the default setting).
    old_user, old_at = str(uuid.uuid4()), service.clock() - timedelta(minutes=2)
    old = UserRegistered(old_user, old_at, email="o@example.com", first_name="O", last_name="L")
    item = event_to_item(
        old, sequence=1, recorded_at=old_at, expires_at=old_at + timedelta(30), stream_shards=1
    )
    await service.dynamodb.put_item(TableName=service.tables.events, Item=item)
    accounts = [await register(service, label=f"shard{n}") for n in range(12)]
    partitions = {
        stored["StreamDay"]["S"]
        for stored in (
            await service.dynamodb.scan(TableName=service.tables.events, ConsistentRead=True)
        )["Items"]
    }
    assert len(partitions) >= 4, f"12 users on so few shards: {partitions}"

    async with grpc.aio.insecure_channel(service.target) as channel:
        stub = user_service_pb2_grpc.UserServiceStub(channel)
        watch = stub.WatchEvents(pb.WatchEventsRequest())
        # Each registration records two events (UserRegistered, EmailVerified).
        delivered = await take(watch, 25)
        await nothing_more(watch)
        watch.cancel()

        assert [e.cursor for e in delivered] == sorted(e.cursor for e in delivered)
        assert [(e.user_id, e.sequence) for e in delivered] == [(old_user, 1)] + [
            (account.id, sequence) for account in accounts for sequence in (1, 2)
        ]
        # The cursor of the event written before the shards resumes into every shard after it.
        resumed = stub.WatchEvents(pb.WatchEventsRequest(after_cursor=delivered[0].cursor))
        assert [e.cursor for e in await take(resumed, 24)] == [e.cursor for e in delivered[1:]]
        await nothing_more(resumed)
        resumed.cancel()
