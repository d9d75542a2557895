"""Export and import against moto_server: a faithful round trip, idempotent, never over newer."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio

from datatools.file_format import UserRecord, parse_line, user_line
from datatools.table_export import export_users
from datatools.table_import import Outcome, import_user
from domain.use_cases.accounts import delete_user, update_profile
from domain.use_cases.sessions import authenticate, refresh_session
from domain.values import Email, UserId
from persistence.schema import TableNames
from persistence.unit_of_work import DynamoUnitOfWork
from tests.builders import T0
from tests.data_tool_helpers import (
    PASSWORD,
    POLICY,
    SignedUp,
    as_newer_schema,
    as_version_1,
    drop_tables,
    fresh_tables,
    get_user_item,
    put_raw,
    scan_all,
    sign_up,
)
from tests.fakes import (
    FakeAccessTokenIssuer,
    FakePasswordHasher,
    FakeTotpCodes,
    FixedClock,
    recorded_lock_notices,
)


@pytest_asyncio.fixture
async def target(dynamodb_client: Any, dynamodb_tables: TableNames) -> AsyncIterator[TableNames]:
    """Empty tables to import into."""
    names = await fresh_tables(dynamodb_client, dynamodb_tables)
    yield names
    await drop_tables(dynamodb_client, names)


async def export_all(
    client: Any, tables: TableNames, *, after_id: str | None = None, page_size: int | None = None
) -> list[UserRecord]:
    """Every record, through the file format's text and back, in scan order."""
    records: list[UserRecord] = []

    def write(record: UserRecord) -> None:
        parsed = parse_line(user_line(record))
        assert isinstance(parsed, UserRecord)
        records.append(parsed)

    await export_users(client, tables, write, after_id=after_id, page_size=page_size)
    return records


async def import_all(client: Any, tables: TableNames, records: list[UserRecord]) -> list[Outcome]:
    return [(await import_user(client, tables, record.user)).outcome for record in records]


async def some_users(client: Any, tables: TableNames, count: int) -> list[SignedUp]:
    clock = FixedClock(T0)
    return [await sign_up(client, tables, clock, f"user{n}@example.com") for n in range(count)]


async def test_a_round_trip_copies_every_item_exactly_and_the_users_sign_in_and_refresh(
    dynamodb_client: Any, dynamodb_tables: TableNames, target: TableNames
) -> None:
    users = await some_users(dynamodb_client, dynamodb_tables, 5)
    # A pending password reset and a changed profile are carried too.
    async with DynamoUnitOfWork(dynamodb_client, dynamodb_tables) as uow:
        user = await uow.users.require(UserId(users[0].user_id))
        user.request_password_reset(T0, timedelta(hours=1))
        await uow.users.update(user)
        await uow.commit()

    records = await export_all(dynamodb_client, dynamodb_tables, page_size=2)
    outcomes = await import_all(dynamodb_client, target, records)

    assert outcomes == [Outcome.CREATED] * 5
    source = await scan_all(dynamodb_client, dynamodb_tables.users)
    # Exactly, but for the pending verifications (their codes' hashes are never exported).
    assert all("EmailVerification" in item for item in source)
    assert await scan_all(dynamodb_client, target.users) == [
        {k: v for k, v in item.items() if k != "EmailVerification"} for item in source
    ]
    assert await scan_all(dynamodb_client, target.emails) == await scan_all(
        dynamodb_client, dynamodb_tables.emails
    )
    clock = FixedClock(T0 + timedelta(minutes=5))
    signed_in = await authenticate(
        DynamoUnitOfWork(dynamodb_client, target),
        FakePasswordHasher(),
        FakeAccessTokenIssuer(),
        clock,
        POLICY,
        recorded_lock_notices(),
        email=users[3].email,
        password=PASSWORD,
    )
    assert signed_in.user.id.value == users[3].user_id
    refreshed = await refresh_session(
        DynamoUnitOfWork(dynamodb_client, target),
        FakeAccessTokenIssuer(),
        clock,
        POLICY,
        refresh_token=users[1].refresh_token,
    )
    assert refreshed.user.id.value == users[1].user_id
    # The sessions went with their users, as items of the target's sessions table.
    assert len(await scan_all(dynamodb_client, target.sessions)) == 5 + 1
    assert all("Sessions" in record.user for record in records)


async def test_importing_the_same_users_again_changes_nothing(
    dynamodb_client: Any, dynamodb_tables: TableNames, target: TableNames
) -> None:
    await some_users(dynamodb_client, dynamodb_tables, 3)
    records = await export_all(dynamodb_client, dynamodb_tables)
    await import_all(dynamodb_client, target, records)
    before = await scan_all(dynamodb_client, target.users)

    outcomes = await import_all(dynamodb_client, target, records)

    assert outcomes == [Outcome.ALREADY_PRESENT] * 3
    assert await scan_all(dynamodb_client, target.users) == before


async def test_a_newer_revision_in_the_target_is_never_overwritten(
    dynamodb_client: Any, dynamodb_tables: TableNames, target: TableNames
) -> None:
    (user,) = await some_users(dynamodb_client, dynamodb_tables, 1)
    (record,) = await export_all(dynamodb_client, dynamodb_tables)
    await import_user(dynamodb_client, target, record.user)
    await update_profile(
        DynamoUnitOfWork(dynamodb_client, target),
        FixedClock(T0 + timedelta(hours=1)),
        user_id=user.user_id,
        first_name="Augusta",
        last_name=None,
        expected_version=1,
    )
    newer = await get_user_item(dynamodb_client, target, user.user_id)

    result = await import_user(dynamodb_client, target, record.user)

    assert result.outcome is Outcome.TARGET_NEWER
    assert await get_user_item(dynamodb_client, target, user.user_id) == newer


async def test_an_older_revision_in_the_target_is_replaced_and_its_old_email_guard_dropped(
    dynamodb_client: Any, dynamodb_tables: TableNames, target: TableNames
) -> None:
    (user,) = await some_users(dynamodb_client, dynamodb_tables, 1)
    (old_record,) = await export_all(dynamodb_client, dynamodb_tables)
    await import_user(dynamodb_client, target, old_record.user)
    async with DynamoUnitOfWork(dynamodb_client, dynamodb_tables) as uow:
        stored = await uow.users.require(UserId(user.user_id))
        stored.change_email(Email.parse("Renamed@Example.com"), now=T0 + timedelta(hours=1))
        await uow.users.update(stored)
        await uow.commit()
    (new_record,) = await export_all(dynamodb_client, dynamodb_tables)

    result = await import_user(dynamodb_client, target, new_record.user)

    assert result.outcome is Outcome.REPLACED_OLDER
    exported = {k: v for k, v in new_record.user.items() if k != "Sessions"}
    assert await get_user_item(dynamodb_client, target, user.user_id) == exported
    guards = await scan_all(dynamodb_client, target.emails)
    assert guards == [{"Email": {"S": "renamed@example.com"}, "UserId": {"S": user.user_id}}]


async def test_a_user_whose_email_belongs_to_another_user_in_the_target_is_skipped_whole(
    dynamodb_client: Any, dynamodb_tables: TableNames, target: TableNames
) -> None:
    (user,) = await some_users(dynamodb_client, dynamodb_tables, 1)
    (record,) = await export_all(dynamodb_client, dynamodb_tables)
    other = await sign_up(dynamodb_client, target, FixedClock(T0), user.email)

    result = await import_user(dynamodb_client, target, record.user)

    assert result.outcome is Outcome.EMAIL_TAKEN
    assert result.email_owner == other.user_id
    assert await get_user_item(dynamodb_client, target, user.user_id) is None
    assert [item["UserId"]["S"] for item in await scan_all(dynamodb_client, target.emails)] == [
        other.user_id
    ]


@pytest.mark.parametrize("with_revision", [True, False])
async def test_a_version_1_item_is_imported_upgraded_to_the_current_schema(
    dynamodb_client: Any, dynamodb_tables: TableNames, target: TableNames, with_revision: bool
) -> None:
    (user,) = await some_users(dynamodb_client, dynamodb_tables, 1)
    current = await get_user_item(dynamodb_client, dynamodb_tables, user.user_id)
    assert current is not None

    result = await import_user(
        dynamodb_client, target, as_version_1(current, with_revision=with_revision)
    )

    assert result.outcome is Outcome.CREATED
    imported = await get_user_item(dynamodb_client, target, user.user_id)
    assert imported is not None
    assert imported["SchemaVersion"] == {"N": "5"}
    assert imported["EventSeq"] == {"N": "0"} and imported["SessionEpoch"] == {"N": "0"}
    assert "Sessions" not in imported
    assert imported["Revision"] == current["Revision"]


async def test_an_item_of_a_newer_schema_is_refused_and_nothing_is_written(
    dynamodb_client: Any, dynamodb_tables: TableNames, target: TableNames
) -> None:
    (user,) = await some_users(dynamodb_client, dynamodb_tables, 1)
    current = await get_user_item(dynamodb_client, dynamodb_tables, user.user_id)
    assert current is not None

    with pytest.raises(ValueError, match="schema version 6"):
        await import_user(dynamodb_client, target, as_newer_schema(current))

    assert await scan_all(dynamodb_client, target.users) == []
    assert await scan_all(dynamodb_client, target.emails) == []


async def test_an_item_of_a_newer_schema_in_the_target_is_kept(
    dynamodb_client: Any, dynamodb_tables: TableNames, target: TableNames
) -> None:
    (user,) = await some_users(dynamodb_client, dynamodb_tables, 1)
    (record,) = await export_all(dynamodb_client, dynamodb_tables)
    future = {**as_newer_schema(record.user), "Revision": {"N": "1"}}
    await put_raw(dynamodb_client, target.users, future)

    result = await import_user(dynamodb_client, target, record.user)

    assert result.outcome is Outcome.TARGET_NEWER_SCHEMA
    assert await get_user_item(dynamodb_client, target, user.user_id) == future


async def test_an_export_resumed_after_the_last_written_user_reads_the_rest_exactly_once(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    await some_users(dynamodb_client, dynamodb_tables, 7)
    whole = [record.user_id for record in await export_all(dynamodb_client, dynamodb_tables)]

    rest = await export_all(dynamodb_client, dynamodb_tables, after_id=whole[2], page_size=2)

    assert [record.user_id for record in rest] == whole[3:]


async def test_an_export_resumes_even_when_the_last_written_user_was_deleted_since(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    await some_users(dynamodb_client, dynamodb_tables, 5)
    whole = [record.user_id for record in await export_all(dynamodb_client, dynamodb_tables)]
    await dynamodb_client.delete_item(TableName=dynamodb_tables.users, Key={"Id": {"S": whole[1]}})

    rest = await export_all(dynamodb_client, dynamodb_tables, after_id=whole[1])

    assert [record.user_id for record in rest] == whole[2:]


async def test_an_export_reports_wrong_guards_and_writes_the_guard_each_user_should_have(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    users = await some_users(dynamodb_client, dynamodb_tables, 3)
    emails = dynamodb_tables.emails
    await dynamodb_client.delete_item(TableName=emails, Key={"Email": {"S": users[0].email}})
    await put_raw(
        dynamodb_client, emails, {"Email": {"S": users[1].email}, "UserId": {"S": users[2].user_id}}
    )
    records: list[UserRecord] = []

    report = await export_users(dynamodb_client, dynamodb_tables, records.append)

    assert sorted(report.guard_problems) == sorted(
        [(users[0].user_id, "missing"), (users[1].user_id, "owned_by_other_user")]
    )
    by_id = {record.user_id: record for record in records}
    assert by_id[users[0].user_id].guard == {
        "Email": {"S": users[0].email},
        "UserId": {"S": users[0].user_id},
    }
    assert by_id[users[1].user_id].guard["UserId"] == {"S": users[1].user_id}
    assert by_id[users[1].user_id].guard_problem == "owned_by_other_user"
    assert by_id[users[2].user_id].guard_problem is None


async def test_an_export_upgrades_version_1_items_and_exports_newer_ones_as_stored(
    dynamodb_client: Any, dynamodb_tables: TableNames
) -> None:
    old, future = await some_users(dynamodb_client, dynamodb_tables, 2)
    old_item = await get_user_item(dynamodb_client, dynamodb_tables, old.user_id)
    future_item = await get_user_item(dynamodb_client, dynamodb_tables, future.user_id)
    assert old_item is not None and future_item is not None
    await put_raw(dynamodb_client, dynamodb_tables.users, as_version_1(old_item))
    await put_raw(dynamodb_client, dynamodb_tables.users, as_newer_schema(future_item))
    records: list[UserRecord] = []

    report = await export_users(dynamodb_client, dynamodb_tables, records.append)

    by_id = {record.user_id: record.user for record in records}
    # Upgraded: the version 1 item held no session (as_version_1 gives it an empty list).
    unexported = {k: v for k, v in old_item.items() if k != "EmailVerification"}
    assert by_id[old.user_id] == {**unexported, "EventSeq": {"N": "0"}, "Sessions": {"L": []}}
    assert by_id[future.user_id] == as_newer_schema(future_item)
    assert report.newer_schema == [future.user_id]


async def test_a_user_deleted_in_the_target_and_imported_again_numbers_its_events_on(
    dynamodb_client: Any, dynamodb_tables: TableNames, target: TableNames
) -> None:
    # Events 1 to 3 in the source: registered (and its verification mail), signed in.
    (user,) = await some_users(dynamodb_client, dynamodb_tables, 1)
    records = await export_all(dynamodb_client, dynamodb_tables)
    await import_all(dynamodb_client, target, records)
    clock = FixedClock(T0 + timedelta(hours=1))
    await delete_user(  # UserDeleted is event 4 in the target, and stays there
        DynamoUnitOfWork(dynamodb_client, target), clock, user_id=user.user_id, expected_version=1
    )

    assert await import_all(dynamodb_client, target, records) == [Outcome.CREATED]
    await update_profile(
        DynamoUnitOfWork(dynamodb_client, target),
        clock,
        user_id=user.user_id,
        first_name="Augusta",
        last_name=None,
        expected_version=1,
    )

    stored = await get_user_item(dynamodb_client, target, user.user_id)
    assert stored is not None and stored["EventSeq"] == {"N": "5"}
    events = await scan_all(dynamodb_client, target.events)
    assert sorted(
        (int(event["Seq"]["N"]), event["Type"]["S"])
        for event in events
        if event["UserId"]["S"] == user.user_id
    ) == [(4, "UserDeleted"), (5, "ProfileUpdated")]


async def test_a_users_totp_factor_moves_sealed_and_its_recovery_codes_stay_behind(
    dynamodb_client: Any, dynamodb_tables: TableNames, target: TableNames
) -> None:
    (signed_up,) = await some_users(dynamodb_client, dynamodb_tables, 1)
    codes = FakeTotpCodes()
    async with DynamoUnitOfWork(dynamodb_client, dynamodb_tables) as uow:
        user = await uow.users.require(UserId(signed_up.user_id))
        user.begin_totp_enrollment(codes.new_secret().sealed, T0)
        assert user.pending_totp is not None
        issued = user.confirm_totp_enrollment(
            codes.code_at(user.pending_totp.sealed_secret, T0), T0, codes
        )
        await uow.users.update(user)
        await uow.commit()
    source = await get_user_item(dynamodb_client, dynamodb_tables, signed_up.user_id)
    assert source is not None

    records = await export_all(dynamodb_client, dynamodb_tables)
    await import_all(dynamodb_client, target, records)

    exported = user_line(records[0])
    assert source["Totp"]["M"]["Secret"]["S"] in exported
    packed = source["RecoveryCodes"]["B"]
    assert (
        packed
        and base64.b64encode(packed).decode() not in exported
        and "RecoveryCodes" not in exported
    )
    assert not [code for code in issued.codes if code in exported]
    imported = await get_user_item(dynamodb_client, target, signed_up.user_id)
    assert imported is not None
    assert imported["Totp"] == source["Totp"] and "RecoveryCodes" not in imported
    async with DynamoUnitOfWork(dynamodb_client, target) as uow:
        moved = await uow.users.require(UserId(signed_up.user_id))
    assert moved.recovery_codes_remaining == 0
    assert moved.totp is not None
    # The same keys open it in the target: the next step's code works there.
    later = T0 + timedelta(seconds=30)
    moved.use_totp_code(codes.code_at(moved.totp.sealed_secret, later), later, codes)
