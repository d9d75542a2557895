"""import-legacy's reading, mapping and checking of the old system's rows, before any write."""

from __future__ import annotations

import base64
import json
import struct
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from datatools.legacy_rows import (
    LEGACY_ID_NAMESPACE,
    ColumnMap,
    FileUnusable,
    Validation,
    read_rows,
    validate,
)
from tools.legacy_import_bench import aspnet_v2_hash, aspnet_v3_hash, write_rows

NOW = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
V3 = aspnet_v3_hash("old-password", salt=b"s" * 16, iterations=10_000, prf="sha256")
V2 = aspnet_v2_hash("old-password", salt=b"t" * 16)
HEADER = (
    "Id,Email,EmailConfirmed,PasswordHash,LockoutEnd,LockoutEnabled,FirstName,LastName,CreatedAt"
)
ID = "3f2b8a3e-1c4d-4e5f-9a6b-7c8d9e0f1a2b"


def row(**values: str) -> str:
    base = {
        "Id": ID,
        "Email": "ada@example.com",
        "EmailConfirmed": "True",
        "PasswordHash": V3,
        "LockoutEnd": "",
        "LockoutEnabled": "True",
        "FirstName": "Ada",
        "LastName": "Lovelace",
        "CreatedAt": "2020-01-02 03:04:05.1234567",
    }
    base.update(values)
    return ",".join(base[column] for column in HEADER.split(","))


def checked(tmp_path: Path, *lines: str, name: str = "users.csv", **kwargs: object) -> Validation:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    columns = kwargs.pop("columns", ColumnMap.with_overrides([]))
    assert isinstance(columns, ColumnMap)
    return validate(read_rows(path), columns, now=NOW)


def reasons(result: Validation) -> list[str]:
    return [str(refusal) for refusal in result.refusals]


def test_an_aspnet_users_row_becomes_a_user_with_its_hash_as_given(tmp_path: Path) -> None:
    result = checked(tmp_path, HEADER, row())

    assert reasons(result) == []
    [user] = result.users
    assert user.user_id.value == ID and not user.id_replaced
    assert user.email.value == "ada@example.com" and user.email_verified
    assert (user.first_name.value, user.last_name.value) == ("Ada", "Lovelace")
    assert user.password_hash == V3 and user.hash_format == "aspnet-identity-v3"
    assert user.created_at == datetime(2020, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert user.locked_until is None and not user.disabled


def test_a_byte_order_mark_is_fine_and_a_v2_hash_is_read(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_bytes(b"\xef\xbb\xbf" + f"{HEADER}\n{row(PasswordHash=V2)}\n".encode())

    result = validate(read_rows(path), ColumnMap.with_overrides([]), now=NOW)

    assert [user.hash_format for user in result.users] == ["aspnet-identity-v2"]


def test_a_lockout_still_running_is_carried_and_one_over_or_disabled_is_not(
    tmp_path: Path,
) -> None:
    later = (NOW + timedelta(days=3)).isoformat(sep=" ")
    earlier = (NOW - timedelta(days=3)).isoformat(sep=" ")
    result = checked(
        tmp_path,
        HEADER,
        row(LockoutEnd=later),
        row(Id=str(uuid.uuid4()), Email="b@example.com", LockoutEnd=earlier),
        row(Id=str(uuid.uuid4()), Email="c@example.com", LockoutEnd=later, LockoutEnabled="False"),
        row(
            Id=str(uuid.uuid4()),
            Email="d@example.com",
            LockoutEnd="9999-12-31 23:59:59.9999999 +00:00",
        ),
    )

    assert [user.locked_until for user in result.users] == [
        NOW + timedelta(days=3),
        None,
        None,
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ]


def test_an_id_that_is_not_a_uuid_gets_the_same_new_uuid_on_every_run(tmp_path: Path) -> None:
    first = checked(tmp_path, HEADER, row(Id="42"))
    second = checked(tmp_path, HEADER, row(Id="42"))

    [user] = first.users
    assert user.id_replaced and user.source_id == "42"
    assert user.user_id.value == str(uuid.uuid5(LEGACY_ID_NAMESPACE, "42"))
    assert second.users[0].user_id == user.user_id


def test_a_row_that_fails_is_refused_by_number_column_and_reason_never_showing_the_hash(
    tmp_path: Path,
) -> None:
    absurd = base64.b64encode(
        struct.pack(">BIII", 1, 2, 4_000_000_000, 16) + b"s" * 16 + b"k" * 32
    ).decode()
    result = checked(
        tmp_path,
        HEADER,
        row(),
        row(Id=str(uuid.uuid4()), Email="not-an-address"),
        row(Id=str(uuid.uuid4()), Email="b@example.com", PasswordHash=absurd),
        row(Id=str(uuid.uuid4()), Email="c@example.com", PasswordHash=V2[:-8]),
        row(Id=str(uuid.uuid4()), Email="d@example.com", PasswordHash=""),
        row(Id=str(uuid.uuid4()), Email="e@example.com", FirstName=""),
        row(Id=str(uuid.uuid4()), Email="f@example.com", EmailConfirmed="maybe"),
        row(Id=str(uuid.uuid4()), Email="g@example.com", CreatedAt="yesterday"),
        row(Id="", Email="h@example.com"),
        "1,2,3",
    )

    assert [user.number for user in result.users] == [1]
    assert [(r.number, r.column) for r in result.refusals] == [
        (2, "Email"),
        (3, "PasswordHash"),
        (4, "PasswordHash"),
        (5, "PasswordHash"),
        (6, "FirstName"),
        (7, "EmailConfirmed"),
        (8, "CreatedAt"),
        (9, "Id"),
        (10, "(row)"),
    ]
    assert "4000000000 iterations" in reasons(result)[1]
    text = "\n".join(reasons(result))
    assert absurd not in text and V2[:-8] not in text and V2[:20] not in text


def test_duplicate_emails_without_regard_to_case_and_duplicate_ids_refuse_every_row_named(
    tmp_path: Path,
) -> None:
    other = str(uuid.uuid4())
    result = checked(
        tmp_path,
        HEADER,
        row(),
        row(Id=str(uuid.uuid4()), Email="ok@example.com"),
        row(Id=other, Email="ADA@Example.COM"),
        row(Id=other.upper(), Email="z@example.com"),
    )

    assert [user.number for user in result.users] == [2]
    assert reasons(result) == [
        "row 1: Email: the same email (without regard to case) as row 3",
        "row 3: Email: the same email (without regard to case) as row 1",
        "row 4: Id: the same id as row 3",
    ]


def test_another_layout_is_read_through_the_column_map(tmp_path: Path) -> None:
    columns = ColumnMap.with_overrides(
        [
            "id=user_id",
            "email=mail",
            "first_name=given",
            "last_name=family",
            "password_hash=pw",
            "hash_format=pw_format",
            "email_verified=verified",
            "disabled=blocked",
            "created=joined",
        ]
    )
    lines = [
        json.dumps(
            {
                "user_id": 7,
                "mail": "x@example.com",
                "given": "X",
                "family": "Y",
                "pw": V2,
                "pw_format": "aspnet-identity-v2",
                "verified": False,
                "blocked": True,
                "joined": "2021-05-06T07:08:09+02:00",
            }
        ),
        json.dumps(
            {
                "user_id": 8,
                "mail": "w@example.com",
                "given": "W",
                "family": "V",
                "pw": V2,
                "pw_format": "bcrypt",
            }
        ),
        "[1, 2]",
        "{not json",
    ]

    result = checked(tmp_path, *lines, name="users.jsonl", columns=columns)

    [user] = result.users
    assert user.source_id == "7" and user.disabled and not user.email_verified
    assert user.created_at == datetime(2021, 5, 6, 5, 8, 9, tzinfo=UTC)
    assert reasons(result) == [
        "row 2: pw_format: says 'bcrypt', the hash is aspnet-identity-v2",
        "row 3: (row): not a JSON object",
        "row 4: (row): not a JSON object",
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("users.csv", b"", "the file is empty"),
        ("users.csv", b"\n  \n", "the file is empty"),
        ("users.csv", HEADER.encode() + b"\n", "the file holds no users"),
        (
            "users.csv",
            b"Id,Email\n1,a@example.com\n",
            "missing required columns: FirstName, LastName, PasswordHash",
        ),
        (
            "users.csv",
            (HEADER + "\n" + row(FirstName="Ren\xe9")).encode("cp1252"),
            "not UTF-8: byte 0xe9 on line 2",
        ),
        ("users.csv", (HEADER + '\n"unterminated,' + row()).encode(), "malformed CSV"),
        ("users.txt", b"anything", "must end in .csv or .jsonl"),
        ("users.csv", b"Id,Id,Email\n", "a column is named twice"),
    ],
)
def test_a_file_that_cannot_be_used_is_refused_whole(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)

    with pytest.raises(FileUnusable, match=message):
        validate(read_rows(path), ColumnMap.with_overrides([]), now=NOW)


@pytest.mark.parametrize("pair", ["email", "colour=Colour", "email="])
def test_a_mapping_that_names_no_field_or_no_column_is_refused(pair: str) -> None:
    with pytest.raises(FileUnusable, match="--map"):
        ColumnMap.with_overrides([pair])


def test_the_benchmark_generator_writes_rows_that_all_pass(tmp_path: Path) -> None:
    path = tmp_path / "AspNetUsers.csv"
    write_rows(path, 300, iterations=1000)

    result = validate(read_rows(path), ColumnMap.with_overrides([]), now=NOW)

    assert (len(result.users), result.refusals) == (300, [])
    assert sum(user.locked_until is not None for user in result.users) == 3
    assert sum(not user.email_verified for user in result.users) == 43
