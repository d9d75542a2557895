"""The embedded DynamoDB serves one request at a time, yet a stalled client cannot stall it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from persistence.dynamodb_client import DynamoDbOptions, open_dynamodb_client
from server.embedded_dynamodb import CLIENT_TIMEOUT_SECONDS, EmbeddedDynamoDb


@pytest.fixture
def embedded() -> Iterator[str]:
    server = EmbeddedDynamoDb()
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


async def test_a_connection_that_never_sends_is_dropped_and_others_are_served(
    embedded: str,
) -> None:
    address = urlsplit(embedded)
    silent = socket.create_connection((address.hostname, address.port))
    try:
        options = DynamoDbOptions(
            endpoint_url=embedded, region="us-east-1", access_key_id="a", secret_access_key="b"
        )
        async with open_dynamodb_client(options) as client:
            # Would wait forever behind the silent connection without the handler's timeout.
            tables = await asyncio.wait_for(client.list_tables(), CLIENT_TIMEOUT_SECONDS + 8)
        assert tables["TableNames"] == []
    finally:
        silent.close()
