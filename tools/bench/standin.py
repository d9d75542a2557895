"""A keep-alive DynamoDB stand-in: the CPU rows' backend, so client CPU is measured without moto.

moto as the bench serves it speaks HTTP/1.0 (a TCP connection per call) and spends milliseconds
per call, while the service idles and then runs cold. Real DynamoDB keeps connections alive and
answers in a few milliseconds without our CPU. This server answers over HTTP/1.1 keep-alive,
on loopback only, from a dictionary of items: the items the benchmark wrote into a seed file
with the service's own mapper (``tools.bench.standin_seed``), and whatever a PutItem or a
transaction's Put stores over a seeded key afterwards (so sign-ins and refresh chains work).
Conditions are not checked; a write to a key that was not seeded is answered and dropped, so
memory stays bounded. Replies carry ``x-amz-crc32`` as DynamoDB's do, which botocore checks.

``python -m tools.bench.standin --port N --seed-file F``; it serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import uuid
import zlib
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
MAX_CONNECTIONS = 256
MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 4 * 1024 * 1024  # DynamoDB's largest request is a 4 MB TransactWriteItems
Item = dict[str, Any]
VALIDATION = "com.amazon.coral.validate#ValidationException"


class Store:
    """Items by table and key, with each table's key attributes; only seeded keys are kept."""

    def __init__(self, keys: dict[str, list[str]], items: dict[str, list[Item]]) -> None:
        self._keys = keys
        self._items: dict[tuple[str, str], Item] = {}
        for table, table_items in items.items():
            for item in table_items:
                self._items[(table, self._key_of(table, item))] = item

    def _key_of(self, table: str, key_or_item: Item) -> str:
        return json.dumps([key_or_item[name] for name in self._keys[table]], sort_keys=True)

    def get(self, table: str, key: Item) -> Item | None:
        if table not in self._keys:
            return None
        return self._items.get((table, self._key_of(table, key)))

    def put(self, table: str, item: Item) -> None:
        if table not in self._keys:
            return
        where = (table, self._key_of(table, item))
        if where in self._items:
            self._items[where] = item


def reply_to(store: Store, operation: str, request: Item) -> tuple[int, Item]:
    """DynamoDB's reply to one request: (HTTP status, JSON body)."""
    if operation == "GetItem":
        item = store.get(request["TableName"], request["Key"])
        return 200, ({"Item": item} if item is not None else {})
    if operation == "PutItem":
        store.put(request["TableName"], request["Item"])
        return 200, {}
    if operation == "TransactWriteItems":
        for entry in request["TransactItems"]:
            if "Put" in entry:
                store.put(entry["Put"]["TableName"], entry["Put"]["Item"])
        return 200, {}
    if operation == "DescribeTable":
        description = {"TableName": request["TableName"], "TableStatus": "ACTIVE"}
        return 200, {"Table": description}
    return 400, {
        "__type": "com.amazon.coral.service#UnknownOperationException",
        "message": f"the stand-in does not answer {operation}",
    }


class StandIn:
    """The HTTP/1.1 keep-alive server."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._connections = asyncio.Semaphore(MAX_CONNECTIONS)
        self.connections_accepted = 0

    async def serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if self._connections.locked():
            writer.close()
            return
        self.connections_accepted += 1
        async with self._connections:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ValueError):
                while await self._exchange(reader, writer):
                    pass
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            return False
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if not 0 <= length <= MAX_BODY_BYTES:
            return False
        body = await reader.readexactly(length) if length else b"{}"
        operation = headers.get("x-amz-target", "").rpartition(".")[2]
        try:
            status, reply = reply_to(self._store, operation, json.loads(body))
        except (KeyError, TypeError, ValueError) as error:
            problem = f"the stand-in could not read the request ({type(error).__name__})"
            status, reply = 400, {"__type": VALIDATION, "message": problem}
        payload = json.dumps(reply, separators=(",", ":")).encode()
        reason = "OK" if status == 200 else "Bad Request"
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\n"
            "Content-Type: application/x-amz-json-1.0\r\n"
            f"Content-Length: {len(payload)}\r\n"
            f"x-amzn-RequestId: {uuid.uuid4().hex.upper()}\r\n"
            f"x-amz-crc32: {zlib.crc32(payload)}\r\n"
            "Connection: keep-alive\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        return headers.get("connection", "").lower() != "close"


async def serve(port: int, seed: dict[str, Any]) -> None:
    stand_in = StandIn(Store(seed["keys"], seed["items"]))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = await asyncio.start_server(
        stand_in.serve_connection, HOST, port, limit=MAX_HEADER_BYTES
    )
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.bench.standin")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seed-file", type=Path, required=True)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, json.loads(args.seed_file.read_text())))


if __name__ == "__main__":
    main()
