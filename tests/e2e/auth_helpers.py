"""What the authentication end-to-end tests share: accounts, sign-in, token checks, error texts."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import grpc
import jwt
from biome.user.v1 import user_service_pb2 as pb
from google.protobuf.json_format import MessageToDict

from tests.e2e.harness import Service, rpc_error

TIMEOUT = 10  # seconds; every RPC is bounded so a hung server fails the test instead of stalling
PASSWORD = "tangerine-sky-42"
NEW_PASSWORD = "violet-harbor-93"
WRONG_PASSWORD = "marble-lantern-17"
AUDIENCE = "urn:biome:services"
ISSUER = "urn:biome:user-service"
ACCESS_TOKEN_LIFETIME = 900


@dataclass(frozen=True)
class Account:
    """A registered user and the credentials it was registered with."""

    user: pb.User
    email: str
    password: str

    @property
    def id(self) -> str:
        return self.user.id


def unique_email(label: str = "user") -> str:
    """An address no other test uses: the SMTP server and its mailbox are shared by the session."""
    return f"{label}-{uuid4().hex[:12]}@example.com"


async def register(
    service: Service, *, label: str = "user", password: str = PASSWORD, verified: bool = True
) -> Account:
    """A new account. ``verified`` (the default) vouches for its address, as an admin may (in
    development every caller is one): no verification mail goes, and none holds back the reset
    or lock mail a test waits for under the security mail cool-down."""
    email = unique_email(label)
    request = pb.RegisterUserRequest(
        email=email,
        password=password,
        first_name="Ada",
        last_name="Byron",
        email_verified=verified,
    )
    user = await service.stub.RegisterUser(request, timeout=TIMEOUT)
    return Account(user=user, email=email, password=password)


async def sign_in(service: Service, email: str, password: str) -> pb.AuthenticateResponse:
    return await service.stub.Authenticate(
        pb.AuthenticateRequest(email=email, password=password), timeout=TIMEOUT
    )


async def refresh(service: Service, refresh_token: str) -> pb.RefreshSessionResponse:
    return await service.stub.RefreshSession(
        pb.RefreshSessionRequest(refresh_token=refresh_token), timeout=TIMEOUT
    )


async def refresh_error(service: Service, refresh_token: str) -> grpc.aio.AioRpcError:
    return await rpc_error(
        service.stub.RefreshSession(
            pb.RefreshSessionRequest(refresh_token=refresh_token), timeout=TIMEOUT
        )
    )


async def sign_in_error(service: Service, email: str, password: str) -> grpc.aio.AioRpcError:
    return await rpc_error(
        service.stub.Authenticate(
            pb.AuthenticateRequest(email=email, password=password), timeout=TIMEOUT
        )
    )


async def verify_access_token(service: Service, access_token: str) -> dict[str, Any]:
    """The token's claims, checked with nothing but the keys the GetJwks RPC publishes."""
    reply = await service.stub.GetJwks(pb.GetJwksRequest(), timeout=TIMEOUT)
    key_set = jwt.PyJWKSet.from_dict(
        {"keys": [MessageToDict(key, preserving_proto_field_name=True) for key in reply.keys]}
    )
    kid = jwt.get_unverified_header(access_token)["kid"]
    # The server's clock may have been moved on (MovableClock): its tokens are issued that far
    # in the future.
    ahead = (service.clock() - datetime.now(UTC)).total_seconds()
    claims: dict[str, Any] = jwt.decode(
        access_token,
        key_set[kid],
        algorithms=["EdDSA"],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"require": ["iss", "aud", "sub", "iat", "exp", "jti"]},
        leeway=max(ahead, 0.0),
    )
    return claims


def token_hash(token: str) -> str:
    """The SHA-256 hex digest the service stores in place of a refresh or reset token."""
    return hashlib.sha256(token.encode()).hexdigest()


def status_text(error: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str]:
    """What a caller can tell two failures apart by: the code and the message."""
    return error.code(), error.details() or ""


def reply_of(error: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str, bytes]:
    """Everything a reply says but its request id: code, message, and the google.rpc details."""
    details = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin", b"")
    return error.code(), error.details() or "", bytes(details)


# The 10th failure in a row makes the next attempt wait 2 ** (10 - 5) seconds.
LOCK_OUT_WAIT_SECONDS = 32


async def lock_out(service: Service, email: str) -> None:
    """From no failure in a row, wrong passwords until the next attempt must wait
    LOCK_OUT_WAIT_SECONDS: 5 at once, then one after each wait (1, 2, 4, 8, 16 s), the service's
    clock pushed past it each time; a sign-in during those 32 s is refused however slow this
    machine is."""
    for _ in range(5):
        await sign_in_error(service, email, WRONG_PASSWORD)
    for seconds in (1, 2, 4, 8, 16):
        service.clock.advance(seconds=seconds)
        await sign_in_error(service, email, WRONG_PASSWORD)
