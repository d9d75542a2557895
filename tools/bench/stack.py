"""The processes measured side by side: moto, the service, the floor, a large-table service."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

from tools.bench.environment import Tables, default_environment, on_moto
from tools.bench.processes import (
    HOST,
    START_TIMEOUT_SECONDS,
    Child,
    free_port,
    start_child,
    stop_child,
    wait_until_answering,
    wait_until_serving,
)


@dataclass(frozen=True)
class Stack:
    """Everything running: where each listens, and the tables of each service."""

    moto: Child
    endpoint: str
    service: Child
    service_target: str
    tables: Tables
    floor: Child
    floor_target: str
    large_service: Child  # the same service on tables of their own, for the large scale point
    large_target: str
    large_tables: Tables


@contextlib.asynccontextmanager
async def running_stack(
    logs: Path, settings: Sequence[tuple[str, str]] = ()
) -> AsyncIterator[Stack]:
    """Starts moto, the service (which creates fresh tables), the floor on the service's tables,
    and the second service; stops them all at the end.

    The floor gets the service's environment (``settings`` included), so that it builds the
    same DynamoDB client.
    """
    async with contextlib.AsyncExitStack() as stack:

        async def start(name: str, args: list[str], environment: dict[str, str]) -> Child:
            child = await start_child(name, args, environment, logs)
            stack.push_async_callback(stop_child, child)
            return child

        moto_port = free_port()
        endpoint = f"http://{HOST}:{moto_port}"
        moto_args = ["-m", "server.embedded_dynamodb", "--host", HOST, "--port", str(moto_port)]
        moto = await start("moto", moto_args, default_environment(moto_port))
        await wait_until_answering(endpoint, moto, START_TIMEOUT_SECONDS)

        started: dict[str, tuple[Child, str, Tables]] = {}
        for name in ("service", "large-service"):
            suffix = uuid4().hex[:8]
            tables = Tables(
                users=f"Users-bench-{suffix}",
                emails=f"UserEmails-bench-{suffix}",
                events=f"UserEvents-bench-{suffix}",
                sessions=f"UserSessions-bench-{suffix}",
            )
            port = free_port()
            environment = on_moto(port, endpoint, tables, settings)
            child = await start(name, ["-m", "server", "serve"], environment)
            await wait_until_serving(f"{HOST}:{port}", child, START_TIMEOUT_SECONDS)
            started[name] = child, f"{HOST}:{port}", tables

        service, service_target, tables = started["service"]
        floor_port = free_port()
        floor_environment = on_moto(floor_port, endpoint, tables, settings)
        floor = await start("floor", ["-m", "tools.bench.floor"], floor_environment)
        await wait_until_serving(f"{HOST}:{floor_port}", floor, START_TIMEOUT_SECONDS)

        yield Stack(
            moto,
            endpoint,
            service,
            service_target,
            tables,
            floor,
            f"{HOST}:{floor_port}",
            *started["large-service"],
        )
