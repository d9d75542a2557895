"""An in-memory DynamoDB (moto's app over HTTP) for development and tests, one request at a time.

moto's own server is threaded and its DynamoDB backend takes no lock: concurrent
TransactWriteItems interleave (lost writes, a user without its guard item, HTTP 500
"dictionary changed size during iteration"). Real DynamoDB applies each request
atomically; serving requests one at a time restores that. It also lets
``server.embedded_moto_speedups`` (applied here unless ``speedups=False``) undo a cancelled
transaction item by item instead of copying whole tables, and page Scans without sorting the
table, so the embedded DynamoDB keeps its speed at 100,000 users.

In-process: ``EmbeddedDynamoDb().start()`` (the development default). As its own
process, for tests and the benchmark: ``python -m server.embedded_dynamodb --host 127.0.0.1
--port PORT`` (``--without-speedups``: moto exactly as released, to compare against).
"""

from __future__ import annotations

import argparse
import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from werkzeug.serving import BaseWSGIServer

log = logging.getLogger(__name__)

CLIENT_TIMEOUT_SECONDS = 2.0


class EmbeddedDynamoDbUnavailable(RuntimeError):
    """moto, which provides the embedded DynamoDB, is not installed."""


def _make_server(host: str, port: int, *, speedups: bool = True) -> BaseWSGIServer:
    try:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server
    except ImportError as error:
        raise EmbeddedDynamoDbUnavailable(
            "the embedded DynamoDB needs moto: pip install 'user-service[embedded]', "
            "or set USER_SERVICE_DYNAMODB_ENDPOINT to a DynamoDB endpoint"
        ) from error
    if speedups:
        from server import embedded_moto_speedups

        embedded_moto_speedups.apply()

    class PatientRequestHandler(MotoRequestHandler):
        # One request at a time means one stalled client (a connection opened and never
        # written to, e.g. by a task cancelled mid-request) would stall every other client:
        # such a connection is dropped after this many seconds.
        timeout = CLIENT_TIMEOUT_SECONDS

    app = DomainDispatcherApplication(create_backend_app)
    return make_server(host, port, app, threaded=False, request_handler=PatientRequestHandler)


class EmbeddedDynamoDb:
    """moto's DynamoDB on a free loopback port, served by one background thread of this process."""

    def __init__(self, *, speedups: bool = True) -> None:
        self._speedups = speedups
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Starts the server and returns its endpoint URL."""
        self._server = _make_server("127.0.0.1", 0, speedups=self._speedups)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="embedded-dynamodb", daemon=True
        )
        self._thread.start()
        url = f"http://127.0.0.1:{self._server.server_port}"
        log.warning(
            "Using an embedded in-memory DynamoDB at %s: "
            "all data lives in memory and is lost when the process exits",
            url,
        )
        return url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Serve moto's DynamoDB over HTTP, one request at a time."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--without-speedups",
        action="store_true",
        help="serve moto as released, without server/embedded_moto_speedups.py (to compare)",
    )
    args = parser.parse_args()
    _make_server(args.host, args.port, speedups=not args.without_speedups).serve_forever()


if __name__ == "__main__":
    main()
