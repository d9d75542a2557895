"""The ``user-service`` command: serve, init-tables, health, keys, export, import, migrate,
import-legacy."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import ValidationError

from server.operations.logging_config import configure_logging
from server.roles import ROLES
from server.settings import Settings, describe_invalid_settings

PROG = "user-service"
HEALTH_CHECK_TIMEOUT_SECONDS = 3.0
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

log = logging.getLogger(PROG)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG, description="gRPC service owning the user accounts of Biome."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("serve", help="run the gRPC server until SIGTERM or SIGINT")
    commands.add_parser(
        "init-tables", help="create the DynamoDB tables and indexes that are missing"
    )
    commands.add_parser(
        "health", help="exit 0 when the local server reports SERVING (for container health checks)"
    )
    new_key = commands.add_parser(
        "new-api-key",
        help="print a new random API key for a calling service, and the settings entry for it",
    )
    new_key.add_argument("name", help="the calling service's name, as logs will show it")
    new_key.add_argument(
        "--role",
        action="append",
        default=[],
        choices=list(ROLES),
        help="a role to grant (repeatable), e.g. users:read",
    )
    commands.add_parser(
        "new-signing-key",
        help="print a new Ed25519 private key (PEM) for signing access tokens",
    )
    _add_data_commands(commands)
    args = parser.parse_args(argv)
    # These two make secrets for an operator to keep; they need no settings.
    if args.command == "new-api-key":
        return _new_api_key(args.name, args.role)
    if args.command == "new-signing-key":
        return _new_signing_key()

    try:
        settings = Settings()
    except ValidationError as error:
        _fail(describe_invalid_settings(error))
        return EXIT_USAGE
    if args.command == "serve" and (missing := settings.unmet_serving_requirement()):
        _fail(f"invalid settings: {missing}")
        return EXIT_USAGE
    configure_logging(
        settings.log_level,
        log_format=settings.log_format_kind,
        levels=settings.log_levels,
        # The service's log is its output; the other commands print results on stdout.
        stream=sys.stdout if args.command == "serve" else sys.stderr,
    )
    if args.command in DATA_COMMANDS:
        from datatools.commands import run_data_command

        return run_data_command(settings, args.command, args)
    run: Callable[[Settings], int] = {
        "serve": _serve,
        "init-tables": _init_tables,
        "health": _health,
    }[args.command]
    return run(settings)


DATA_COMMANDS = frozenset({"export", "import", "migrate", "import-legacy"})


def _add_data_commands(commands: Any) -> None:
    export = commands.add_parser(
        "export",
        help="write every user and its email guard to a JSON Lines file (as secret as the table)",
    )
    export.add_argument("file", help="the file to write (FILE.partial until complete); - : stdout")
    export.add_argument(
        "--resume", action="store_true", help="continue the interrupted export in FILE.partial"
    )
    export.add_argument("--page-size", type=_positive, help="items per Scan request")
    load = commands.add_parser(
        "import",
        help="write the users of an export file into the tables; never over a newer version",
    )
    load.add_argument("file", help="an export file; - : stdin")
    load.add_argument(
        "--concurrency", type=_positive, default=8, help="users written at once (default 8)"
    )
    load.add_argument(
        "--mark-verified",
        action="store_true",
        help="mark every user it writes as having a verified address (the file's owner vouches)",
    )
    legacy = commands.add_parser(
        "import-legacy",
        help="check, then write the users of the old system's export (CSV or JSON Lines)",
        description=(
            "Reads PATH (.csv or .jsonl) with ASP.NET Identity's AspNetUsers columns (Id, Email, "
            "EmailConfirmed, PasswordHash, LockoutEnd, LockoutEnabled) plus FirstName, LastName "
            "and CreatedAt, checks every row, and writes the users that pass with their password "
            "hashes as they are. Running it again skips the users already written."
        ),
    )
    legacy.add_argument("path", help="the file to import (.csv or .jsonl, UTF-8)")
    legacy.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="FIELD=COLUMN",
        help=(
            "read FIELD from COLUMN (repeatable); fields: id, email, first_name, last_name, "
            "password_hash, hash_format, created, email_verified, disabled, lockout_end, "
            "lockout_enabled"
        ),
    )
    legacy.add_argument(
        "--dry-run", action="store_true", help="check every row and print the report; write nothing"
    )
    legacy.add_argument(
        "--concurrency", type=_positive, default=16, help="users written at once (default 16)"
    )
    migrate = commands.add_parser(
        "migrate", help="upgrade every user item of an older schema in place, while serving"
    )
    migrate.add_argument("--dry-run", action="store_true", help="count, write nothing")
    migrate.add_argument("--page-size", type=_positive, help="items per Scan request")
    migrate.add_argument(
        "--mark-verified-before",
        type=_aware_time,
        metavar="TIME",
        help=(
            "also mark verified the address of every account created before TIME (ISO 8601 with "
            "a UTC offset, e.g. 2026-12-07T00:00:00Z) whose address is not: for the accounts "
            "registered before addresses were verified"
        ),
    )


def _aware_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("must have a UTC offset (Z or +00:00)")
    return moment


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


# serve and init-tables import the heavy parts lazily, so that `health` (run by the container
# HEALTHCHECK every few seconds) starts quickly.


def _serve(settings: Settings) -> int:
    from server.app import serve

    try:
        asyncio.run(serve(settings))
    except Exception as error:
        log.debug("serve failed", exc_info=True)
        _fail(f"cannot serve: {str(error) or type(error).__name__}")
        return EXIT_FAILURE
    return EXIT_OK


def _init_tables(settings: Settings) -> int:
    try:
        created, present = asyncio.run(_create_missing_tables(settings))
    except Exception as error:
        log.debug("init-tables failed", exc_info=True)
        _fail(f"cannot create the tables: {str(error) or type(error).__name__}")
        return EXIT_FAILURE
    for name in created:
        print(f"{name}: created")
    for name in present:
        print(f"{name}: already present")
    return EXIT_OK


async def _create_missing_tables(settings: Settings) -> tuple[list[str], list[str]]:
    from persistence.dynamodb_client import open_dynamodb_client
    from persistence.table_initializer import ensure_tables
    from server.from_settings import dynamodb_options, table_names

    tables = table_names(settings)
    async with open_dynamodb_client(
        dynamodb_options(settings, settings.dynamodb_endpoint)
    ) as client:
        created = await ensure_tables(client, tables)
    every = (tables.users, tables.emails, tables.events, tables.sessions)
    return created, [name for name in every if name not in created]


def _health(settings: Settings) -> int:
    if settings.health_port is not None:
        target = f"127.0.0.1:{settings.health_port}"  # plaintext, loopback only
    elif settings.tls_cert_file is not None:
        _fail("the service port speaks TLS; set USER_SERVICE_HEALTH_PORT for local health checks")
        return EXIT_USAGE
    else:
        host = "127.0.0.1" if settings.host in {"0.0.0.0", "::", ""} else settings.host
        target = f"[{host}]:{settings.port}" if ":" in host else f"{host}:{settings.port}"
    with grpc.insecure_channel(target) as channel:
        return check_health(channel, target)


def check_health(channel: grpc.Channel, target: str) -> int:
    """Asks grpc.health.v1.Health/Check over ``channel``; exit code 0 only when SERVING."""
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(  # type: ignore[attr-defined, unused-ignore]
            health_pb2.HealthCheckRequest(service=""), timeout=HEALTH_CHECK_TIMEOUT_SECONDS
        )
    except grpc.RpcError as error:
        _fail(f"health check of {target} failed: {error.code().name}")
        return EXIT_FAILURE
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(status)
    return EXIT_OK if reply.status == health_pb2.HealthCheckResponse.SERVING else EXIT_FAILURE


def _new_api_key(name: str, roles: list[str]) -> int:
    import json

    from server.crypto.api_keys import api_key_sha256, new_api_key

    key = new_api_key()
    entry = {"name": name, "sha256": api_key_sha256(key), "roles": roles}
    print(f"API key (give it to {name}; it is shown only this once):")
    print(f"  {key}")
    print("Entry for USER_SERVICE_API_KEYS (a JSON list of such entries):")
    print(f"  {json.dumps(entry)}")
    return EXIT_OK


def _new_signing_key() -> int:
    from server.crypto.access_tokens import generate_signing_keys, signing_key_pem

    sys.stdout.write(signing_key_pem(generate_signing_keys()))
    return EXIT_OK


def _fail(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)
