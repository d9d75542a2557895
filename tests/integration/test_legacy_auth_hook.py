"""The lazy-migration hook's HTTP client against a real server on loopback standing in for the
old system (tests.legacy_system), which checks each request's signature as the README tells
the old system to: right and wrong passwords, slow, down, garbage, bad signatures, replays,
and the circuit breaker opening and closing. The password shows in no log line."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from domain.ports import LegacyUser
from domain.values import Password
from server.legacy_auth import CircuitBreaker, HttpLegacyAuthenticator, sign
from server.operations.tracing import tracing_with
from tests.legacy_system import OldSystem, old_system, verify_signature

KEY = os.urandom(32)
EMAIL = "ada.lovelace@example.com"
PASSWORD = Password("Old-Secret-Horse-91")
TIMEOUT = 0.5


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture
async def system() -> AsyncIterator[OldSystem]:
    async with old_system(KEY) as running:
        running.add(EMAIL, PASSWORD.value)
        yield running


@pytest.fixture
def monotonic() -> Monotonic:
    return Monotonic()


@pytest_asyncio.fixture
async def hook(system: OldSystem, monotonic: Monotonic) -> AsyncIterator[HttpLegacyAuthenticator]:
    client = HttpLegacyAuthenticator(
        system.url, KEY, timeout_seconds=TIMEOUT, breaker=CircuitBreaker(3, 30.0, monotonic)
    )
    yield client
    await client.close()


@pytest.fixture(autouse=True)
def no_password_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.get_records("setup") + caplog.get_records("call"):
        text = record.getMessage() + repr(record.args) + str(record.exc_info or "")
        assert PASSWORD.value not in text, record


async def test_a_right_password_answers_the_users_profile_over_a_signed_request(
    hook: HttpLegacyAuthenticator, system: OldSystem
) -> None:
    answer = await hook.check(EMAIL, PASSWORD)
    assert answer == LegacyUser(
        id="0b6c3e0e-6f1e-4a8a-9d43-2b1f5a7c9e11",
        email=EMAIL,
        first_name="Ada",
        last_name="Lovelace",
        email_confirmed=True,
    )
    assert system.requests == [{"email": EMAIL, "password": PASSWORD.value}]
    assert system.bad_signatures == 0


async def test_a_wrong_password_is_a_refusal_not_a_failure(
    hook: HttpLegacyAuthenticator, system: OldSystem
) -> None:
    for _ in range(5):  # beyond the breaker's 3: refusals never open it
        assert await hook.check(EMAIL, Password("Wrong-Horse-00")) is None
    assert await hook.check("nobody@example.com", PASSWORD) is None
    assert await hook.check(EMAIL, PASSWORD) is not None
    assert len(system.requests) == 7


async def test_a_slow_old_system_is_given_up_on_at_the_timeout(
    hook: HttpLegacyAuthenticator, system: OldSystem, caplog: pytest.LogCaptureFixture
) -> None:
    system.behaviour = "slow"
    started = time.monotonic()
    assert await hook.check(EMAIL, PASSWORD) is None
    assert TIMEOUT <= time.monotonic() - started < TIMEOUT + 1.0
    assert "no answer within 0.5s" in caplog.text


async def test_an_old_system_that_is_down_is_a_failure(monotonic: Monotonic) -> None:
    with socket.socket() as probe:  # a port nothing listens on: the connection is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hook = HttpLegacyAuthenticator(
        f"http://127.0.0.1:{port}/check",
        KEY,
        timeout_seconds=TIMEOUT,
        breaker=CircuitBreaker(3, 30.0, monotonic),
    )
    try:
        assert await hook.check(EMAIL, PASSWORD) is None
    finally:
        await hook.close()


@pytest.mark.parametrize(
    ("behaviour", "logged"),
    [
        ("not-json", "is not JSON"),
        ("wrong-shape", 'is not {"user": {id, email, first_name, last_name, email_confirmed}}'),
        ("huge", "is over 16384 bytes"),
        ("huge-chunked", "is over 16384 bytes"),
        ("error", "answered HTTP 500"),
        ("redirect", "answered HTTP 302"),
    ],
)
async def test_garbage_is_a_failure(
    hook: HttpLegacyAuthenticator,
    system: OldSystem,
    caplog: pytest.LogCaptureFixture,
    behaviour: str,
    logged: str,
) -> None:
    system.behaviour = behaviour
    assert await hook.check(EMAIL, Password("Wrong-Horse-00")) is None
    assert logged in caplog.text
    assert system.followed_redirects == 0


async def test_the_stand_in_refuses_a_request_signed_with_another_key(
    system: OldSystem, monotonic: Monotonic
) -> None:
    hook = HttpLegacyAuthenticator(
        system.url, os.urandom(32), timeout_seconds=TIMEOUT, breaker=CircuitBreaker(3, 30.0)
    )
    try:
        assert await hook.check(EMAIL, PASSWORD) is None
    finally:
        await hook.close()
    assert system.bad_signatures == 1 and system.requests == []


async def test_the_stand_in_refuses_a_request_signed_long_ago(system: OldSystem) -> None:
    hook = HttpLegacyAuthenticator(
        system.url,
        KEY,
        timeout_seconds=TIMEOUT,
        breaker=CircuitBreaker(3, 30.0),
        wall_clock=lambda: time.time() - 3600,  # a replay of a request an hour old
    )
    try:
        assert await hook.check(EMAIL, PASSWORD) is None
    finally:
        await hook.close()
    assert system.bad_signatures == 1 and system.requests == []


def test_the_signature_is_the_documented_hmac_of_time_dot_body() -> None:
    body = b'{"email":"a@example.com","password":"x"}'
    header = sign(b"k" * 32, 1_700_000_000, body)
    digest = hmac.new(b"k" * 32, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={digest}"
    assert verify_signature(header, body, b"k" * 32, 1_700_000_100)
    assert not verify_signature(header, body + b" ", b"k" * 32, 1_700_000_100)
    assert not verify_signature(header, body, b"k" * 32, 1_700_000_000 + 301)


async def test_the_breaker_opens_after_failures_in_a_row_and_closes_after_its_cool_down(
    hook: HttpLegacyAuthenticator,
    system: OldSystem,
    monotonic: Monotonic,
    caplog: pytest.LogCaptureFixture,
) -> None:
    system.behaviour = "error"
    for _ in range(3):
        assert await hook.check(EMAIL, PASSWORD) is None
    assert len(system.requests) == 3
    assert "3 failures in a row" in caplog.text

    system.behaviour = "normal"
    assert await hook.check(EMAIL, PASSWORD) is None  # open: not asked
    monotonic.now += 29.0
    assert await hook.check(EMAIL, PASSWORD) is None
    assert len(system.requests) == 3
    assert "circuit breaker is open" in caplog.text

    monotonic.now += 1.0  # the cool-down is over: asked again, and one failure reopens it
    system.behaviour = "error"
    assert await hook.check(EMAIL, PASSWORD) is None
    assert len(system.requests) == 4
    assert await hook.check(EMAIL, PASSWORD) is None
    assert len(system.requests) == 4

    monotonic.now += 30.0  # a success closes it: failures count from zero again
    system.behaviour = "normal"
    assert await hook.check(EMAIL, PASSWORD) is not None
    system.behaviour = "error"
    for _ in range(2):
        assert await hook.check(EMAIL, PASSWORD) is None
    system.behaviour = "normal"
    assert await hook.check(EMAIL, PASSWORD) is not None
    assert len(system.requests) == 8


# --- the password-reset question: the email alone, signed alike -------------------------------


async def test_the_reset_question_sends_no_password_and_answers_a_known_emails_profile(
    hook: HttpLegacyAuthenticator, system: OldSystem
) -> None:
    answer = await hook.lookup(EMAIL.upper())

    assert answer is not None and answer.email == EMAIL and answer.email_confirmed
    assert system.requests == [{"email": EMAIL.upper(), "purpose": "password_reset"}]
    assert system.bad_signatures == 0  # the stand-in verified its signature


async def test_the_reset_question_for_an_unknown_email_is_a_refusal_not_a_failure(
    hook: HttpLegacyAuthenticator, system: OldSystem, monotonic: Monotonic
) -> None:
    for _ in range(5):
        assert await hook.lookup("nobody@example.com") is None
    assert await hook.lookup(EMAIL) is not None  # the breaker did not open
    assert len(system.requests) == 6


@pytest.mark.parametrize("behaviour", ["slow", "not-json", "wrong-shape", "huge", "error"])
async def test_the_reset_question_fails_as_the_password_check_does(
    hook: HttpLegacyAuthenticator, system: OldSystem, behaviour: str
) -> None:
    system.behaviour = behaviour
    started = time.monotonic()
    for _ in range(3):
        assert await hook.lookup(EMAIL) is None
    assert time.monotonic() - started < 3 * (TIMEOUT + 1.0)
    # Three failures in a row: the breaker is open for both questions now.
    asked = len(system.requests)
    system.behaviour = "normal"
    assert await hook.lookup(EMAIL) is None and await hook.check(EMAIL, PASSWORD) is None
    assert len(system.requests) == asked


async def test_the_stand_in_refuses_a_reset_question_signed_with_another_key(
    system: OldSystem, monotonic: Monotonic
) -> None:
    forger = HttpLegacyAuthenticator(
        system.url,
        os.urandom(32),
        timeout_seconds=TIMEOUT,
        breaker=CircuitBreaker(3, 30.0, monotonic),
    )
    try:
        assert await forger.lookup(EMAIL) is None
    finally:
        await forger.close()
    assert system.bad_signatures == 1 and system.requests == []


async def test_with_tracing_the_request_is_a_client_span_whose_traceparent_is_passed_on(
    system: OldSystem, monotonic: Monotonic
) -> None:
    exporter = InMemorySpanExporter()
    tracing = tracing_with(SimpleSpanProcessor(exporter))
    client = HttpLegacyAuthenticator(
        system.url,
        KEY,
        timeout_seconds=TIMEOUT,
        breaker=CircuitBreaker(3, 30.0, monotonic),
        tracing=(tracing.tracer, tracing.propagator),
    )
    try:
        with tracing.tracer.start_as_current_span("the RPC") as rpc:
            assert await client.check(EMAIL, PASSWORD) is not None
    finally:
        await client.close()

    [post] = [span for span in exporter.get_finished_spans() if span.name == "POST"]
    assert post.kind == SpanKind.CLIENT
    assert post.parent is not None and post.parent.span_id == rpc.get_span_context().span_id
    assert post.context is not None
    trace_id, span_id = post.context.trace_id, post.context.span_id
    [sent] = system.traceparents
    assert sent is not None
    version, sent_trace, sent_parent, flags = sent.split("-")
    assert (version, sent_trace, sent_parent) == ("00", f"{trace_id:032x}", f"{span_id:016x}")
    assert int(flags, 16) & 1  # sampled
    attributes = dict(post.attributes or {})
    assert attributes == {
        "http.request.method": "POST",
        "server.address": "127.0.0.1",
        "server.port": int(system.url.split(":")[2].split("/")[0]),
        "http.response.status_code": 200,
    }


async def test_without_tracing_no_traceparent_is_sent(
    hook: HttpLegacyAuthenticator, system: OldSystem
) -> None:
    assert await hook.check(EMAIL, PASSWORD) is not None

    assert system.traceparents == [None]
