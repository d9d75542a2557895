"""The instance under load: waiting for it to be SERVING, or spawning one of its own."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tools.load.target import loopback_url

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 60.0
# The service's own shutdown grace is 10 s by default; on top, time for the process to exit.
STOP_TIMEOUT_SECONDS = 30.0
LOG_TAIL_LINES = 20
ENDPOINT_VARIABLES = (
    "USER_SERVICE_DYNAMODB_ENDPOINT",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL",
)
# The tool speaks plaintext without a key, to a development instance; these would change that.
_DROPPED_VARIABLES = (
    "USER_SERVICE_TLS_CERT_FILE",
    "USER_SERVICE_TLS_KEY_FILE",
    "USER_SERVICE_TLS_CLIENT_CA_FILE",
    "USER_SERVICE_API_KEYS",
    "USER_SERVICE_HEALTH_PORT",
)


class InstanceNotReady(RuntimeError):
    """No SERVING instance at the target (or the spawned one did not start)."""


async def wait_until_serving(
    target: str, within: float, process: asyncio.subprocess.Process | None = None
) -> None:
    """Returns once the health service at ``target`` says SERVING; InstanceNotReady otherwise."""
    deadline = time.monotonic() + within
    last = "no answer"
    async with grpc.aio.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process is not None and process.returncode is not None:
                raise InstanceNotReady(
                    f"the spawned instance exited with code {process.returncode}"
                )
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)  # type: ignore[attr-defined]  # the stub's HealthStub declares no RPCs
            except grpc.aio.AioRpcError as error:
                last = error.code().name
            else:
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            await asyncio.sleep(0.2)
    raise InstanceNotReady(f"no SERVING user-service at {target} within {within:.0f} s ({last})")


@dataclass
class SpawnedInstance:
    """A ``user-service serve`` child process on a free loopback port."""

    target: str
    process: asyncio.subprocess.Process
    log_path: Path
    exit_code: int | None = None

    def discard_log(self) -> None:
        self.log_path.unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def spawned_instance() -> AsyncIterator[SpawnedInstance]:
    """Starts ``user-service serve`` (development profile) and stops it with SIGTERM at the end.

    Its DynamoDB is the embedded in-memory one, unless the environment names an endpoint,
    which must then be on this machine (tests pass their moto server and fresh table names).
    The server's log goes to a file; the caller deletes it, or keeps it when the run failed.
    """
    port = _free_port()
    environment = _environment(port)
    log_file = tempfile.NamedTemporaryFile(  # kept after a failed run
        prefix="user-service-load-", suffix=".log", delete=False
    )
    log_path = Path(log_file.name)
    with log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server",
            "serve",
            cwd=ROOT,
            env=environment,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
        )
    instance = SpawnedInstance(f"127.0.0.1:{port}", process, log_path)
    completed = False
    try:
        try:
            await wait_until_serving(instance.target, START_TIMEOUT_SECONDS, process)
        except InstanceNotReady as error:
            raise InstanceNotReady(f"{error}; its log ends with:\n{log_tail(log_path)}") from None
        yield instance
        completed = True
    finally:
        instance.exit_code = await _stop(process)
        if not completed:  # interrupted, or failed to start (the error shows the log's tail)
            instance.discard_log()


def log_tail(path: Path) -> str:
    lines = path.read_text(errors="replace").splitlines()
    return "\n".join(lines[-LOG_TAIL_LINES:]) or "(empty)"


async def _stop(process: asyncio.subprocess.Process) -> int:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(process.wait(), STOP_TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        return -int(signal.SIGKILL)


def local_endpoint(environment: Mapping[str, str]) -> str | None:
    """The DynamoDB endpoint the environment names for a spawned instance, if any.

    TargetRefused when it is not on this machine: a spawned instance never touches another one.
    """
    endpoint = next((environment[name] for name in ENDPOINT_VARIABLES if environment.get(name)), "")
    return loopback_url(endpoint) if endpoint else None


def _environment(port: int) -> dict[str, str]:
    environment = {
        name: value for name, value in os.environ.items() if name not in _DROPPED_VARIABLES
    }
    if local_endpoint(environment) is None:
        environment["USER_SERVICE_EMBEDDED_DYNAMODB"] = "true"
    python_path = [str(ROOT), str(ROOT / "protos"), environment.get("PYTHONPATH", "")]
    environment.update(
        USER_SERVICE_PROFILE="development",
        USER_SERVICE_HOST="127.0.0.1",
        USER_SERVICE_PORT=str(port),
        PYTHONPATH=os.pathsep.join(filter(None, python_path)),
    )
    return environment


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
