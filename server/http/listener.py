"""Starting and stopping the HTTP listener on its own port, with TLS when the service has it."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from server.http.routes import http_app
from server.operations.metrics import Metrics

# What stop() gives requests under way (probes and key fetches take milliseconds).
STOP_GRACE_SECONDS = 1.0
# How long an idle keep-alive connection is kept: a kubelet or a verifier asks every few seconds
# to every few minutes, so holding connections longer only lets idle ones pile up (aiohttp's own
# default is an hour).
KEEPALIVE_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class HttpListener:
    """A started listener: its port, the base URL it advertises, and how to stop it."""

    runner: web.AppRunner
    port: int
    public_url: str

    async def stop(self) -> None:
        """Stops answering and closes the socket."""
        await self.runner.cleanup()


async def start_http_listener(
    *,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    public_url: str | None,
    keys: list[dict[str, str]],
    issuer: str,
    ready: Callable[[], bool],
    metrics: Metrics | None,
) -> HttpListener:
    """Binds ``host:port`` (0: a free port), then serves the routes of server.http.routes.

    ``public_url`` defaults to this listener's own URL (https with ``ssl_context``).
    """
    sock = _bind(host, port)
    try:
        bound = int(sock.getsockname()[1])
        if public_url is None:
            scheme = "http" if ssl_context is None else "https"
            public_url = f"{scheme}://{_url_host(host)}:{bound}"
        app = http_app(
            keys=keys, issuer=issuer, public_url=public_url, ready=ready, metrics=metrics
        )
        # No access log: the kubelet's probes would write two lines every few seconds.
        runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=STOP_GRACE_SECONDS,
            keepalive_timeout=KEEPALIVE_TIMEOUT_SECONDS,
        )
        await runner.setup()
    except BaseException:
        sock.close()
        raise
    try:
        await web.SockSite(runner, sock, ssl_context=ssl_context).start()
    except BaseException:
        await runner.cleanup()
        sock.close()
        raise
    return HttpListener(runner=runner, port=bound, public_url=public_url)


def _bind(host: str, port: int) -> socket.socket:
    if ":" in host:  # "::" takes IPv4 too where it can, as the gRPC port's "[::]" does
        return socket.create_server(
            (host, port), family=socket.AF_INET6, dualstack_ipv6=socket.has_dualstack_ipv6()
        )
    return socket.create_server((host, port), family=socket.AF_INET)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
