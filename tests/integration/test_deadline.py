"""No DynamoDB request starts once the caller's deadline has passed; before it, requests go out."""

from __future__ import annotations

import asyncio

import pytest
from botocore.exceptions import EndpointConnectionError

from domain.errors import DeadlineExceeded
from persistence.deadline import deadline_in
from persistence.dynamodb_client import DynamoDbOptions, open_dynamodb_client
from tests.conftest import free_port

KEY = {"Id": {"S": "deadline-probe"}}


def closed_port_options() -> DynamoDbOptions:
    # Nothing listens here: a request that does go out fails to connect instead.
    return DynamoDbOptions(
        region="us-east-1",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        connect_timeout=0.5,
        max_attempts=1,
        access_key_id="testing",
        secret_access_key="testing",
    )


async def test_a_request_after_the_deadline_is_refused_without_being_sent() -> None:
    async with open_dynamodb_client(closed_port_options()) as client:
        with deadline_in(0.05):
            await asyncio.sleep(0.1)  # the deadline passes while the caller is busy elsewhere
            with pytest.raises(DeadlineExceeded, match="GetItem"):
                await client.get_item(TableName="Users", Key=KEY)


async def test_a_request_before_the_deadline_is_sent() -> None:
    async with open_dynamodb_client(closed_port_options()) as client:
        with deadline_in(30), pytest.raises(EndpointConnectionError):
            await client.get_item(TableName="Users", Key=KEY)


async def test_without_a_deadline_requests_are_sent() -> None:
    async with open_dynamodb_client(closed_port_options()) as client:
        with deadline_in(None), pytest.raises(EndpointConnectionError):
            await client.get_item(TableName="Users", Key=KEY)


async def test_the_deadline_ends_with_its_block(moto_endpoint: str) -> None:
    options = DynamoDbOptions(
        region="us-east-1",
        endpoint_url=moto_endpoint,
        access_key_id="testing",
        secret_access_key="testing",
    )
    async with open_dynamodb_client(options) as client:
        with deadline_in(0):
            pass
        tables = await client.list_tables()
    assert "TableNames" in tables
