"""The bare gRPC server the floor and the limit run in: one handler and the standard health
service, on the configured port, until SIGTERM or SIGINT, on the event loop the service's
``serve`` would run on (USER_SERVICE_EVENT_LOOP), so that the service's ratios to them compare
like with like."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Coroutine
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from server.interceptors.request_size import GRPC_RECEIVE_LIMIT_BYTES
from server.operations import event_loop
from server.settings import Settings


def run_server(serve: Callable[[Settings], Coroutine[Any, Any, None]]) -> None:
    """``serve(Settings())`` on the event loop the settings name, as ``user-service serve``
    runs the service; Ctrl-C ends it quietly."""
    settings = Settings()
    with contextlib.suppress(KeyboardInterrupt):
        event_loop.run(serve(settings), settings.event_loop)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (call from the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def serve_until(
    stop: asyncio.Event, handler: grpc.GenericRpcHandler, *, host: str, port: int
) -> None:
    """Serve ``handler`` (and health, SERVING) on ``host:port`` until ``stop`` is set."""
    server = grpc.aio.server(
        options=[("grpc.max_receive_message_length", GRPC_RECEIVE_LIMIT_BYTES)]
    )
    server.add_generic_rpc_handlers((handler,))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    # Into the child's log: which loop the bench's ratios were taken on.
    loop = event_loop.loop_kind(asyncio.get_running_loop())
    print(f"serving on {host}:{port}, event loop {loop}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop(1.0)
