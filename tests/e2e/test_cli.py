"""The ``user-service`` command as a real subprocess: init-tables, serve, health, bad settings."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from uuid import uuid4

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from persistence.dynamodb_client import DynamoDbOptions, open_dynamodb_client
from tests.conftest import free_port
from tests.tls_material import make_tls_material

ROOT = Path(__file__).resolve().parents[2]
GRACE_SECONDS = 3.0


def cli_environment(**variables: str) -> dict[str, str]:
    """The test's environment without any service or endpoint configuration, plus ``variables``."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("USER_SERVICE_", "AWS_ENDPOINT_URL"))
    }
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(ROOT / "protos"), environment.get("PYTHONPATH", "")]
    )
    environment.update(variables)
    return environment


async def start_cli(*args: str, environment: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        *args,
        cwd=ROOT,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def run_cli(*args: str, environment: dict[str, str]) -> tuple[int, str, str]:
    process = await start_cli(*args, environment=environment)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_init_tables_creates_the_users_table_with_its_indexes_and_the_email_guard_table(
    moto_endpoint: str,
) -> None:
    suffix = uuid4().hex[:8]
    users, emails, events = f"Users-{suffix}", f"UserEmails-{suffix}", f"UserEvents-{suffix}"
    sessions = f"UserSessions-{suffix}"
    environment = cli_environment(
        AWS_ENDPOINT_URL_DYNAMODB=moto_endpoint,
        USER_SERVICE_TABLE_NAME=users,
        USER_SERVICE_EMAIL_TABLE_NAME=emails,
        USER_SERVICE_EVENTS_TABLE_NAME=events,
        USER_SERVICE_SESSIONS_TABLE_NAME=sessions,
    )

    code, stdout, stderr = await run_cli("init-tables", environment=environment)

    assert code == 0, stderr
    assert stdout.splitlines() == [
        f"{users}: created",
        f"{emails}: created",
        f"{events}: created",
        f"{sessions}: created",
    ]
    async with open_dynamodb_client(
        DynamoDbOptions(region="us-east-1", endpoint_url=moto_endpoint)
    ) as client:
        users_table = (await client.describe_table(TableName=users))["Table"]
        emails_table = (await client.describe_table(TableName=emails))["Table"]
    assert users_table["KeySchema"] == [{"AttributeName": "Id", "KeyType": "HASH"}]
    indexes = {index["IndexName"]: index for index in users_table["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"EmailIndex", "RefreshTokenIndex"}
    for name, index in indexes.items():
        assert index["KeySchema"] == [{"AttributeName": name, "KeyType": "HASH"}]
        assert index["Projection"]["ProjectionType"] == "KEYS_ONLY"
    assert emails_table["KeySchema"] == [{"AttributeName": "Email", "KeyType": "HASH"}]


async def test_init_tables_a_second_time_reports_the_tables_as_present(moto_endpoint: str) -> None:
    suffix = uuid4().hex[:8]
    environment = cli_environment(
        AWS_ENDPOINT_URL_DYNAMODB=moto_endpoint,
        USER_SERVICE_TABLE_NAME=f"Users-{suffix}",
        USER_SERVICE_EMAIL_TABLE_NAME=f"UserEmails-{suffix}",
        USER_SERVICE_EVENTS_TABLE_NAME=f"UserEvents-{suffix}",
        USER_SERVICE_SESSIONS_TABLE_NAME=f"UserSessions-{suffix}",
    )
    assert (await run_cli("init-tables", environment=environment))[0] == 0

    code, stdout, stderr = await run_cli("init-tables", environment=environment)

    assert code == 0, stderr
    assert stdout.splitlines() == [
        f"Users-{suffix}: already present",
        f"UserEmails-{suffix}: already present",
        f"UserEvents-{suffix}: already present",
        f"UserSessions-{suffix}: already present",
    ]


async def test_init_tables_against_an_unreachable_endpoint_fails_with_one_line() -> None:
    environment = cli_environment(
        AWS_ENDPOINT_URL_DYNAMODB=f"http://127.0.0.1:{free_port()}",
        USER_SERVICE_DYNAMODB_MAX_ATTEMPTS="1",
        USER_SERVICE_DYNAMODB_CONNECT_TIMEOUT="0.5",
    )

    code, _, stderr = await run_cli("init-tables", environment=environment)

    assert code == 1
    assert stderr.startswith("user-service: cannot create the tables:")
    assert len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr


async def test_an_invalid_setting_exits_2_with_one_line_naming_its_variable() -> None:
    code, _, stderr = await run_cli(
        "serve", environment=cli_environment(USER_SERVICE_PORT="notaport")
    )

    assert code == 2
    assert stderr.strip().splitlines() == [
        "user-service: invalid setting USER_SERVICE_PORT: "
        "Input should be a valid integer, unable to parse string as an integer"
    ]


async def test_production_refuses_the_embedded_dynamodb_with_one_line() -> None:
    environment = cli_environment(
        USER_SERVICE_PROFILE="production", USER_SERVICE_EMBEDDED_DYNAMODB="true"
    )

    code, _, stderr = await run_cli("serve", environment=environment)

    assert code == 2
    [line] = stderr.strip().splitlines()
    assert line.startswith("user-service: invalid setting USER_SERVICE_EMBEDDED_DYNAMODB:")
    assert "development only" in line


async def health_status(port: int) -> int | None:
    """The overall health status the server at ``port`` reports; None while it does not answer."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(  # type: ignore[attr-defined, unused-ignore]
                health_pb2.HealthCheckRequest(), timeout=1
            )
        except grpc.aio.AioRpcError:
            return None
    return int(reply.status)


async def test_serve_on_the_embedded_dynamodb_becomes_serving_and_stops_gracefully_on_sigterm() -> (
    None
):
    port = free_port()
    environment = cli_environment(
        USER_SERVICE_PORT=str(port),
        USER_SERVICE_SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS),
        USER_SERVICE_LOG_LEVEL="info",
    )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        environment.pop(name, None)  # a local endpoint in development needs no credentials
    process = await start_cli("serve", environment=environment)
    try:
        deadline = time.monotonic() + 30
        while await health_status(port) != health_pb2.HealthCheckResponse.SERVING:
            assert process.returncode is None, "the server exited early"
            assert time.monotonic() < deadline, "the server did not become SERVING within 30 s"
            await asyncio.sleep(0.1)
        code, stdout, _ = await run_cli("health", environment=environment)
        assert (code, stdout.strip()) == (0, "SERVING")

        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        output, errors = await asyncio.wait_for(process.communicate(), timeout=GRACE_SECONDS + 10)
        elapsed = time.monotonic() - started
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

    log = output.decode()  # the service logs on stdout; stderr is for the command's own errors
    assert process.returncode == 0, log + errors.decode()
    assert elapsed < GRACE_SECONDS, f"took {elapsed:.1f} s to stop"
    warnings = [line for line in log.splitlines() if "lost when the process exits" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0]
    assert f"listening on 127.0.0.1:{port}" in log


async def test_health_command_fails_when_nothing_listens() -> None:
    code, _, stderr = await run_cli(
        "health", environment=cli_environment(USER_SERVICE_PORT=str(free_port()))
    )

    assert code == 1
    assert stderr.startswith("user-service: health check of 127.0.0.1:")


async def test_health_command_uses_the_loopback_health_port_when_the_service_speaks_tls(
    tmp_path: Path,
) -> None:
    material = make_tls_material(tmp_path)
    port, health_port = free_port(), free_port()
    environment = cli_environment(
        USER_SERVICE_PORT=str(port),
        USER_SERVICE_HEALTH_PORT=str(health_port),
        USER_SERVICE_TLS_CERT_FILE=str(material.server_cert),
        USER_SERVICE_TLS_KEY_FILE=str(material.server_key),
        USER_SERVICE_SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS),
    )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        environment.pop(name, None)
    process = await start_cli("serve", environment=environment)
    try:
        deadline = time.monotonic() + 30
        while await health_status(health_port) != health_pb2.HealthCheckResponse.SERVING:
            assert process.returncode is None, "the server exited early"
            assert time.monotonic() < deadline, "the server did not become SERVING within 30 s"
            await asyncio.sleep(0.1)

        code, stdout, _ = await run_cli("health", environment=environment)
        without_port = dict(environment)
        del without_port["USER_SERVICE_HEALTH_PORT"]
        refused, _, stderr = await run_cli("health", environment=without_port)
        plaintext_on_tls_port = await health_status(port)
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), timeout=GRACE_SECONDS + 10)

    assert (code, stdout.strip()) == (0, "SERVING")
    assert refused == 2 and "set USER_SERVICE_HEALTH_PORT" in stderr
    assert plaintext_on_tls_port is None, "the service port must not answer in plaintext"


async def test_init_tables_runs_in_production_without_the_secrets_serving_needs(
    moto_endpoint: str,
) -> None:
    suffix = uuid4().hex[:8]
    users, emails, events = f"Users-{suffix}", f"UserEmails-{suffix}", f"UserEvents-{suffix}"
    environment = cli_environment(
        USER_SERVICE_PROFILE="production",
        AWS_ENDPOINT_URL_DYNAMODB=moto_endpoint,
        USER_SERVICE_TABLE_NAME=users,
        USER_SERVICE_EMAIL_TABLE_NAME=emails,
        USER_SERVICE_EVENTS_TABLE_NAME=events,
        USER_SERVICE_SESSIONS_TABLE_NAME=f"UserSessions-{suffix}",
    )

    code, stdout, stderr = await run_cli("init-tables", environment=environment)

    assert code == 0, stderr
    assert stdout.splitlines() == [
        f"{users}: created",
        f"{emails}: created",
        f"{events}: created",
        f"UserSessions-{suffix}: created",
    ]


async def test_serve_in_production_without_tls_refuses_with_one_line() -> None:
    environment = cli_environment(
        USER_SERVICE_PROFILE="production", AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:9"
    )

    code, _, stderr = await run_cli("serve", environment=environment)

    assert code == 2
    [line] = stderr.strip().splitlines()
    assert line.startswith("user-service: invalid settings: production needs USER_SERVICE_TLS")
