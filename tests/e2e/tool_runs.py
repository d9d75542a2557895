"""Running a developer tool (``python -m tools.<name>``) as a subprocess, as `make` would."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def tool_environment(**variables: str) -> dict[str, str]:
    """This process's environment without service settings or endpoints, plus ``variables``."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("USER_SERVICE_", "AWS_ENDPOINT_URL"))
    }
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "protos")])
    environment.update(variables)
    return environment


async def run_tool(
    module: str, *args: str, environment: dict[str, str], kill_after: float
) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``python -m module args``; SIGTERM after ``kill_after`` s
    (the tools then stop the processes they started) and the TimeoutError raised."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        cwd=ROOT,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), kill_after)
    except TimeoutError:
        process.terminate()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()
