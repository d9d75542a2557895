"""A fault-injecting HTTP/1.1 proxy for tests: it sits between a DynamoDB client and moto_server.

``with FaultProxy(moto_endpoint) as proxy:`` listens on a free loopback port (``proxy.url``)
and serves on its own event loop in a daemon thread, so it works for a service in this process
as well as for one in a subprocess. Faults can be changed at any time, from any thread:

- ``pass_through()``: forward every request unchanged (the initial state);
- ``throttle(fraction)``: answer that fraction of requests with DynamoDB's own throttling error
  (HTTP 400, ``ProvisionedThroughputExceededException``) instead of forwarding them;
- ``delay(seconds)``: hold each request that long before forwarding it (it still reaches the
  backend, late, even if the client has given up meanwhile: a request already on the wire), or
  with ``after_forwarding=True`` forward it at once and hold back the answer (the write lands,
  the client learns it late);
- ``conflict(fraction)``: refuse writes as real DynamoDB refuses a write meeting another one on
  the same item (moto never does): a ``TransactWriteItems`` is cancelled (HTTP 400,
  ``TransactionCanceledException``) with reason ``TransactionConflict`` on the item in conflict
  and ``None`` on the others, a ``PutItem``/``UpdateItem``/``DeleteItem`` fails with
  ``TransactionConflictException``; nothing is forwarded. With ``contended_only=True`` only a
  write that really meets another one in flight is refused, the way DynamoDB decides: a
  transaction touching an item that a write forwarded and not yet answered also touches, or a
  single write on an item a transaction in flight touches (the write in flight always goes on;
  ``hold_writes`` keeps writes in flight longer, unseen by reads);
  otherwise any matching write may be, on one of its items drawn at random;
- ``drop()``: read the request and close the connection without an answer; with
  ``after_forwarding=True`` forward it first, so the write lands but its answer is lost;
- ``refuse()`` / ``accept()``: close the listening socket and every open connection (new
  connections are refused), and listen again later on the same port.

Each fault may be limited to some operations (``operations=["TransactWriteItems"]``, taken from
the ``X-Amz-Target`` header) and to its first ``times`` applications; ``fraction`` (drawn with
``seed``) makes it apply to that share of the requests it could apply to. Every request is
recorded (``requests()``): when it arrived, its operation, its body, what the proxy did with it,
and whether and when it was forwarded to the backend.

The upstream (moto_server here) serves one request at a time and drops a connection that stays
silent for 2 s, so each request goes to it on a fresh connection that is closed after the
answer; the client's own connection is kept alive between requests, as botocore expects.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import errno
import json
import random
import threading
import time
import uuid
import zlib
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")

CANCELLED_TYPE = "com.amazonaws.dynamodb.v20120810#TransactionCanceledException"
CONFLICT_TYPE = "com.amazonaws.dynamodb.v20120810#TransactionConflictException"
# The message DynamoDB gives a TransactionConflictException, and a TransactionConflict reason.
CONFLICT_MESSAGE = "Transaction is ongoing for the item"
TRANSACTION = "TransactWriteItems"
SINGLE_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem"})
THROTTLING_TYPE = "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
THROTTLING_MESSAGE = (
    "The level of configured provisioned throughput for the table was exceeded. "
    "Consider increasing your provisioning level with the UpdateTable API."
)
# Bounds every exchange with the upstream, so a stuck backend cannot hang a test for ever.
UPSTREAM_TIMEOUT_SECONDS = 30.0
_MAX_HEAD_BYTES = 64 * 1024
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade"}
)


class Outcome(enum.Enum):
    """What the proxy did with a request."""

    PENDING = "being handled"
    FORWARDED = "forwarded and answered"
    THROTTLED = "answered with ProvisionedThroughputExceededException, not forwarded"
    CONFLICTED = "refused as meeting a concurrent write (TransactionConflict), not forwarded"
    DROPPED = "connection closed without forwarding"
    ANSWER_DROPPED = "forwarded, then the connection closed without an answer"
    CLIENT_GONE = "forwarded, but the client had gone when the answer was ready"
    UPSTREAM_FAILED = "the backend could not be reached or did not answer; connection closed"


@dataclass
class RecordedRequest:
    """One request as the proxy received it, and what became of it (times: time.monotonic())."""

    received_at: float
    operation: str  # e.g. "TransactWriteItems"; "" without an X-Amz-Target header
    body: bytes
    outcome: Outcome = Outcome.PENDING
    forwarded_at: float | None = None

    @property
    def reached_backend(self) -> bool:
        return self.forwarded_at is not None

    def json(self) -> dict[str, Any]:
        """The body parsed as JSON (DynamoDB requests are JSON)."""
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass(frozen=True)
class _Fault:
    kind: str  # "throttle", "delay", "drop" or "conflict"
    operations: frozenset[str] | None = None  # None: every operation
    fraction: float = 1.0
    seconds: float = 0.0
    after_forwarding: bool = False
    contended_only: bool = False


# An item as DynamoDB identifies it: its table and its key (as sorted JSON).
_ItemId = tuple[str, str]


@dataclass(frozen=True)
class _InFlight:
    """A write forwarded and not yet answered, and the items it touches."""

    transaction: bool
    items: frozenset[_ItemId]


@dataclass
class _Request:
    line: bytes
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str:
        return next((v for k, v in self.headers if k.lower() == name.lower()), "")


class FaultProxy:
    """A fault-injecting HTTP/1.1 proxy in front of ``upstream_url``, on 127.0.0.1."""

    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"need an http://host:port upstream, got {upstream_url!r}")
        self._upstream = (parts.hostname, parts.port)
        self._lock = threading.Lock()
        self._fault: _Fault | None = None
        self._remaining: int | None = None
        self._rng = random.Random(0)
        self._records: list[RecordedRequest] = []
        self._accepted = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fault-proxy", daemon=True
        )
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self._port = 0
        self._key_names: dict[str, tuple[str, ...]] = {}  # table -> its key's attribute names
        self._in_flight: set[_InFlight] = set()

    # -- life cycle ---------------------------------------------------------------------------

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        try:
            self._run(self._listen())
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stops listening, closes every connection, ends the proxy's thread."""
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self._run(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def connections_accepted(self) -> int:
        """How many client connections the proxy has accepted so far."""
        with self._lock:
            return self._accepted

    # -- faults ---------------------------------------------------------------------------------

    def pass_through(self) -> None:
        """Forward every request unchanged."""
        self._set(None, None)

    def throttle(
        self,
        fraction: float = 1.0,
        *,
        operations: Iterable[str] | None = None,
        times: int | None = None,
        seed: int = 0,
    ) -> None:
        """Answer ``fraction`` of the (matching) requests with a throttling error (HTTP 400)."""
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction must be between 0 and 1")
        self._set(_Fault("throttle", _operations(operations), fraction=fraction), times, seed)

    def delay(
        self,
        seconds: float,
        *,
        operations: Iterable[str] | None = None,
        after_forwarding: bool = False,
        times: int | None = None,
    ) -> None:
        """Hold (matching) requests ``seconds`` before forwarding them, or their answers after."""
        fault = _Fault(
            "delay", _operations(operations), seconds=seconds, after_forwarding=after_forwarding
        )
        self._set(fault, times)

    def drop(
        self,
        *,
        operations: Iterable[str] | None = None,
        after_forwarding: bool = False,
        times: int | None = None,
    ) -> None:
        """Close the connection instead of answering (matching) requests; maybe forward first."""
        self._set(_Fault("drop", _operations(operations), after_forwarding=after_forwarding), times)

    def conflict(
        self,
        fraction: float = 1.0,
        *,
        operations: Iterable[str] | None = None,
        contended_only: bool = False,
        hold_writes: float = 0.0,
        times: int | None = None,
        seed: int = 0,
    ) -> None:
        """Refuse ``fraction`` of the (matching) writes as meeting a concurrent write.

        ``operations`` defaults to TransactWriteItems and the single writes; others are passed.
        ``hold_writes``: hold each write let through that many seconds before forwarding it, its
        items in flight meanwhile: a write in flight on real DynamoDB is not yet seen by reads,
        so writers that read meanwhile really meet it (with ``contended_only``).
        """
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction must be between 0 and 1")
        chosen = _operations(operations)
        writes = SINGLE_WRITES | {TRANSACTION}
        if chosen is not None and not chosen <= writes:
            raise ValueError(f"only writes can conflict: {sorted(chosen - writes)}")
        fault = _Fault(
            "conflict",
            chosen or writes,
            fraction=fraction,
            seconds=hold_writes,
            contended_only=contended_only,
        )
        self._set(fault, times, seed)

    def refuse(self) -> None:
        """Close the listening socket and every client connection: new connections are refused."""
        self._run(self._stop_listening())

    def accept(self) -> None:
        """Listen again, on the same port, after ``refuse()``."""
        self._run(self._listen())

    # -- the record -------------------------------------------------------------------------------

    def requests(self, operation: str | None = None) -> list[RecordedRequest]:
        """A snapshot of the requests received so far (optionally of one operation), in order."""
        with self._lock:
            return [
                dataclasses.replace(record)
                for record in self._records
                if operation is None or record.operation == _short(operation)
            ]

    def forwarded(self, operation: str | None = None) -> list[RecordedRequest]:
        """The requests (optionally of one operation) that reached the backend."""
        return [record for record in self.requests(operation) if record.reached_backend]

    def clear_record(self) -> None:
        with self._lock:
            self._records.clear()

    # -- inside the proxy's loop ----------------------------------------------------------------

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=15)

    def _set(self, fault: _Fault | None, times: int | None, seed: int = 0) -> None:
        if times is not None and times < 0:
            raise ValueError("times must not be negative")
        with self._lock:
            self._fault, self._remaining, self._rng = fault, times, random.Random(seed)

    def _fault_for(self, operation: str) -> _Fault | None:
        with self._lock:
            fault = self._matching(operation)
            return fault if fault is not None and self._take() else None

    def _matching(self, operation: str) -> _Fault | None:
        """The fault set for this operation, if any (under the lock)."""
        fault = self._fault
        if fault is None or (fault.operations is not None and operation not in fault.operations):
            return None
        return fault

    def _take(self) -> bool:
        """Whether the fault applies this time (the draw and the count; under the lock)."""
        assert self._fault is not None
        if self._remaining == 0 or self._rng.random() >= self._fault.fraction:
            return False
        if self._remaining is not None:
            self._remaining -= 1
        return True

    def _update(self, record: RecordedRequest, **changes: Any) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(record, name, value)

    async def _listen(self) -> None:
        if self._server is not None:
            return
        # After refuse(), the port is free again at once (SO_REUSEADDR); retry briefly if a
        # closing socket still holds it.
        for attempt in range(50):
            try:
                self._server = await asyncio.start_server(
                    self._serve_client,
                    "127.0.0.1",
                    self._port,
                    reuse_address=True,
                    limit=_MAX_HEAD_BYTES,
                )
                break
            except OSError as error:
                if error.errno != errno.EADDRINUSE or attempt == 49:
                    raise
                await asyncio.sleep(0.1)
        assert self._server is not None
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._clients):
            writer.transport.abort()
        self._clients.clear()

    async def _shutdown(self) -> None:
        await self._stop_listening()
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        with self._lock:
            self._accepted += 1
        self._clients.add(writer)
        try:
            while (request := await _read_request(reader)) is not None:
                if not await self._handle(request, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # the client went away, or did not speak HTTP/1.1
        except asyncio.CancelledError:
            pass  # the proxy is closing (Python 3.11's stream callback would log a cancelled task)
        finally:
            self._clients.discard(writer)
            writer.close()

    async def _handle(self, request: _Request, writer: asyncio.StreamWriter) -> bool:
        """Serves one request; False when the client connection must close."""
        operation = _short(request.header("X-Amz-Target"))
        record = RecordedRequest(time.monotonic(), operation, request.body)
        with self._lock:
            self._records.append(record)
            conflicts = self._matching(operation)
        if conflicts is not None and conflicts.kind == "conflict":
            return await self._handle_write_that_may_conflict(request, record, writer)
        fault = self._fault_for(operation)
        if fault is not None and fault.kind == "throttle":
            self._update(record, outcome=Outcome.THROTTLED)
            return await _reply(writer, _throttling_response())
        if fault is not None and fault.kind == "drop" and not fault.after_forwarding:
            self._update(record, outcome=Outcome.DROPPED)
            return False
        if fault is not None and fault.kind == "delay" and not fault.after_forwarding:
            await asyncio.sleep(fault.seconds)
        return await self._relay(request, record, writer, fault)

    async def _relay(
        self,
        request: _Request,
        record: RecordedRequest,
        writer: asyncio.StreamWriter,
        fault: _Fault | None = None,
    ) -> bool:
        """Forwards the request and relays the answer (dropped or delayed if ``fault`` says)."""
        try:
            response = await self._forward(request, record)
        except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError):
            self._update(record, outcome=Outcome.UPSTREAM_FAILED)
            return False
        if fault is not None and fault.kind == "drop":
            self._update(record, outcome=Outcome.ANSWER_DROPPED)
            return False
        if fault is not None and fault.kind == "delay" and fault.after_forwarding:
            await asyncio.sleep(fault.seconds)
        # Recorded before the answer goes out, so a client that has its answer sees the record.
        self._update(record, outcome=Outcome.FORWARDED)
        if not await _reply(writer, response):
            self._update(record, outcome=Outcome.CLIENT_GONE)
            return False
        return True

    async def _handle_write_that_may_conflict(
        self, request: _Request, record: RecordedRequest, writer: asyncio.StreamWriter
    ) -> bool:
        """Refuses the write as conflicting, or marks its items in flight until it is answered."""
        transaction = record.operation == TRANSACTION
        hold = 0.0
        touched = await self._touched_items(request, record.json(), transaction)
        with self._lock:
            fault = self._fault
            clashing = self._clashing(fault, transaction, touched)
            refused = bool(clashing) and self._take()
            if fault is not None:
                hold = fault.seconds
            if not refused:
                in_flight = _InFlight(transaction, frozenset(touched))
                self._in_flight.add(in_flight)
        if refused:
            self._update(record, outcome=Outcome.CONFLICTED)
            return await _reply(writer, _conflict_response(transaction, len(touched), clashing))
        try:
            await asyncio.sleep(hold)
            return await self._relay(request, record, writer)
        finally:
            with self._lock:
                self._in_flight.discard(in_flight)

    def _clashing(
        self, fault: _Fault | None, transaction: bool, touched: list[_ItemId]
    ) -> set[int]:
        """The positions of the write's items in conflict (under the lock)."""
        if fault is None or fault.kind != "conflict" or not touched:
            return set()
        if not fault.contended_only:
            return {self._rng.randrange(len(touched))}
        # A transaction meets any write in flight on its items; a single write, only a transaction.
        busy = {
            item
            for other in self._in_flight
            if transaction or other.transaction
            for item in other.items
        }
        return {position for position, item in enumerate(touched) if item in busy}

    async def _touched_items(
        self, request: _Request, body: dict[str, Any], transaction: bool
    ) -> list[_ItemId]:
        """The items a write touches, in request order (a transaction's, one per action)."""
        actions = (
            [next(iter(entry.values())) for entry in body.get("TransactItems", [])]
            if transaction
            else [body]
        )
        touched: list[_ItemId] = []
        for action in actions:
            table = str(action.get("TableName", ""))
            key = action.get("Key")
            if key is None:  # a Put names the whole item: its key is the table's key attributes
                names = await self._key_names_of(table, request)
                key = {name: action.get("Item", {}).get(name) for name in names}
            touched.append((table, json.dumps(key, sort_keys=True)))
        return touched

    async def _key_names_of(self, table: str, like: _Request) -> tuple[str, ...]:
        """The table's key attribute names, asked of the backend once (DescribeTable), with the
        headers of ``like`` (so in its account and region)."""
        if table not in self._key_names:
            body = json.dumps({"TableName": table}).encode()
            headers = [
                (k, "DynamoDB_20120810.DescribeTable" if k.lower() == "x-amz-target" else v)
                for k, v in like.headers
                if k.lower() not in _HOP_BY_HOP
            ]
            headers.append(("Connection", "close"))
            async with asyncio.timeout(UPSTREAM_TIMEOUT_SECONDS):
                reader, writer = await asyncio.open_connection(*self._upstream)
                try:
                    writer.write(_message(like.line, headers, body))
                    await writer.drain()
                    answer = await _read_response(reader)
                finally:
                    writer.close()
            described = json.loads(answer.partition(b"\r\n\r\n")[2])
            schema = described.get("Table", {}).get("KeySchema", [])
            self._key_names[table] = tuple(str(part["AttributeName"]) for part in schema)
        return self._key_names[table]

    async def _forward(self, request: _Request, record: RecordedRequest) -> bytes:
        """Sends the request upstream on a fresh connection; the whole answer, ready to relay."""
        async with asyncio.timeout(UPSTREAM_TIMEOUT_SECONDS):
            reader, writer = await asyncio.open_connection(*self._upstream)
            try:
                headers = [(k, v) for k, v in request.headers if k.lower() not in _HOP_BY_HOP]
                headers.append(("Connection", "close"))
                self._update(record, forwarded_at=time.monotonic())
                writer.write(_message(request.line, headers, request.body, length=False))
                await writer.drain()
                return await _read_response(reader)
            finally:
                writer.close()


def _operations(operations: Iterable[str] | None) -> frozenset[str] | None:
    return None if operations is None else frozenset(_short(name) for name in operations)


def _short(target: str) -> str:
    # "DynamoDB_20120810.TransactWriteItems" -> "TransactWriteItems"
    return target.rpartition(".")[2]


def _parse_head(head: bytes) -> tuple[bytes, list[tuple[str, str]]]:
    line, *rest = head.rstrip(b"\r\n").split(b"\r\n")
    headers: list[tuple[str, str]] = []
    for raw in rest:
        name, colon, value = raw.decode("latin-1").partition(":")
        if not colon:
            raise ValueError(f"malformed header line {raw!r}")
        headers.append((name.strip(), value.strip()))
    return line, headers


def _content_length(headers: list[tuple[str, str]]) -> int | None:
    value = next((v for k, v in headers if k.lower() == "content-length"), None)
    return None if value is None else int(value)


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    """The next request on a client connection; None when the client closed it cleanly."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if error.partial.strip():
            raise
        return None
    except asyncio.LimitOverrunError as error:
        raise ValueError("request head too large") from error
    line, headers = _parse_head(head)
    if any(k.lower() == "transfer-encoding" for k, _ in headers):
        raise ValueError("chunked requests are not supported")  # botocore never sends them
    body = await reader.readexactly(_content_length(headers) or 0)
    return _Request(line, headers, body)


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    """The upstream's whole answer, re-framed for a kept-alive HTTP/1.1 client connection."""
    line, headers = _parse_head(await reader.readuntil(b"\r\n\r\n"))
    if any(k.lower() == "transfer-encoding" for k, _ in headers):
        raise ValueError("chunked answers are not supported")  # moto's server never sends them
    length = _content_length(headers)
    body = await reader.read() if length is None else await reader.readexactly(length)
    version, _, status = line.partition(b" ")
    if not version.startswith(b"HTTP/"):
        raise ValueError(f"not an HTTP answer: {line!r}")
    kept = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP]
    return _message(b"HTTP/1.1 " + status, kept, body)


def _message(
    line: bytes, headers: list[tuple[str, str]], body: bytes, *, length: bool = True
) -> bytes:
    """An HTTP/1.1 message; with ``length``, Content-Length is set from the body."""
    if length:
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(body))))
    head = b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in headers)
    return line + b"\r\n" + head + b"\r\n" + body


def _throttling_response() -> bytes:
    return _error_response({"__type": THROTTLING_TYPE, "message": THROTTLING_MESSAGE})


def _conflict_response(transaction: bool, items: int, clashing: set[int]) -> bytes:
    """DynamoDB's answer to a write that met another in flight: for a transaction, one reason
    per item in request order ("None" where that item was not the cause)."""
    if not transaction:
        return _error_response({"__type": CONFLICT_TYPE, "message": CONFLICT_MESSAGE})
    reasons: list[dict[str, str]] = [
        {"Code": "TransactionConflict", "Message": CONFLICT_MESSAGE}
        if position in clashing
        else {"Code": "None"}
        for position in range(items)
    ]
    codes = ", ".join(reason["Code"] for reason in reasons)
    message = (
        f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]"
    )
    return _error_response(
        {"__type": CANCELLED_TYPE, "Message": message, "CancellationReasons": reasons}
    )


def _error_response(error: dict[str, Any]) -> bytes:
    """An HTTP 400 answer carrying a DynamoDB error, as DynamoDB frames it."""
    body = json.dumps(error).encode()
    headers = [
        ("Content-Type", "application/x-amz-json-1.0"),
        ("x-amzn-RequestId", uuid.uuid4().hex.upper()),
        ("x-amz-crc32", str(zlib.crc32(body))),
    ]
    return _message(b"HTTP/1.1 400 Bad Request", headers, body)


async def _reply(writer: asyncio.StreamWriter, response: bytes) -> bool:
    """Writes an answer; False if the client has gone."""
    if writer.is_closing():
        return False
    try:
        writer.write(response)
        await writer.drain()
    except ConnectionError:
        return False
    return True
