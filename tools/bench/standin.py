"""A keep-alive DynamoDB stand-in: the CPU rows' backend, so client CPU is measured without moto.

moto as the bench serves it speaks HTTP/1.0 (a TCP connection per call) and spends milliseconds
per call, while the service idles and then runs cold. Real DynamoDB keeps connections alive and
answers in a few milliseconds without our CPU. This server answers over HTTP/1.1 keep-alive,
on loopback only, from a dictionary of items: the items the benchmark wrote into a seed file
with the service's own mappers (``tools.bench.standin_stack``), and whatever a PutItem or a
transaction's Put stores afterwards under a partition key that holds seeded items (so sign-ins,
which add a session item to their user's partition of the sessions table, and refresh chains
work). It answers GetItem, PutItem, DeleteItem, Query (a key condition on the partition key,
optionally with ``begins_with`` on the sort key: how sign-in reads a user's current sessions),
TransactWriteItems (Put and Delete) and DescribeTable.
Conditions are not checked; a write under a partition key that holds no seeded item is answered
and dropped, and a partition keeps at most ``MAX_ITEMS_PER_PARTITION`` items (the oldest written
go first), so memory stays bounded. Replies carry ``x-amz-crc32`` as DynamoDB's do, which
botocore checks.

``python -m tools.bench.standin --port N --seed-file F``; it serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import uuid
import zlib
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
MAX_CONNECTIONS = 256
MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 4 * 1024 * 1024  # DynamoDB's largest request is a 4 MB TransactWriteItems
# A user's sessions are at most max_sessions_per_user (50 at most); room for those and more.
MAX_ITEMS_PER_PARTITION = 64
Item = dict[str, Any]
VALIDATION = "com.amazon.coral.validate#ValidationException"


class Store:
    """Items by table and key, with each table's key attributes (partition key, then sort key if
    any); only partitions that hold seeded items keep what is written to them."""

    def __init__(self, keys: dict[str, list[str]], items: dict[str, list[Item]]) -> None:
        self._keys = keys
        # (table, partition) -> {key: item}, in the order written (the oldest first)
        self._partitions: dict[tuple[str, str], dict[str, Item]] = {}
        for table, table_items in items.items():
            for item in table_items:
                self._partitions.setdefault((table, self._partition_of(table, item)), {})
                self._store(table, item)

    def _partition_of(self, table: str, key_or_item: Item) -> str:
        return json.dumps(key_or_item[self._keys[table][0]], sort_keys=True)

    def _key_of(self, table: str, key_or_item: Item) -> str:
        return json.dumps([key_or_item[name] for name in self._keys[table]], sort_keys=True)

    def _partition(self, table: str, key_or_item: Item) -> dict[str, Item] | None:
        if table not in self._keys:
            return None
        return self._partitions.get((table, self._partition_of(table, key_or_item)))

    def _store(self, table: str, item: Item) -> None:
        partition = self._partitions[(table, self._partition_of(table, item))]
        key = self._key_of(table, item)
        partition.pop(key, None)
        partition[key] = item
        while len(partition) > MAX_ITEMS_PER_PARTITION:
            del partition[next(iter(partition))]

    def get(self, table: str, key: Item) -> Item | None:
        partition = self._partition(table, key)
        return None if partition is None else partition.get(self._key_of(table, key))

    def put(self, table: str, item: Item) -> None:
        if self._partition(table, item) is not None:
            self._store(table, item)

    def delete(self, table: str, key: Item) -> None:
        partition = self._partition(table, key)
        if partition is not None:
            partition.pop(self._key_of(table, key), None)

    def query(self, request: Item) -> list[Item]:
        """The items a Query's key condition selects, in sort key order."""
        table = request["TableName"]
        match = _KEY_CONDITION.fullmatch(request["KeyConditionExpression"].strip())
        if match is None or table not in self._keys:
            raise ValueError("a key condition the stand-in does not read")
        names = request.get("ExpressionAttributeNames", {})
        values = request["ExpressionAttributeValues"]
        keys = self._keys[table]
        if names.get(match["hash"], match["hash"]) != keys[0]:
            raise ValueError("the key condition is not on the partition key")
        partition = self._partition(table, {keys[0]: values[match["value"]]}) or {}
        found = list(partition.values())
        if match["sort"] is not None:
            if len(keys) < 2 or names.get(match["sort"], match["sort"]) != keys[1]:
                raise ValueError("begins_with is not on the sort key")
            prefix = values[match["prefix"]]["S"]
            found = [item for item in found if item[keys[1]]["S"].startswith(prefix)]
        if len(keys) > 1:
            found.sort(key=lambda item: next(iter(item[keys[1]].values())))
        return found


# "#a = :v", optionally "AND begins_with(#b, :p)": the key conditions the service sends.
_KEY_CONDITION = re.compile(
    r"(?P<hash>[#\w]+)\s*=\s*(?P<value>:\w+)"
    r"(?:\s+AND\s+begins_with\(\s*(?P<sort>[#\w]+)\s*,\s*(?P<prefix>:\w+)\s*\))?",
    re.IGNORECASE,
)


def reply_to(store: Store, operation: str, request: Item) -> tuple[int, Item]:
    """DynamoDB's reply to one request: (HTTP status, JSON body)."""
    if operation == "GetItem":
        item = store.get(request["TableName"], request["Key"])
        return 200, ({"Item": item} if item is not None else {})
    if operation == "PutItem":
        store.put(request["TableName"], request["Item"])
        return 200, {}
    if operation == "DeleteItem":
        store.delete(request["TableName"], request["Key"])
        return 200, {}
    if operation == "Query":
        items = store.query(request)
        return 200, {"Items": items, "Count": len(items), "ScannedCount": len(items)}
    if operation == "TransactWriteItems":
        for entry in request["TransactItems"]:
            if "Put" in entry:
                store.put(entry["Put"]["TableName"], entry["Put"]["Item"])
            elif "Delete" in entry:
                store.delete(entry["Delete"]["TableName"], entry["Delete"]["Key"])
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
