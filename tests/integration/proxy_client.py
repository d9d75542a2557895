"""A DynamoDB client that talks to moto through the fault-injecting proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from persistence.dynamodb_client import DynamoDbOptions, open_dynamodb_client
from tests.fault_proxy import FaultProxy


@asynccontextmanager
async def client_through(proxy: FaultProxy, **options: Any) -> AsyncIterator[Any]:
    """A DynamoDB client whose every request goes through the proxy (one attempt unless told)."""
    settings = DynamoDbOptions(
        region="us-east-1",
        endpoint_url=proxy.url,
        access_key_id="testing",
        secret_access_key="testing",
        **{"max_attempts": 1, **options},
    )
    async with open_dynamodb_client(settings) as client:
        yield client
