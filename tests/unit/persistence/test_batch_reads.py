"""The BatchGetItem loop on a stub client: unprocessed keys asked again with backoff, or refused."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from botocore.exceptions import ClientError

from domain.errors import StorageError, StorageUnavailable
from persistence.batch_reads import BATCH_GET_ATTEMPTS, batch_get_items

TABLE = "Users-stub"


def key(name: str) -> dict[str, Any]:
    return {"Id": {"S": name}}


def item(name: str) -> dict[str, Any]:
    return {"Id": {"S": name}, "Email": {"S": f"{name}@example.com"}}


class StingyClient:
    """A stand-in DynamoDB client whose batch_get_item serves only ``served_per_call`` keys in
    each of its first ``stingy_calls`` requests, and hands the rest back as UnprocessedKeys."""

    def __init__(self, stored: list[str], *, stingy_calls: int, served_per_call: int = 1) -> None:
        self.stored = {name: item(name) for name in stored}
        self.stingy_calls = stingy_calls
        self.served_per_call = served_per_call
        self.requests: list[dict[str, Any]] = []

    async def batch_get_item(self, *, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.requests.append(copy.deepcopy(RequestItems))
        asked = RequestItems[TABLE]
        keys = asked["Keys"]
        cut = self.served_per_call if len(self.requests) <= self.stingy_calls else len(keys)
        served, left = keys[:cut], keys[cut:]
        found = [self.stored[k["Id"]["S"]] for k in served if k["Id"]["S"] in self.stored]
        response: dict[str, Any] = {"Responses": {TABLE: found}, "UnprocessedKeys": {}}
        if left:
            response["UnprocessedKeys"] = {TABLE: {**asked, "Keys": left}}
        return response


class RecordedSleep:
    """An asyncio.sleep stand-in that keeps the pauses asked for and does not wait."""

    def __init__(self) -> None:
        self.pauses: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)


def asked_names(request: dict[str, Any]) -> list[str]:
    return [k["Id"]["S"] for k in request[TABLE]["Keys"]]


async def test_all_keys_processed_at_once_is_one_request_and_no_pause() -> None:
    client = StingyClient(["a", "b"], stingy_calls=0)
    sleep = RecordedSleep()

    items = await batch_get_items(client, TABLE, [key("a"), key("b"), key("x")], sleep=sleep)

    assert sorted(i["Id"]["S"] for i in items) == ["a", "b"]
    assert client.requests == [
        {TABLE: {"Keys": [key("a"), key("b"), key("x")], "ConsistentRead": True}}
    ]
    assert sleep.pauses == []


async def test_unprocessed_keys_are_asked_again_until_every_item_is_read() -> None:
    client = StingyClient(["a", "c", "e"], stingy_calls=3)
    sleep = RecordedSleep()

    keys = [key(name) for name in "abcde"]
    items = await batch_get_items(client, TABLE, keys, sleep=sleep)

    assert sorted(i["Id"]["S"] for i in items) == ["a", "c", "e"]
    # Each retry asks only for what was left, still strongly consistent.
    assert [asked_names(r) for r in client.requests] == [
        ["a", "b", "c", "d", "e"],
        ["b", "c", "d", "e"],
        ["c", "d", "e"],
        ["d", "e"],
    ]
    assert all(r[TABLE]["ConsistentRead"] is True for r in client.requests)
    assert len(sleep.pauses) == 3


async def pauses_until_giving_up(attempts: int, jitter: float) -> list[float]:
    client = StingyClient(["a"], stingy_calls=attempts, served_per_call=0)
    sleep = RecordedSleep()
    with pytest.raises(StorageUnavailable):
        await batch_get_items(
            client, TABLE, [key("a")], attempts=attempts, sleep=sleep, jitter=lambda: jitter
        )
    return sleep.pauses


async def test_pauses_grow_exponentially_up_to_a_cap_and_are_jittered() -> None:
    full = await pauses_until_giving_up(9, jitter=1.0)
    half = await pauses_until_giving_up(9, jitter=0.5)

    assert full == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])
    assert half == pytest.approx([p / 2 for p in full])


async def test_keys_still_unprocessed_after_the_last_attempt_fail_rather_than_answer_partly() -> (
    None
):
    client = StingyClient(["a", "b", "c"], stingy_calls=BATCH_GET_ATTEMPTS, served_per_call=2)
    sleep = RecordedSleep()

    with pytest.raises(StorageUnavailable, match="unprocessed"):
        await batch_get_items(client, TABLE, [key(name) for name in "abcdefghijklmn"], sleep=sleep)

    # The default budget: that many requests, and a pause before each but the first.
    assert len(client.requests) == BATCH_GET_ATTEMPTS
    assert len(sleep.pauses) == BATCH_GET_ATTEMPTS - 1


async def test_the_last_attempt_that_clears_the_keys_still_answers_in_full() -> None:
    client = StingyClient(["a", "b", "c"], stingy_calls=2)

    items = await batch_get_items(
        client, TABLE, [key("a"), key("b"), key("c")], attempts=3, sleep=RecordedSleep()
    )

    assert sorted(i["Id"]["S"] for i in items) == ["a", "b", "c"] and len(client.requests) == 3


class FailingClient:
    """A stand-in client whose batch_get_item raises DynamoDB's error ``code``."""

    def __init__(self, code: str) -> None:
        self.code = code

    async def batch_get_item(self, **_: Any) -> dict[str, Any]:
        raise ClientError({"Error": {"Code": self.code, "Message": "no"}}, "BatchGetItem")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ProvisionedThroughputExceededException", StorageUnavailable),
        ("ResourceNotFoundException", StorageError),
    ],
)
async def test_client_errors_become_the_matching_domain_error(
    code: str, expected: type[Exception]
) -> None:
    with pytest.raises(expected, match=f"BatchGetItem failed \\({code}\\)") as raised:
        await batch_get_items(FailingClient(code), TABLE, [key("a")], sleep=RecordedSleep())

    assert isinstance(raised.value.__cause__, ClientError)
