"""Helpers of the data-tool tests: users made by the use cases, raw items, old items, tables."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

from botocore.exceptions import ClientError

from domain.policies import AuthPolicy
from domain.use_cases.accounts import register_user
from domain.use_cases.sessions import authenticate
from persistence.schema import SCHEMA_VERSION, TableNames
from persistence.table_initializer import ensure_tables
from persistence.unit_of_work import DynamoUnitOfWork
from persistence.user_mapper import user_to_item
from tests.builders import new_user, session_tokens
from tests.fakes import (
    FakeAccessTokenIssuer,
    FakePasswordHasher,
    FixedClock,
    recorded_lock_notices,
    unsent_verification_mailing,
)

PASSWORD = "Zebra-Quill-42-export"
POLICY = AuthPolicy()

Item = dict[str, Any]


@dataclass(frozen=True)
class SignedUp:
    """A user registered and signed in through the use cases: its id, email, refresh token."""

    user_id: str
    email: str
    refresh_token: str


async def sign_up(client: Any, tables: TableNames, clock: FixedClock, email: str) -> SignedUp:
    """Registers ``email`` with PASSWORD and signs in once (a session with a token hash)."""
    user = await register_user(
        DynamoUnitOfWork(client, tables),
        FakePasswordHasher(),
        clock,
        AuthPolicy(),
        unsent_verification_mailing(),
        email=email,
        password=PASSWORD,
        first_name="Ada",
        last_name="Lovelace",
    )
    tokens = session_tokens(
        await authenticate(
            DynamoUnitOfWork(client, tables),
            FakePasswordHasher(),
            FakeAccessTokenIssuer(),
            clock,
            POLICY,
            recorded_lock_notices(),
            email=email,
            password=PASSWORD,
        )
    )
    return SignedUp(user.id.value, email, tokens.refresh_token)


async def scan_all(client: Any, table: str) -> list[Item]:
    """Every item of ``table``, read consistently, sorted by key."""
    items: list[Item] = []
    request: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = await client.scan(**request)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=lambda item: str(item.get("Id", item.get("Email"))))
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


async def get_user_item(client: Any, tables: TableNames, user_id: str) -> Item | None:
    key = {"Id": {"S": user_id}}
    response = await client.get_item(TableName=tables.users, Key=key, ConsistentRead=True)
    item: Item | None = response.get("Item")
    return item


async def put_raw(client: Any, table: str, item: Item) -> None:
    await client.put_item(TableName=table, Item=item)


def as_version_1(item: Item, *, with_revision: bool = True) -> Item:
    """The item as schema version 1 wrote it: no EventSeq; before sign-in came, no Revision."""
    old = dict(item)
    del old["EventSeq"], old["SessionEpoch"]
    old["Sessions"] = {"L": []}  # versions 1 and 2 held the sessions in the item
    old["SchemaVersion"] = {"N": "1"}
    if not with_revision:
        # Before Revision existed, Version counted every write.
        old["Version"] = old.pop("Revision")
    return old


async def put_version_1_user(
    client: Any, tables: TableNames, email: str, *, with_revision: bool
) -> str:
    """A user (and its guard) as schema version 1 stored it, with no recorded event; its id."""
    user = new_user(email)
    user.password_hash = "fake$" + PASSWORD[::-1]  # what FakePasswordHasher makes of PASSWORD
    item = user_to_item(user, version=3, revision=5, event_seq=0)
    await put_raw(client, tables.users, as_version_1(item, with_revision=with_revision))
    guard = {"Email": {"S": user.email.normalized}, "UserId": {"S": user.id.value}}
    await put_raw(client, tables.emails, guard)
    return user.id.value


def as_newer_schema(item: Item) -> Item:
    """The item as a future schema version might write it."""
    newer = {"N": str(SCHEMA_VERSION + 1)}
    return {**item, "SchemaVersion": newer, "FutureField": {"S": "unknown to this code"}}


async def fresh_tables(client: Any, like: TableNames) -> TableNames:
    """A second pair of tables (the import target); drop them with drop_tables."""
    suffix = uuid4().hex[:8]
    names = dataclasses.replace(
        like,
        users=f"Target-{suffix}",
        emails=f"TargetEmails-{suffix}",
        events=f"TargetEvents-{suffix}",
        sessions=f"TargetSessions-{suffix}",
    )
    await ensure_tables(client, names, wait_seconds=10)
    return names


async def drop_tables(client: Any, tables: TableNames) -> None:
    for name in (tables.users, tables.emails, tables.events, tables.sessions):
        try:
            await client.delete_table(TableName=name)
        except ClientError:
            pass
