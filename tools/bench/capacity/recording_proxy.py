"""A loopback HTTP proxy between the service and moto that records every DynamoDB exchange.

For each request it keeps the operation, the request and the reply (or error code), and for a
write it reads every item the write names just before and just after forwarding it (consistent
GetItem against the backend), which is what the write-unit and index rules need. Requests are
forwarded one at a time, so no other write lands between those reads and the write; moto serves
one request at a time anyway. The reads are the proxy's own and are not recorded.

It also asks the backend for ``ReturnConsumedCapacity=INDEXES`` where the request did not, and
keeps what comes back, for the cross-check against moto's own figures. The reply goes back to the
service unchanged (botocore checks its CRC32); ``ConsumedCapacity`` in it is ignored by the
service. No record leaves the benchmark's process: they hold token hashes and password hashes.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from tools.capacity.operations import WRITES, Exchange, ItemRef, written_keys
from tools.capacity.tables import TableModel
from tools.load.target import loopback_url

HOST = "127.0.0.1"
TARGET_PREFIX = "DynamoDB_20120810."
UPSTREAM_TIMEOUT_SECONDS = 30.0
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "host", "content-length"}
)


@dataclass
class Recorded:
    """One exchange, and the ConsumedCapacity the backend reported for it (None: none)."""

    exchange: Exchange
    reported: Any


class RecordingProxy:
    """``async with RecordingProxy(upstream, tables) as proxy:`` serves on ``proxy.url``."""

    def __init__(self, upstream: str, tables: Mapping[str, TableModel]) -> None:
        self._upstream = loopback_url(upstream).rstrip("/")
        self._tables = tables
        self._lock = asyncio.Lock()
        self.records: list[Recorded] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RecordingProxy:
        # moto drops a connection silent for 2 s: a fresh one per request.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True),
            timeout=aiohttp.ClientTimeout(total=UPSTREAM_TIMEOUT_SECONDS),
        )
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind((HOST, 0))  # a port the OS picks, on loopback only
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://{HOST}:{sock.getsockname()[1]}"
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def mark(self) -> int:
        """A position in the records: ``since(mark)`` gives what came after it."""
        return len(self.records)

    def since(self, mark: int) -> list[Recorded]:
        return self.records[mark:]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        operation = request.headers.get("X-Amz-Target", "").removeprefix(TARGET_PREFIX)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with self._lock:
            parsed: dict[str, Any] = json.loads(body) if body else {}
            keys = written_keys(operation, parsed, self._tables) if operation in WRITES else []
            before = await self._read_items(keys, headers)
            forwarded = body
            if parsed and "ReturnConsumedCapacity" not in parsed:
                forwarded = json.dumps(parsed | {"ReturnConsumedCapacity": "INDEXES"}).encode()
            status, reply_headers, reply_body = await self._send(forwarded, headers)
            after = await self._read_items(keys, headers)
        reply: dict[str, Any] = json.loads(reply_body) if reply_body else {}
        error_code = None
        if status >= 300:
            error_code = str(reply.get("__type", "HTTPError")).rpartition("#")[2]
        exchange = Exchange(operation, parsed, reply, error_code, before, after)
        self.records.append(Recorded(exchange, reply.get("ConsumedCapacity")))
        return web.Response(status=status, body=reply_body, headers=reply_headers)

    async def _send(
        self, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        assert self._session is not None
        async with self._session.post(self._upstream + "/", data=body, headers=headers) as reply:
            content = await reply.read()
            kept = {k: v for k, v in reply.headers.items() if k.lower() not in _HOP_BY_HOP}
            # The reply is the backend's for the body sent, ConsumedCapacity included; its
            # CRC32 header matches that body, which is what is returned.
            return reply.status, kept, content

    async def _read_items(
        self, keys: list[tuple[str, dict[str, Any]]], headers: Mapping[str, str]
    ) -> dict[ItemRef, Any]:
        items: dict[ItemRef, Any] = {}
        for table, key in keys:
            get = {"TableName": table, "Key": key, "ConsistentRead": True}
            read_headers = dict(headers) | {"X-Amz-Target": TARGET_PREFIX + "GetItem"}
            status, _, content = await self._send(json.dumps(get).encode(), read_headers)
            if status >= 300:
                raise RuntimeError(f"reading {table} {key} for the capacity record: {content!r}")
            items[table, self._tables[table].key_of(key)] = json.loads(content).get("Item")
        return items
