"""A data-tool write refused by a concurrent write is sent again, within bounds; nothing else is."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from datatools.conflict_retry import (
    ATTEMPTS,
    BASE_SECONDS,
    MAX_PAUSE_SECONDS,
    pause_before,
    retrying_conflicts,
)
from domain.errors import StorageUnavailable


def client_error(code: str, **extra: Any) -> ClientError:
    response = {"Error": {"Code": code, "Message": "..."}, **extra}
    return ClientError(response, "PutItem")  # type: ignore[arg-type]


class Refusing:
    """A write refused ``times`` times with ``error``, then accepted."""

    def __init__(self, error: ClientError, times: int) -> None:
        self.error, self.times, self.calls = error, times, 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.times:
            raise self.error
        return "landed"


@pytest.mark.parametrize(
    "error",
    [
        client_error("TransactionConflictException"),
        client_error(
            "TransactionCanceledException",
            CancellationReasons=[{"Code": "None"}, {"Code": "TransactionConflict"}],
        ),
    ],
    ids=["single-write", "transaction"],
)
async def test_a_write_refused_by_a_concurrent_write_is_sent_again_until_it_lands(
    error: ClientError,
) -> None:
    pauses: list[float] = []
    send = Refusing(error, times=ATTEMPTS - 1)

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    assert await retrying_conflicts(send, "writing", sleep) == "landed"
    assert send.calls == ATTEMPTS and len(pauses) == ATTEMPTS - 1
    assert all(0 <= pause <= MAX_PAUSE_SECONDS for pause in pauses)


async def test_past_the_attempts_it_stops_saying_to_run_it_again() -> None:
    send = Refusing(client_error("TransactionConflictException"), times=99)

    async def sleep(seconds: float) -> None:
        pass

    with pytest.raises(StorageUnavailable, match="user 7 kept meeting concurrent writes"):
        await retrying_conflicts(send, "user 7", sleep)
    assert send.calls == ATTEMPTS


async def test_any_other_error_is_raised_at_once() -> None:
    send = Refusing(client_error("ConditionalCheckFailedException"), times=1)

    async def sleep(seconds: float) -> None:
        raise AssertionError("no pause for an error that is not a conflict")

    with pytest.raises(ClientError):
        await retrying_conflicts(send, "writing", sleep)
    assert send.calls == 1


def test_pauses_double_from_the_base_up_to_the_cap() -> None:
    assert max(pause_before(1) for _ in range(200)) <= BASE_SECONDS * 2
    assert max(pause_before(30) for _ in range(200)) <= MAX_PAUSE_SECONDS
