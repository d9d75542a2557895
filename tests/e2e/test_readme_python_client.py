"""The README's plain-grpcio Python client ("Clients in other languages", "### Python") works as
pasted: its stubs generated from the shipped proto, its program run against the service."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from tests.e2e.harness import Service
from tests.e2e.test_readme import README, run_block


def python_section() -> str:
    section = README.read_text().split("## Clients in other languages\n", 1)[1]
    return section.split("### Python\n", 1)[1].split("\n## ", 1)[0]


def block(language: str) -> str:
    match = re.search(rf"```{language}\n(.*?)```", python_section(), re.DOTALL)
    assert match, f"no {language} block under ### Python"
    return match.group(1)


async def test_the_readme_python_client_works_as_pasted(service: Service, tmp_path: Path) -> None:
    only_protos = shutil.ignore_patterns("*.py", "*.pyi", "__pycache__")
    shutil.copytree(README.parent / "protos", tmp_path / "protos", ignore=only_protos)
    program = block("python").replace("localhost:50051", service.target)
    (tmp_path / "client.py").write_text(program)

    output = await run_block(block("bash"), cwd=tmp_path)

    assert (tmp_path / "gen" / "biome" / "user" / "v1" / "user_service_pb2_grpc.py").exists()
    lines = output.splitlines()
    assert lines[0] == "registered 1"
    assert "INVALID_ARGUMENT email must be an address such as name@example.com" in lines
    assert "INVALID_ARGUMENT password must be at least 8 characters" in lines
    assert lines[-1] == "SERVING"
