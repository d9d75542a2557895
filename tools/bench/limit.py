"""The limit: a bare grpc.aio handler plus the minimal signed requests each RPC must make.

Bench code only, never the service's. Each request is signed with botocore's own ``SigV4Auth``
and sent on one shared aiohttp keep-alive session; the reply is ``json.loads`` and mapped
straight to the protobuf reply. No retries, no event hooks, no endpoint rules, no validation,
no domain objects: what the work physically costs in Python, against which the service (and
the aiobotocore floor) is compared row by row.

- ``GetUser``: one GetItem (ConsistentRead) by ``Id``.
- ``GetUserByEmail``: one GetItem on the email guard, then one on the users table.
- ``RefreshSession``: one GetItem of the user (active, and its session epoch); one GetItem of
  the session the token names (``<user id>.<session id>.<secret>``) in the sessions table; the
  presented token's SHA-256 compared in constant time with the session's; the session item
  rotated (new hash, the presented one kept as the previous, the one before retired, times and
  TTL moved on) and written back by one PutItem conditional on the hash read; an Ed25519 JWT
  signed. Nothing else.

``python -m tools.bench.limit`` reads the same USER_SERVICE_* environment as the floor.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp
import grpc
from biome.user.v1 import user_service_pb2 as pb
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from persistence.schema import session_key
from server.from_settings import LOCAL_CREDENTIALS, table_names
from server.settings import Settings
from tools.bench.bare_server import serve_until, stop_on_signals

SERVICE = "biome.user.v1.UserService"
TARGET_PREFIX = "DynamoDB_20120810."
ACCESS_TOKEN_SECONDS = 900
RETIRED_KEPT = 5  # domain.policies.SessionPolicy.retired_tokens_kept


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class DynamoDb:
    """Signed JSON requests to DynamoDB over one keep-alive session."""

    def __init__(self, session: aiohttp.ClientSession, endpoint: str, region: str) -> None:
        self._session, self._endpoint = session, endpoint
        self._signer = SigV4Auth(Credentials(*LOCAL_CREDENTIALS), "dynamodb", region)

    async def call(self, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(request).encode()
        signed = AWSRequest(
            method="POST",
            url=self._endpoint,
            data=body,
            headers={
                "Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": TARGET_PREFIX + operation,
            },
        )
        self._signer.add_auth(signed)
        async with self._session.post(self._endpoint, data=body, headers=dict(signed.headers)) as r:
            reply: dict[str, Any] = json.loads(await r.read())
            if r.status != 200:
                raise RuntimeError(f"{operation}: {r.status} {reply.get('__type')}")
            return reply


class Limit:
    """The handlers."""

    def __init__(
        self, dynamodb: DynamoDb, users: str, emails: str, sessions: str, idle_seconds: int
    ) -> None:
        self._db, self._users, self._emails = dynamodb, users, emails
        self._sessions, self._idle_seconds = sessions, idle_seconds
        self._key = Ed25519PrivateKey.generate()
        self._header = _b64(b'{"alg":"EdDSA","typ":"JWT","kid":"limit"}')

    async def get_user(self, request: pb.GetUserRequest, context: Any) -> pb.User:
        return _user_reply(await self._item(request.id, context))

    async def get_user_by_email(self, request: pb.GetUserByEmailRequest, context: Any) -> pb.User:
        reply = await self._db.call(
            "GetItem",
            {
                "TableName": self._emails,
                "Key": {"Email": {"S": request.email.casefold()}},
                "ConsistentRead": True,
            },
        )
        guard: dict[str, Any] | None = reply.get("Item")
        if guard is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such user")
            raise AssertionError("abort raises")
        return _user_reply(await self._item(guard["UserId"]["S"], context))

    async def refresh_session(
        self, request: pb.RefreshSessionRequest, context: Any
    ) -> pb.RefreshSessionResponse:
        user_id, _, rest = request.refresh_token.partition(".")
        session_id = rest.partition(".")[0]
        presented = hashlib.sha256(request.refresh_token.encode()).hexdigest()
        user = await self._item(user_id, context)
        if user["Status"]["S"] != "ACTIVE":
            await _refuse(context)
        epoch = int(user.get("SessionEpoch", {"N": "0"})["N"])
        key = {"UserId": {"S": user_id}, "SessionKey": {"S": session_key(epoch, session_id)}}
        reply = await self._db.call(
            "GetItem", {"TableName": self._sessions, "Key": key, "ConsistentRead": True}
        )
        session: dict[str, Any] | None = reply.get("Item")
        if session is None or not hmac.compare_digest(session["TokenHash"]["S"], presented):
            await _refuse(context)
            raise AssertionError("abort raises")
        token = f"{user_id}.{session_id}.{secrets.token_urlsafe(32)}"
        now = datetime.now(UTC)
        held = session["TokenHash"]
        if "PreviousTokenHash" in session:
            retired = session.get("RetiredTokenHashes", {"L": []})["L"]
            retired = [*retired, session["PreviousTokenHash"]][-RETIRED_KEPT:]
            session["RetiredTokenHashes"] = {"L": retired}
        session["PreviousTokenHash"] = held
        session["TokenHash"] = {"S": hashlib.sha256(token.encode()).hexdigest()}
        session["RotatedAt"] = session["LastUsedAt"] = {"S": now.isoformat(timespec="microseconds")}
        expire_at = min(int(session["ExpireAt"]["N"]), int(now.timestamp()) + self._idle_seconds)
        session["ExpireAt"] = {"N": str(expire_at)}
        await self._db.call(
            "PutItem",
            {
                "TableName": self._sessions,
                "Item": session,
                "ConditionExpression": "#token = :held",
                "ExpressionAttributeNames": {"#token": "TokenHash"},
                "ExpressionAttributeValues": {":held": held},
            },
        )
        issued = int(time.time())
        claims = {
            "sub": user_id,
            "sid": session_id,
            "iat": issued,
            "exp": issued + ACCESS_TOKEN_SECONDS,
        }
        signing_input = f"{self._header}.{_b64(json.dumps(claims).encode())}"
        signature = _b64(self._key.sign(signing_input.encode()))
        return pb.RefreshSessionResponse(
            access_token=f"{signing_input}.{signature}",
            refresh_token=token,
            expires_in=ACCESS_TOKEN_SECONDS,
        )

    async def _item(self, user_id: str, context: Any) -> dict[str, Any]:
        reply = await self._db.call(
            "GetItem",
            {"TableName": self._users, "Key": {"Id": {"S": user_id}}, "ConsistentRead": True},
        )
        item: dict[str, Any] | None = reply.get("Item")
        if item is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such user")
            raise AssertionError("abort raises")
        return item

    def handler(self) -> grpc.GenericRpcHandler:
        def unary(method: Any, request: Any, reply: Any) -> grpc.RpcMethodHandler[Any, Any]:
            return grpc.unary_unary_rpc_method_handler(
                method,
                request_deserializer=request.FromString,
                response_serializer=reply.SerializeToString,
            )

        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "GetUser": unary(self.get_user, pb.GetUserRequest, pb.User),
                "GetUserByEmail": unary(self.get_user_by_email, pb.GetUserByEmailRequest, pb.User),
                "RefreshSession": unary(
                    self.refresh_session, pb.RefreshSessionRequest, pb.RefreshSessionResponse
                ),
            },
        )


async def _refuse(context: Any) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown refresh token")


def _user_reply(item: dict[str, Any]) -> pb.User:
    return pb.User(
        id=item["Id"]["S"],
        email=item["Email"]["S"],
        first_name=item["FirstName"]["S"],
        last_name=item["LastName"]["S"],
    )


async def serve(settings: Settings) -> None:
    """Serves the limit (and the standard health service) until SIGTERM or SIGINT."""
    stop = stop_on_signals()
    if settings.dynamodb_endpoint is None:
        raise SystemExit("the limit needs USER_SERVICE_DYNAMODB_ENDPOINT")
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:
        tables = table_names(settings)
        dynamodb = DynamoDb(session, settings.dynamodb_endpoint, settings.aws_region)
        limit = Limit(
            dynamodb,
            tables.users,
            tables.emails,
            tables.sessions,
            settings.session_idle_lifetime_seconds,
        )
        await serve_until(stop, limit.handler(), host=settings.host, port=settings.port)


def main() -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(Settings()))


if __name__ == "__main__":
    main()
