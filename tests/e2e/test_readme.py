"""The README stays true: its grpcurl session works as pasted, and its configuration table is complete."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import grpc

from biome.user.v1 import user_service_pb2 as pb
from server.settings import Settings
from tests.e2e.harness import Service, rpc_error

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block_after(heading: str) -> str:
    text = README.read_text()
    section = text.split(f"## {heading}\n", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match, f"no bash block under '## {heading}'"
    return match.group(1)


async def test_readme_grpcurl_session_works_as_pasted(service: Service) -> None:
    script = readme_block_after("A grpcurl session").replace("localhost:50051", service.target)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-euo",
        "pipefail",
        "-c",
        script,
        cwd=README.parent,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    output = stdout.decode()
    assert process.returncode == 0, stderr.decode() + output
    assert "biome.user.v1.UserService" in output and "grpc.health.v1.Health" in output
    assert '"status": "SERVING"' in output
    assert '"first_name": "Augusta Ada"' in output
    assert '"email": "Ada@Example.com"' in output
    gone = await rpc_error(service.stub.GetUserByEmail(pb.GetUserByEmailRequest(email="ada@example.com")))
    assert gone.code() is grpc.StatusCode.NOT_FOUND


def test_readme_configuration_table_names_every_setting() -> None:
    text = README.read_text()
    missing = [name for name in Settings.model_fields if f"USER_SERVICE_{name.upper()}" not in text]
    assert missing == []
