"""One timed RPC: its reply or its status code, never an exception for a gRPC error."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
from google.protobuf.message import Message

if TYPE_CHECKING:  # the async stub type exists only in the generated .pyi
    from biome.user.v1.user_service_pb2_grpc import UserServiceAsyncStub

Stub: TypeAlias = "UserServiceAsyncStub"


@dataclass(frozen=True, eq=False)
class Result:
    """How one RPC ended: the reply when OK, else the status code and its message."""

    method: str
    code: grpc.StatusCode
    seconds: float
    reply: Any = None
    details: str = ""

    @property
    def ok(self) -> bool:
        return self.code is grpc.StatusCode.OK


async def send(stub: Stub, method: str, request: Message, rpc_timeout: float) -> Result:
    """Calls ``method`` on the stub with a deadline ``rpc_timeout`` seconds away."""
    started = time.monotonic()
    try:
        reply = await getattr(stub, method)(request, timeout=rpc_timeout)
    except grpc.aio.AioRpcError as error:
        return Result(
            method, error.code(), time.monotonic() - started, details=error.details() or ""
        )
    return Result(method, grpc.StatusCode.OK, time.monotonic() - started, reply=reply)
