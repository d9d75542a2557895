"""The bare gRPC server the floor and the limit run in: one handler and the standard health
service, on the configured port, until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from server.interceptors.request_size import GRPC_RECEIVE_LIMIT_BYTES


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
    try:
        await stop.wait()
    finally:
        await server.stop(1.0)
