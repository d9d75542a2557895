"""moto_server's app behind a one-request-at-a-time HTTP server, so each request is atomic.

moto's own server is threaded and its DynamoDB backend takes no lock: concurrent TransactWriteItems
interleave (lost writes, a user without its guard item, 500 "dictionary changed size during
iteration"). Real DynamoDB applies each request atomically; serving requests one at a time restores
that. Usage: python tests/moto_serialized_server.py -H 127.0.0.1 -p PORT
"""

from __future__ import annotations

import argparse

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(args.host, args.port, app, threaded=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
