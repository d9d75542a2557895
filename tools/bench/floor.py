"""The floor: a minimal grpc.aio server whose handler does only the DynamoDB reads it must.

``python -m tools.bench.floor`` reads the same USER_SERVICE_* environment as the service and
builds its DynamoDB client with the service's own functions
(``server.from_settings.dynamodb_options`` and
``persistence.dynamodb_client.open_dynamodb_client``), so timeouts, retries, pool size and
credentials are equal. What the service spends above this, per RPC, is its own overhead.

It reuses the generated GetUser request and User reply types (not a proto-free bytes handler),
registered through ``grpc.method_handlers_generic_handler`` under the service's own method
names: the benchmark calls both servers with the same stub and requests, and the floor pays the
same protobuf (de)serialisation and reply size as the service. Its reply copies four strings
out of the item; it builds no domain object.

- ``GetUser``: one GetItem (ConsistentRead) on the users table by ``Id``.
- ``GetUserByEmail``: one GetItem on the email-guard table, then one on the users table: the
  two reads the service's design needs, with nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import grpc
from biome.user.v1 import user_service_pb2 as pb

from server.from_settings import dynamodb_options, table_names
from server.settings import Settings
from tools.bench.bare_server import serve_until, stop_on_signals

SERVICE = "biome.user.v1.UserService"


class Floor:
    """The handlers: one DynamoDB read per DynamoDB operation, and the reply."""

    def __init__(self, client: Any, users_table: str, emails_table: str) -> None:
        self._client = client
        self._users = users_table
        self._emails = emails_table

    async def get_user(self, request: pb.GetUserRequest, context: Any) -> pb.User:
        return await self._user(request.id, context)

    async def get_user_by_email(self, request: pb.GetUserByEmailRequest, context: Any) -> pb.User:
        response = await self._client.get_item(
            TableName=self._emails,
            Key={"Email": {"S": request.email.casefold()}},
            ConsistentRead=True,
        )
        guard = response.get("Item")
        if not guard:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such user")
        return await self._user(guard["UserId"]["S"], context)

    async def _user(self, user_id: str, context: Any) -> pb.User:
        response = await self._client.get_item(
            TableName=self._users, Key={"Id": {"S": user_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        if not item:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such user")
        return pb.User(
            id=item["Id"]["S"],
            email=item["Email"]["S"],
            first_name=item["FirstName"]["S"],
            last_name=item["LastName"]["S"],
        )

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "GetUser": grpc.unary_unary_rpc_method_handler(
                    self.get_user,
                    request_deserializer=pb.GetUserRequest.FromString,
                    response_serializer=pb.User.SerializeToString,
                ),
                "GetUserByEmail": grpc.unary_unary_rpc_method_handler(
                    self.get_user_by_email,
                    request_deserializer=pb.GetUserByEmailRequest.FromString,
                    response_serializer=pb.User.SerializeToString,
                ),
            },
        )


async def serve(settings: Settings) -> None:
    """Serves the floor (and the standard health service) until SIGTERM or SIGINT."""
    from persistence.dynamodb_client import open_dynamodb_client

    stop = stop_on_signals()
    options = dynamodb_options(settings, settings.dynamodb_endpoint)
    async with open_dynamodb_client(options) as client:
        tables = table_names(settings)
        floor = Floor(client, tables.users, tables.emails)
        await serve_until(stop, floor.handler(), host=settings.host, port=settings.port)


def main() -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(Settings()))


if __name__ == "__main__":
    main()
