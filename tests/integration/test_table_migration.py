"""``migrate`` against moto_server: old items upgraded in place, newer ones left, no update lost."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from datatools.table_migration import MigrationReport, Vouching, migrate_table
from domain.policies import AuthPolicy
from domain.secret_tokens import parse_token
from domain.use_cases.accounts import update_profile
from domain.use_cases.sessions import refresh_session
from domain.user import User
from persistence.item_upgrades import item_schema_version
from persistence.schema import SCHEMA_VERSION, TableNames
from persistence.unit_of_work import DynamoUnitOfWork
from persistence.user_mapper import item_to_user, user_to_item
from tests.builders import T0, new_user
from tests.data_tool_helpers import (
    PASSWORD,
    as_newer_schema,
    get_user_item,
    put_raw,
    put_version_1_user,
    scan_all,
)
from tests.fakes import FakeAccessTokenIssuer, FixedClock
from tests.v2_items import v2_item, v2_session

Item = dict[str, Any]


class HookedClient:
    """The real client, running ``hook`` once just before the first call of ``method``."""

    def __init__(self, client: Any, method: str, hook: Callable[[], Awaitable[None]]) -> None:
        self._client, self._method, self._hook = client, method, hook
        self.hooked = False

    def __getattr__(self, name: str) -> Any:
        call = getattr(self._client, name)
        if name != self._method or self.hooked:
            return call

        async def hooked(**kwargs: Any) -> Any:
            self.hooked = True
            await self._hook()
            return await call(**kwargs)

        return hooked


async def users_as_version_1(
    client: Any, tables: TableNames, count: int, *, with_revision: bool
) -> list[str]:
    """Ids of ``count`` users stored as schema version 1 wrote them."""
    kind = "revised" if with_revision else "unrevised"
    return [
        await put_version_1_user(
            client, tables, f"{kind}{n}@example.com", with_revision=with_revision
        )
        for n in range(count)
    ]


async def schema_versions(client: Any, tables: TableNames) -> list[int]:
    return [item_schema_version(item) for item in await scan_all(client, tables.users)]


async def rename(client: Any, tables: TableNames, user_id: str, name: str, version: int) -> User:
    return await update_profile(
        DynamoUnitOfWork(client, tables),
        FixedClock(T0 + timedelta(hours=1)),
        user_id=user_id,
        first_name=name,
        last_name=None,
        expected_version=version,
    )


async def test_migrate_upgrades_every_old_item_and_keeps_what_callers_see(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    with_revision = await users_as_version_1(
        dynamodb_client, dynamodb_tables, 3, with_revision=True
    )
    without = await users_as_version_1(dynamodb_client, dynamodb_tables, 2, with_revision=False)
    before = {
        item["Id"]["S"]: item for item in await scan_all(dynamodb_client, dynamodb_tables.users)
    }

    report = await migrate_table(dynamodb_client, dynamodb_tables, page_size=2)

    assert (report.scanned, report.upgraded, report.already_current) == (5, 5, 0)
    assert report.changed_concurrently == 0 and report.newer_schema == []
    for user_id in with_revision + without:
        item = await get_user_item(dynamodb_client, dynamodb_tables, user_id)
        old = before[user_id]
        assert item is not None
        assert item["SchemaVersion"] == {"N": "5"} and item["EventSeq"] == {"N": "0"}
        assert item["SessionEpoch"] == {"N": "0"} and "Sessions" not in item
        # The revision stays as it was (for items from before revisions: their Version).
        assert item["Revision"] == old.get("Revision", old["Version"])
        added = {"SchemaVersion", "EventSeq", "SessionEpoch"}
        assert {k: v for k, v in item.items() if k not in added} == {
            **{k: v for k, v in old.items() if k not in {"SchemaVersion", "Sessions"}},
            "Revision": item["Revision"],
        }


async def test_migrate_again_finds_everything_current_and_writes_nothing(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    await users_as_version_1(dynamodb_client, dynamodb_tables, 3, with_revision=True)
    await migrate_table(dynamodb_client, dynamodb_tables)
    before = await scan_all(dynamodb_client, dynamodb_tables.users)

    report = await migrate_table(dynamodb_client, dynamodb_tables)

    assert (report.scanned, report.upgraded, report.already_current) == (3, 0, 3)
    assert await scan_all(dynamodb_client, dynamodb_tables.users) == before


async def test_a_dry_run_counts_what_it_would_upgrade_and_writes_nothing(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    await users_as_version_1(dynamodb_client, dynamodb_tables, 3, with_revision=False)
    before = await scan_all(dynamodb_client, dynamodb_tables.users)

    report = await migrate_table(dynamodb_client, dynamodb_tables, dry_run=True)

    assert (report.scanned, report.upgraded, report.dry_run) == (3, 3, True)
    assert await scan_all(dynamodb_client, dynamodb_tables.users) == before


async def test_an_item_of_a_newer_schema_is_left_alone_and_reported(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    _, future_id = await users_as_version_1(dynamodb_client, dynamodb_tables, 2, with_revision=True)
    current = await get_user_item(dynamodb_client, dynamodb_tables, future_id)
    assert current is not None
    stored_future = as_newer_schema(current)
    await put_raw(dynamodb_client, dynamodb_tables.users, stored_future)

    report = await migrate_table(dynamodb_client, dynamodb_tables)

    assert report.newer_schema == [future_id]
    assert (report.upgraded, report.already_current) == (1, 0)
    assert await get_user_item(dynamodb_client, dynamodb_tables, future_id) == stored_future


async def test_a_service_write_landing_between_scan_and_upgrade_wins_and_the_item_is_re_read(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    (user_id,) = await users_as_version_1(dynamodb_client, dynamodb_tables, 1, with_revision=False)
    stored = await get_user_item(dynamodb_client, dynamodb_tables, user_id)
    assert stored is not None
    version = int(stored["Version"]["N"])

    async def service_write() -> None:
        await rename(dynamodb_client, dynamodb_tables, user_id, "Between", version)

    racing = HookedClient(dynamodb_client, "put_item", service_write)
    report = await migrate_table(racing, dynamodb_tables)

    assert racing.hooked
    assert (report.upgraded, report.changed_concurrently, report.already_current) == (0, 1, 1)
    item = await get_user_item(dynamodb_client, dynamodb_tables, user_id)
    assert item is not None
    assert item["FirstName"] == {"S": "Between"}
    assert item["SchemaVersion"] == {"N": "5"}
    assert item["Revision"] == {"N": str(version + 1)}


async def test_a_service_write_read_before_the_upgrade_lands_after_it_without_a_conflict(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    (user_id,) = await users_as_version_1(dynamodb_client, dynamodb_tables, 1, with_revision=False)
    stored = await get_user_item(dynamodb_client, dynamodb_tables, user_id)
    assert stored is not None
    version = int(stored["Version"]["N"])
    reports = []

    async def migrate_in_between() -> None:
        reports.append(await migrate_table(dynamodb_client, dynamodb_tables))

    # The use case reads the version-1 item; the migration upgrades it; then the write lands.
    service_client = HookedClient(dynamodb_client, "transact_write_items", migrate_in_between)
    renamed = await rename(service_client, dynamodb_tables, user_id, "After", version)

    assert service_client.hooked and reports[0].upgraded == 1
    assert renamed.version == version + 1
    item = await get_user_item(dynamodb_client, dynamodb_tables, user_id)
    assert item is not None
    assert item["FirstName"] == {"S": "After"}
    assert item["SchemaVersion"] == {"N": "5"}
    assert item["Revision"] == {"N": str(version + 1)}


async def test_migrate_running_alongside_service_writes_loses_no_update(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    users = await users_as_version_1(dynamodb_client, dynamodb_tables, 6, with_revision=False)
    renames = 4

    async def keep_renaming(user_id: str) -> None:
        item = await get_user_item(dynamodb_client, dynamodb_tables, user_id)
        assert item is not None
        version = int(item["Version"]["N"])
        for n in range(renames):
            renamed = await rename(dynamodb_client, dynamodb_tables, user_id, f"N{n}", version)
            version = renamed.version

    reports: list[MigrationReport] = []

    async def migrate(page_size: int) -> None:
        reports.append(await migrate_table(dynamodb_client, dynamodb_tables, page_size=page_size))

    # Two migrations (as from two operators) and the renames, all at once.
    await asyncio.gather(migrate(2), migrate(3), *(keep_renaming(user_id) for user_id in users))

    for user_id in users:
        item = await get_user_item(dynamodb_client, dynamodb_tables, user_id)
        assert item is not None
        assert item["FirstName"] == {"S": f"N{renames - 1}"}
    assert set(await schema_versions(dynamodb_client, dynamodb_tables)) == {5}
    for report in reports:
        assert report.scanned == len(users)


# --- version 2 items holding sessions --------------------------------------------------------


async def users_as_version_2(
    client: Any, tables: TableNames, count: int, sessions: int
) -> list[tuple[User, list[Any]]]:
    """``count`` users stored as version 2 wrote them, each holding ``sessions`` sessions (and
    the refresh tokens of those, of the older form)."""
    stored = []
    for n in range(count):
        user = new_user(f"v2-{n}@example.com")
        user.password_hash = "fake$" + PASSWORD[::-1]
        opened = [v2_session(user, T0, f"{n}{i}") for i in range(sessions)]
        await put_raw(client, tables.users, v2_item(user, [s for s, _ in opened], revision=4))
        guard = {"Email": {"S": user.email.normalized}, "UserId": {"S": user.id.value}}
        await put_raw(client, tables.emails, guard)
        stored.append((user, opened))
    return stored


async def session_items(client: Any, tables: TableNames, user: User) -> list[Item]:
    response = await client.query(
        TableName=tables.sessions,
        KeyConditionExpression="UserId = :id",
        ExpressionAttributeValues={":id": {"S": user.id.value}},
        ConsistentRead=True,
    )
    return list(response["Items"])


async def test_migrate_moves_the_sessions_of_v2_items_to_items_and_they_still_refresh(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    stored = await users_as_version_2(dynamodb_client, dynamodb_tables, 3, sessions=4)
    await users_as_version_1(dynamodb_client, dynamodb_tables, 1, with_revision=True)

    report = await migrate_table(dynamodb_client, dynamodb_tables, page_size=2)

    assert (report.scanned, report.upgraded, report.already_current) == (4, 4, 0)
    clock = FixedClock(T0 + timedelta(minutes=1))
    for user, opened in stored:
        item = await get_user_item(dynamodb_client, dynamodb_tables, user.id.value)
        assert item is not None and "Sessions" not in item
        assert item["SchemaVersion"] == {"N": "5"} and item["SessionEpoch"] == {"N": "0"}
        assert item["Revision"] == {"N": "4"}  # no change a service write could have missed
        keys = {
            s["SessionKey"]["S"]
            for s in await session_items(dynamodb_client, dynamodb_tables, user)
        }
        assert keys == {f"0000000000#{s.session_id}" for s, _ in opened}
        refreshed = await refresh_session(
            DynamoUnitOfWork(dynamodb_client, dynamodb_tables),
            FakeAccessTokenIssuer(),
            clock,
            AuthPolicy(),
            refresh_token=opened[0][1].value,
        )
        assert refreshed.session_id == opened[0][0].session_id

    again = await migrate_table(dynamodb_client, dynamodb_tables)
    assert (again.upgraded, again.already_current) == (0, 4)


async def test_a_service_write_racing_with_the_move_of_sessions_wins_and_nothing_is_lost(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    ((user, opened),) = await users_as_version_2(dynamodb_client, dynamodb_tables, 1, sessions=3)
    clock = FixedClock(T0 + timedelta(minutes=1))
    rotated: list[Any] = []

    async def service_refresh() -> None:
        # The service moves the sessions itself, rotating the first one.
        rotated.append(
            await refresh_session(
                DynamoUnitOfWork(dynamodb_client, dynamodb_tables),
                FakeAccessTokenIssuer(),
                clock,
                AuthPolicy(),
                refresh_token=opened[0][1].value,
            )
        )

    racing = HookedClient(dynamodb_client, "transact_write_items", service_refresh)
    report = await migrate_table(racing, dynamodb_tables)

    assert racing.hooked
    assert (report.upgraded, report.changed_concurrently, report.already_current) == (0, 1, 1)
    items = await session_items(dynamodb_client, dynamodb_tables, user)
    assert len(items) == 3
    (first,) = [i for i in items if i["SessionId"]["S"] == opened[0][0].session_id]
    assert first["TokenHash"] == {"S": parse_token(rotated[0].refresh_token).token_hash}


async def test_a_dry_run_counts_v2_items_holding_sessions_and_moves_nothing(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    ((user, _),) = await users_as_version_2(dynamodb_client, dynamodb_tables, 1, sessions=2)

    report = await migrate_table(dynamodb_client, dynamodb_tables, dry_run=True)

    assert report.upgraded == 1
    assert await session_items(dynamodb_client, dynamodb_tables, user) == []


# --- migrate --mark-verified-before: vouching for the accounts from before verification -------

CUTOFF = T0 + timedelta(days=1)
VOUCHED_AT = T0 + timedelta(days=3)


def vouching() -> Vouching:
    return Vouching(
        created_before=CUTOFF, now=VOUCHED_AT, event_retention=timedelta(days=30), stream_shards=8
    )


async def stored_user(
    client: Any, tables: TableNames, label: str, *, schema: int = SCHEMA_VERSION, created: Any = T0
) -> tuple[User, Item]:
    """A user stored at version 1 (one event recorded), created at ``created``, item as written by
    ``schema``; the user and the item."""
    user = new_user(f"{label}@example.com")
    user.created_at = user.updated_at = created
    item = user_to_item(user, version=1, revision=1, event_seq=1)
    item["SchemaVersion"] = {"N": str(schema)}
    await put_raw(client, tables.users, item)
    return user, item


async def events_of(client: Any, tables: TableNames, user_id: str) -> list[Item]:
    response = await client.query(
        TableName=tables.events,
        KeyConditionExpression="UserId = :id",
        ExpressionAttributeValues={":id": {"S": user_id}},
        ConsistentRead=True,
    )
    items: list[Item] = response["Items"]
    return items


async def test_mark_verified_before_vouches_for_the_older_unverified_accounts_only(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    client, tables = dynamodb_client, dynamodb_tables
    old_v3, _ = await stored_user(client, tables, "old-v3", schema=3)
    pending = new_user("pending@example.com")
    pending.request_email_verification(T0, timedelta(days=1))
    pending_item = user_to_item(pending, version=1, revision=1, event_seq=1)
    await put_raw(client, tables.users, pending_item)
    _, newer = await stored_user(client, tables, "newer", created=CUTOFF + timedelta(seconds=1))
    verified_user = new_user("verified@example.com")
    verified_user.mark_email_verified(T0)
    verified = user_to_item(verified_user, version=1, revision=1, event_seq=1)
    await put_raw(client, tables.users, verified)

    dry = await migrate_table(client, tables, dry_run=True, vouch=vouching())
    assert dry.marked_verified == 2 and await events_of(client, tables, old_v3.id.value) == []
    report = await migrate_table(client, tables, vouch=vouching())

    assert (report.scanned, report.upgraded, report.marked_verified) == (4, 2, 2)
    for user in (old_v3, pending):
        item = await get_user_item(client, tables, user.id.value)
        assert item is not None
        restored = item_to_user(item)
        assert (restored.email_verified, restored.email_verified_at) == (True, VOUCHED_AT)
        assert restored.email_verification is None and restored.updated_at == VOUCHED_AT
        assert (item["Version"], item["Revision"], item["EventSeq"]) == (
            {"N": "2"},
            {"N": "2"},
            {"N": "2"},
        )
        assert item["SchemaVersion"] == {"N": "5"}
        [event] = await events_of(client, tables, user.id.value)
        assert (event["Seq"], event["Type"]) == ({"N": "2"}, {"S": "EmailVerified"})
    assert await get_user_item(client, tables, newer["Id"]["S"]) == newer
    assert await get_user_item(client, tables, verified["Id"]["S"]) == verified
    again = await migrate_table(client, tables, vouch=vouching())
    assert (again.upgraded, again.marked_verified, again.already_current) == (0, 0, 4)


async def test_a_service_write_racing_with_the_mark_lands_and_the_mark_is_kept(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    user, _ = await stored_user(dynamodb_client, dynamodb_tables, "racer", schema=3)

    async def service_write() -> None:
        await rename(dynamodb_client, dynamodb_tables, user.id.value, "Between", 1)

    racing = HookedClient(dynamodb_client, "transact_write_items", service_write)
    report = await migrate_table(racing, dynamodb_tables, vouch=vouching())

    assert racing.hooked and report.changed_concurrently == 1 and report.marked_verified == 1
    item = await get_user_item(dynamodb_client, dynamodb_tables, user.id.value)
    assert item is not None and item["FirstName"] == {"S": "Between"}
    assert item["EmailVerified"] == {"BOOL": True} and item["Version"] == {"N": "3"}
    kinds = [
        e["Type"]["S"] for e in await events_of(dynamodb_client, dynamodb_tables, user.id.value)
    ]
    assert kinds == ["ProfileUpdated", "EmailVerified"]
