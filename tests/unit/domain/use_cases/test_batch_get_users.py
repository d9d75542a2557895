"""batch_get_users on in-memory fakes: every bad id named by position, order and duplicates kept."""

from __future__ import annotations

import uuid

import pytest

from domain.errors import InvalidArgument
from domain.use_cases import accounts
from domain.user import User
from domain.values import UserId
from tests.builders import new_user
from tests.fakes import FakeUnitOfWork, InMemoryStore


async def stored(store: InMemoryStore, count: int) -> list[User]:
    users = [new_user(f"u{i}@example.com") for i in range(count)]
    for user in users:
        async with FakeUnitOfWork(store) as uow:
            await uow.users.add(user)
            await uow.commit()
    return users


async def refused(ids: list[str]) -> list[tuple[str, str]]:
    with pytest.raises(InvalidArgument) as error:
        await accounts.batch_get_users(FakeUnitOfWork(), ids=ids)
    return [(violation.field, violation.description) for violation in error.value.violations]


async def test_answers_each_id_in_the_requested_order_with_duplicates_and_missing_in_place() -> (
    None
):
    store = InMemoryStore()
    a, b = await stored(store, 2)
    missing = str(uuid.uuid4())

    lookups = await accounts.batch_get_users(
        FakeUnitOfWork(store), ids=[b.id.value, missing, a.id.value, f" {b.id.value.upper()} "]
    )

    assert [lookup.user_id.value for lookup in lookups] == [
        b.id.value,
        missing,
        a.id.value,
        b.id.value,
    ]
    assert [lookup.user.id if lookup.user else None for lookup in lookups] == [
        b.id,
        None,
        a.id,
        b.id,
    ]


async def test_reads_at_most_one_hundred_ids() -> None:
    store = InMemoryStore()
    [user] = await stored(store, 1)
    ids = [str(uuid.uuid4()) for _ in range(99)] + [user.id.value]

    lookups = await accounts.batch_get_users(FakeUnitOfWork(store), ids=ids)

    assert len(lookups) == 100 and lookups[-1].user is not None
    assert [lookup.user for lookup in lookups[:-1]] == [None] * 99


async def test_names_every_id_that_is_no_uuid_by_its_position() -> None:
    good = str(uuid.uuid4())

    violations = await refused([good, "not-a-uuid", good, "", "0" * 31])

    assert [field for field, _ in violations] == ["ids[1]", "ids[3]", "ids[4]"]
    assert all(description.startswith("must be a UUID") for _, description in violations)


async def test_names_the_first_ten_malformed_ids_and_counts_the_rest() -> None:
    good = str(uuid.uuid4())
    ids = [good if i % 3 == 0 else f"bad-{i}" for i in range(100)]  # 66 malformed

    violations = await refused(ids)

    named = [f"ids[{i}]" for i in range(100) if i % 3][:10]
    assert [field for field, _ in violations] == [*named, "ids"]
    assert violations[-1] == ("ids", "56 more ids after those named are not UUIDs")


async def test_ten_malformed_ids_are_all_named_without_a_count() -> None:
    ids = [str(uuid.uuid4())] * 90 + ["bad"] * 10

    violations = await refused(ids)

    assert [field for field, _ in violations] == [f"ids[{i}]" for i in range(90, 100)]


@pytest.mark.parametrize("count", [0, 101, 5_000])
async def test_refuses_an_empty_list_or_more_than_one_hundred_ids_with_one_violation(
    count: int,
) -> None:
    violations = await refused(["junk"] * count)

    assert violations == [("ids", f"must hold 1 to 100 ids, not {count}")]


async def test_refuses_before_reading_anything() -> None:
    uow = FakeUnitOfWork()
    read: list[object] = []

    async def get_many(user_ids: object) -> dict[UserId, User]:
        read.append(user_ids)
        return {}

    uow.users.get_many = get_many  # type: ignore[method-assign]
    with pytest.raises(InvalidArgument):
        await accounts.batch_get_users(uow, ids=[str(uuid.uuid4()), "bad"])

    assert read == []
