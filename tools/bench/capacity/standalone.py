"""The capacity phase on its own (for ``make capacity`` without bench results): moto, seeded
users, then the phase; a minute or two instead of the whole benchmark."""

from __future__ import annotations

import contextlib
from pathlib import Path
from uuid import uuid4

from persistence.dynamodb_client import DynamoDbOptions, open_dynamodb_client
from persistence.schema import TableNames
from persistence.table_initializer import ensure_tables
from server.from_settings import LOCAL_CREDENTIALS
from tools.bench.capacity.phase import measure_capacity
from tools.bench.capacity.results import CapacityResults
from tools.bench.environment import Tables, default_environment
from tools.bench.processes import (
    HOST,
    START_TIMEOUT_SECONDS,
    free_port,
    start_child,
    stop_child,
    wait_until_answering,
)
from tools.bench.seed import Seeded, seed_users, seeded_password_hash

SEEDED_USERS = 200  # enough for a full ListUsers page
SEED_SECONDS = 300.0
RPC_TIMEOUT_SECONDS = 10.0


async def measure_alone(logs: Path, *, quick: bool = False) -> CapacityResults:
    """Starts moto on a loopback port, seeds users, runs the capacity phase, stops moto."""
    async with contextlib.AsyncExitStack() as stack:
        port = free_port()
        endpoint = f"http://{HOST}:{port}"
        moto_args = ["-m", "server.embedded_dynamodb", "--host", HOST, "--port", str(port)]
        moto = await start_child("moto", moto_args, default_environment(port), logs)
        stack.push_async_callback(stop_child, moto)
        await wait_until_answering(endpoint, moto, START_TIMEOUT_SECONDS)
        suffix = uuid4().hex[:8]
        tables = Tables(
            f"Users-{suffix}",
            f"UserEmails-{suffix}",
            f"UserEvents-{suffix}",
            f"UserSessions-{suffix}",
        )
        options = DynamoDbOptions(
            region="us-east-1",
            endpoint_url=endpoint,
            access_key_id=LOCAL_CREDENTIALS[0],
            secret_access_key=LOCAL_CREDENTIALS[1],
        )
        client = await stack.enter_async_context(open_dynamodb_client(options))
        await ensure_tables(
            client, TableNames(tables.users, tables.emails, tables.events, tables.sessions)
        )
        await seed_users(
            client,
            tables,
            Seeded(),
            count=SEEDED_USERS,
            password_hash=await seeded_password_hash({}),
            in_flight=4,
            within=SEED_SECONDS,
        )
        return await measure_capacity(
            endpoint, tables, logs, quick=quick, rpc_timeout=RPC_TIMEOUT_SECONDS
        )
    raise AssertionError("unreachable")  # for mypy: the exit stack may swallow exceptions
