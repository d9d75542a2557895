"""The request id: the caller's x-request-id when it is sane, else a fresh random one."""

from __future__ import annotations

import re

import pytest

from server.interceptors.request_id import MAX_LENGTH, new_request_id, request_id_from

FRESH = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize(
    "given", ["abc", "0f8e7d6c-5b4a-4321-8fed-cba987654321", "trace:1/2+3=4_x.y", "x" * MAX_LENGTH]
)
def test_a_sane_caller_id_is_kept_as_it_is(given: str) -> None:
    assert request_id_from(given) == given


@pytest.mark.parametrize(
    "given",
    [
        None,
        "",
        "x" * (MAX_LENGTH + 1),
        "x" * 10_000,
        "line\nforged",
        "nul\x00byte",
        "\x1b[31mred",
        "tab\there",
        "spaced request_id=forged",
        "café",
        b"bytes",
    ],
)
def test_a_missing_huge_or_unprintable_caller_id_is_replaced_by_a_fresh_one(
    given: str | bytes | None,
) -> None:
    replaced = request_id_from(given)

    assert FRESH.fullmatch(replaced), replaced


@pytest.mark.parametrize(
    "given",
    [
        # a refresh token's form: the user id, then its secret part
        "0f8e7d6c-5b4a-4321-8fed-cba987654321.c2VjcmV0LXBhcnQtb2YtdGhlLXJlZnJlc2gtdG9rZW4",
        "usk_" + "c2VjcmV0LWFwaS1rZXktMDEyMzQ1Njc4OS1hYmNkZWZ",  # an API key (43 characters)
        "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1In0.c2ln",  # a JWT
        "ab" * 32,  # a 64-digit hex digest (a token hash)
    ],
)
def test_a_caller_id_in_the_form_of_a_secret_is_replaced_by_a_fresh_one(given: str) -> None:
    """The id is a field of every log line of the call: a secret sent as one by mistake must not
    be written there."""
    replaced = request_id_from(given)

    assert FRESH.fullmatch(replaced), replaced


def test_fresh_ids_differ() -> None:
    assert len({new_request_id() for _ in range(100)}) == 100
