"""The lazy-migration hook: asks the old system to check a password (README, "Lazy migration").

A JSON POST ``{"email": ..., "password": ...}`` to USER_SERVICE_LEGACY_AUTH_URL, signed with
HMAC-SHA256 under the shared key over ``<unix time>.<body>`` and sent as
``X-Signature: t=<unix time>,v1=<hex>`` (as Stripe signs its webhooks), so the old system can
refuse a forged or replayed request. Its answer: 200 with
``{"user": {"id", "email", "first_name", "last_name", "email_confirmed"}}`` when the password is
right, 401 when it is not (or the email is unknown there). Anything else (another status, a
body that is not that JSON or is larger than MAX_RESPONSE_BYTES, a timeout, a refused
connection) is a failure: the sign-in is refused as a wrong password, and after
``breaker_failures`` failures in a row the hook is skipped for ``breaker_cooldown_seconds``.

At password reset for an email unknown here (after the reply), the same URL gets
``{"email": ..., "purpose": "password_reset"}``, signed alike, with no password: 200 with the
same ``{"user": ...}`` when the old system knows the email, 401 when it does not; failures count
toward the same circuit breaker.

The password goes only into the request body: it is never logged, and no error names it.

With tracing on, the request is a client span ("POST", child of the RPC's span or of the
background work's) and carries its W3C ``traceparent`` (and ``tracestate``) header, so the old
system's own traces join the caller's.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from yarl import URL

from domain.ports import LegacyUser
from domain.values import Password

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Signature"
PASSWORD_RESET_PURPOSE = "password_reset"
# A user's profile is well under a kilobyte; a larger answer is garbage, and is not read on.
MAX_RESPONSE_BYTES = 16 * 1024
_FIELDS: dict[str, type] = {
    "id": str,
    "email": str,
    "first_name": str,
    "last_name": str,
    "email_confirmed": bool,
}


def sign(key: bytes, timestamp: int, body: bytes) -> str:
    """The X-Signature header's value for ``body`` sent at ``timestamp`` (unix seconds)."""
    digest = hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


class _Failure(Exception):
    """The old system did not answer usably (named in the log line; never with the password)."""


class CircuitBreaker:
    """Opens after ``threshold`` failures in a row: for ``cooldown`` seconds no call is made.
    After that, calls go through again; one more failure opens it again, a success closes it."""

    def __init__(
        self, threshold: int, cooldown: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._threshold = threshold
        self._cooldown = cooldown
        self._monotonic = monotonic
        self._failures = 0
        self._open_until: float | None = None

    @property
    def is_open(self) -> bool:
        return self._open_until is not None and self._monotonic() < self._open_until

    def succeeded(self) -> None:
        if self._failures >= self._threshold:
            log.info("lazy migration: the old system answers again; circuit breaker closed")
        self._failures, self._open_until = 0, None

    def failed(self) -> None:
        self._failures += 1
        if self._failures >= self._threshold:
            self._open_until = self._monotonic() + self._cooldown
            log.warning(
                "lazy migration: %d failures in a row; the old system is not asked for %gs",
                self._failures,
                self._cooldown,
            )


class HttpLegacyAuthenticator:
    """domain.ports.LegacyAuthenticator over HTTP (aiohttp); ``close`` at shutdown."""

    def __init__(
        self,
        url: str,
        key: bytes,
        *,
        timeout_seconds: float,
        breaker: CircuitBreaker,
        wall_clock: Callable[[], float] = time.time,
        tracing: tuple[Tracer, TextMapPropagator] | None = None,
    ) -> None:
        self._url = url
        self._tracing = tracing
        parsed = URL(url)
        # Where, not what: the URL's path and query stay off the span.
        self._span_attributes: dict[str, str | int] = {
            "http.request.method": "POST",
            "server.address": parsed.host or "",
            "server.port": parsed.port or 0,
        }
        self._key = key
        self._timeout = timeout_seconds
        self._breaker = breaker
        self._wall_clock = wall_clock
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"HttpLegacyAuthenticator({self._url!r}, ***)"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def check(self, email: str, password: Password) -> LegacyUser | None:
        return await self._guarded({"email": email, "password": password.value})

    async def lookup(self, email: str) -> LegacyUser | None:
        return await self._guarded({"email": email, "purpose": PASSWORD_RESET_PURPOSE})

    async def _guarded(self, question: dict[str, str]) -> LegacyUser | None:
        if self._breaker.is_open:
            log.warning("lazy migration skipped: the circuit breaker is open")
            return None
        try:
            async with asyncio.timeout(self._timeout):
                answer = await self._ask(question)
        except TimeoutError:
            self._breaker.failed()
            log.warning("lazy migration failed: no answer within %gs", self._timeout)
            return None
        except _Failure as failure:
            self._breaker.failed()
            log.warning("lazy migration failed: %s", failure)
            return None
        self._breaker.succeeded()
        return answer

    async def _ask(self, question: dict[str, str]) -> LegacyUser | None:
        if self._tracing is None:
            return await self._post(question, {}, None)
        tracer, propagator = self._tracing
        with tracer.start_as_current_span(
            "POST",
            kind=SpanKind.CLIENT,
            attributes=self._span_attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            carrier: dict[str, str] = {}
            propagator.inject(carrier)  # the traceparent of this span, passed on
            try:
                return await self._post(question, carrier, span)
            except _Failure as failure:
                span.set_status(Status(StatusCode.ERROR, str(failure)))
                raise

    async def _post(
        self, question: dict[str, str], trace_headers: dict[str, str], span: Span | None
    ) -> LegacyUser | None:
        body = json.dumps(question, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._key, int(self._wall_clock()), body),
            **trace_headers,
        }
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=32), trust_env=False
            )
        try:
            async with self._session.post(
                self._url, data=body, headers=headers, allow_redirects=False
            ) as response:
                if span is not None:
                    span.set_attribute("http.response.status_code", response.status)
                if response.status == 401:
                    return None  # refused: the old system answered, as it should
                if response.status != 200:
                    raise _Failure(f"the old system answered HTTP {response.status}")
                raw = await _read_capped(response)
        except aiohttp.ClientError as error:
            # Only the error's class: its text may hold the URL, never the password, but the
            # class is what an operator acts on.
            raise _Failure(f"the old system is unreachable ({type(error).__name__})") from None
        return _parse_user(raw)


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    if (response.content_length or 0) > MAX_RESPONSE_BYTES:
        raise _Failure(f"the old system's answer is over {MAX_RESPONSE_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(4096):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise _Failure(f"the old system's answer is over {MAX_RESPONSE_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_user(raw: bytes) -> LegacyUser:
    try:
        document: Any = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise _Failure("the old system's answer is not JSON") from None
    user = document.get("user") if isinstance(document, dict) else None
    if not isinstance(user, dict) or any(
        not isinstance(user.get(name), kind) for name, kind in _FIELDS.items()
    ):
        fields = ", ".join(_FIELDS)
        raise _Failure(f'the old system\'s answer is not {{"user": {{{fields}}}}}')
    return LegacyUser(
        id=user["id"],
        email=user["email"],
        first_name=user["first_name"],
        last_name=user["last_name"],
        email_confirmed=user["email_confirmed"],
    )
