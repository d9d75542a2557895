"""The real grpcurl binary against the running service: reflection, JSON calls and health."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import Service

GRPCURL = Path(sys.executable).parent / "grpcurl"

pytestmark = pytest.mark.skipif(
    not GRPCURL.exists(), reason=f"grpcurl is not installed next to {sys.executable}"
)


async def grpcurl(service: Service, *command: str, data: str | None = None) -> str:
    """Runs grpcurl in plaintext, without blocking the event loop that the server runs on."""
    options = ["-plaintext", *(["-d", data] if data is not None else [])]
    process = await asyncio.create_subprocess_exec(
        str(GRPCURL),
        *options,
        service.target,
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


async def test_grpcurl_lists_the_services_through_reflection(service: Service) -> None:
    output = await grpcurl(service, "list")

    assert set(output.split()) >= {"biome.user.v1.UserService", "grpc.health.v1.Health"}


async def test_grpcurl_describes_every_rpc_of_the_user_service(service: Service) -> None:
    output = await grpcurl(service, "describe", "biome.user.v1.UserService")

    for rpc in (
        "RegisterUser",
        "GetUser",
        "GetUserByEmail",
        "UpdateProfile",
        "ListUsers",
        "DeleteUser",
    ):
        assert f"rpc {rpc}" in output


async def test_grpcurl_registers_a_user_from_json_and_finds_it_by_email(service: Service) -> None:
    request = {
        "email": "Katherine.Johnson@Example.com",
        "password": "orbital-mechanics",
        "firstName": "Katherine",
        "lastName": "Johnson",
    }

    registered = json.loads(
        await grpcurl(service, "biome.user.v1.UserService/RegisterUser", data=json.dumps(request))
    )
    found = json.loads(
        await grpcurl(
            service,
            "biome.user.v1.UserService/GetUserByEmail",
            data='{"email": "katherine.johnson@example.com"}',
        )
    )

    assert registered["email"] == "Katherine.Johnson@Example.com"
    assert registered["status"] == "USER_STATUS_ACTIVE"
    assert registered["version"] == "1"  # int64 is a string in proto3 JSON
    assert "password" not in json.dumps(registered).lower()
    assert found == registered


async def test_grpcurl_health_check_reports_serving(service: Service) -> None:
    output = await grpcurl(service, "grpc.health.v1.Health/Check")

    assert json.loads(output) == {"status": "SERVING"}
