"""The client kit installs alone: a wheel built from clients/python, installed into a fresh venv
with nothing of the server, runs the README's flows against the running service."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from uuid import uuid4

import pytest
from user_service_client import connect, pb

from tests.e2e.harness import Service
from tests.e2e.test_client_kit import readme_kit_block
from tests.jwks_server import serving_jwks

ROOT = Path(__file__).resolve().parents[2]

DRIVER = """
import asyncio, importlib.util, json, sys

for name in ("biome", "server", "domain", "persistence", "aiohttp", "pydantic"):
    if importlib.util.find_spec(name) is not None:
        sys.exit(f"{name} is importable: the kit is not alone")

import readme_flows


async def read_code(email: str) -> str:
    raise AssertionError("this service does not ask for a verified address")


user = asyncio.run(readme_flows.session(sys.argv[1], sys.argv[2], sys.argv[3], read_code))
print(json.dumps({"id": user.id, "email": user.email}))
"""


def run(*command: str | Path, cwd: Path) -> None:
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def kit_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the kit's wheel and its dependencies only: its python."""
    work = tmp_path_factory.mktemp("kit-wheel")
    # Built from a copy, so no build/ left in clients/python by an earlier build leaks into it.
    source = work / "src"
    shutil.copytree(
        ROOT / "clients" / "python",
        source,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
    )
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "-w",
        work / "dist",
        source,
        cwd=work,
    )
    (wheel,) = (work / "dist").glob("user_service_client-*.whl")
    run(sys.executable, "-m", "venv", work / "venv", cwd=work)
    python = work / "venv" / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", "-c", ROOT / "constraints.txt", wheel, cwd=work)
    return python


@pytest.mark.slow
async def test_the_kits_wheel_alone_runs_the_readme_flows(
    kit_venv: Path, service: Service, tmp_path: Path
) -> None:
    (tmp_path / "readme_flows.py").write_text(readme_kit_block())
    (tmp_path / "driver.py").write_text(textwrap.dedent(DRIVER))
    email = f"wheel-{uuid4().hex[:12]}@example.com"

    async with serving_jwks(service.jwks) as jwks:
        process = await asyncio.create_subprocess_exec(
            kit_venv,
            "driver.py",
            service.target,
            jwks.url,
            email,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)

    assert process.returncode == 0, stderr.decode()
    reported = json.loads(stdout)
    async with connect(service.target) as client:
        stored = await client.GetUser(pb.GetUserRequest(id=reported["id"]))
    assert stored.email == email == reported["email"]
    assert jwks.requests == 1  # the kit in the fresh venv fetched the key set over HTTP
