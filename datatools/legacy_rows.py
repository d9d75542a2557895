"""The old system's users as ``import-legacy`` reads them: CSV or JSON Lines, mapped, validated.

Out of the box the columns are ASP.NET Identity's ``AspNetUsers`` (``Id``, ``Email``,
``EmailConfirmed``, ``PasswordHash``, ``LockoutEnd``, ``LockoutEnabled``; ``AccessFailedCount`` is
read by nobody: counting restarts here) plus ``FirstName``, ``LastName`` and ``CreatedAt``. Other
layouts name their columns field by field (``--map email=mail``). Every row is checked before
anything is written; a row that fails is refused with its row number, the column and the reason,
never with the value of a hash. Rows whose emails are equal without regard to case, or whose ids
are equal, are all refused: which one is the user is for a person to decide.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from domain.errors import InvalidValue
from domain.values import Email, PersonName, UserId
from server.crypto.legacy_hashes import UnusableHash, check_importable

FIELDS = (
    "id",
    "email",
    "first_name",
    "last_name",
    "password_hash",
    "hash_format",
    "created",
    "email_verified",
    "disabled",
    "lockout_end",
    "lockout_enabled",
)
REQUIRED_FIELDS = ("id", "email", "first_name", "last_name", "password_hash")
ASPNET_COLUMNS: Mapping[str, str] = {
    "id": "Id",
    "email": "Email",
    "first_name": "FirstName",
    "last_name": "LastName",
    "password_hash": "PasswordHash",
    "created": "CreatedAt",
    "email_verified": "EmailConfirmed",
    "lockout_end": "LockoutEnd",
    "lockout_enabled": "LockoutEnabled",
}
# Ids that are not UUIDs become this namespace's UUID5 of the old id: the same on every run, so a
# rerun finds the users it wrote.
LEGACY_ID_NAMESPACE = uuid.UUID("5b0c7c35-5d2f-4c43-9d0e-3f6f4b1f2a17")
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f", ""})


class FileUnusable(ValueError):
    """The whole file cannot be imported (encoding, CSV syntax, missing columns, empty)."""


class RowRefused(ValueError):
    """One row cannot be imported: its column and why."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(f"{column}: {reason}")
        self.column, self.reason = column, reason


@dataclass(frozen=True)
class ColumnMap:
    """Which source column holds each field."""

    columns: Mapping[str, str]

    @classmethod
    def with_overrides(cls, pairs: Iterable[str]) -> ColumnMap:
        """The AspNetUsers columns, with ``field=column`` pairs replacing them one by one."""
        columns = dict(ASPNET_COLUMNS)
        for pair in pairs:
            name, equals, column = pair.partition("=")
            name = name.strip()
            if not equals or not column.strip():
                raise FileUnusable(f"--map {pair!r}: must be FIELD=COLUMN")
            if name not in FIELDS:
                raise FileUnusable(f"--map {pair!r}: unknown field; fields: {', '.join(FIELDS)}")
            columns[name] = column.strip()
        return cls(columns)

    def column(self, name: str) -> str:
        return self.columns.get(name, name)


@dataclass(frozen=True)
class SourceRow:
    """One row as read: its number (the line of a JSON Lines file; 1 is the first user of a
    CSV file) and its values by column (None: the column is absent)."""

    number: int
    values: Mapping[str, str | None]
    problem: str | None = None  # a row that could not even be read as a row


@dataclass(frozen=True)
class LegacyUser:
    """A row that passed every check: what the user will be written as."""

    number: int
    source_id: str
    user_id: UserId
    email: Email
    first_name: PersonName
    last_name: PersonName
    password_hash: str = field(repr=False)
    hash_format: str
    created_at: datetime | None
    email_verified: bool
    disabled: bool
    locked_until: datetime | None

    @property
    def id_replaced(self) -> bool:
        return self.user_id.value != self.source_id


@dataclass(frozen=True)
class Refusal:
    """A row not imported: its number, the column, the reason."""

    number: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.number}: {self.column}: {self.reason}"


@dataclass
class Validation:
    """Every row of a file, checked: the users to write, and the rows refused."""

    users: list[LegacyUser] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.users) + len(self.refusals)


def read_rows(path: Path) -> list[SourceRow]:
    """The rows of a ``.csv`` or ``.jsonl`` file. FileUnusable when no row can be trusted."""
    if path.suffix.lower() not in {".csv", ".jsonl"}:
        raise FileUnusable(f"{path.name}: must end in .csv or .jsonl")
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise FileUnusable(f"cannot read {path}: {error.strerror}") from error
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark, as Excel writes, is fine
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise FileUnusable(
            f"not UTF-8: byte 0x{raw[error.start]:02x} on line {line} "
            "(convert it first, e.g. iconv -f WINDOWS-1252 -t UTF-8)"
        ) from error
    if not text.strip():
        raise FileUnusable("the file is empty")
    rows = _csv_rows(text) if path.suffix.lower() == ".csv" else _jsonl_rows(text)
    if not rows:
        raise FileUnusable("the file holds no users")
    return rows


def validate(
    rows: list[SourceRow], columns: ColumnMap, *, now: datetime | None = None
) -> Validation:
    """Checks every row, then refuses every row of a duplicate email or id."""
    now = now or datetime.now(UTC)
    _require_columns(rows, columns)
    checked = Validation()
    for row in rows:
        try:
            checked.users.append(_user(row, columns, now))
        except RowRefused as refused:
            checked.refusals.append(Refusal(row.number, refused.column, refused.reason))
    duplicates = _duplicates(checked.users, columns)
    checked.users = [user for user in checked.users if user.number not in duplicates]
    checked.refusals.extend(duplicates.values())
    checked.refusals.sort(key=lambda refusal: refusal.number)
    return checked


def _csv_rows(text: str) -> list[SourceRow]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
        width = len(header)
        if len(set(header)) != width:
            raise FileUnusable(f"line 1: a column is named twice: {', '.join(header)}")
        rows = []
        for number, cells in enumerate(reader, start=1):
            if not cells:
                continue
            if len(cells) != width:
                problem = f"has {len(cells)} fields, the header {width}"
                rows.append(SourceRow(number, {}, problem))
                continue
            rows.append(SourceRow(number, dict(zip(header, cells, strict=True))))
    except csv.Error as error:
        raise FileUnusable(f"line {reader.line_num}: malformed CSV: {error}") from error
    return rows


def _jsonl_rows(text: str) -> list[SourceRow]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            rows.append(SourceRow(number, {}, "not a JSON object"))
            continue
        rows.append(SourceRow(number, {str(k): _text(v) for k, v in value.items()}))
    return rows


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _require_columns(rows: list[SourceRow], columns: ColumnMap) -> None:
    present: set[str] = set()
    for row in rows:
        present.update(row.values)
    missing = [
        columns.column(name) for name in REQUIRED_FIELDS if columns.column(name) not in present
    ]
    if missing:
        raise FileUnusable(
            f"missing required column{'s' if len(missing) > 1 else ''}: {', '.join(missing)} "
            "(name other columns with --map FIELD=COLUMN)"
        )


def _user(row: SourceRow, columns: ColumnMap, now: datetime) -> LegacyUser:
    if row.problem is not None:
        raise RowRefused("(row)", row.problem)

    def value(name: str) -> str:
        return (row.values.get(columns.column(name)) or "").strip()

    def parsed(name: str, parse: Any) -> Any:
        try:
            return parse(value(name))
        except InvalidValue as error:
            raise RowRefused(columns.column(name), str(error)) from error

    source_id = value("id")
    if not source_id:
        raise RowRefused(columns.column("id"), "must not be empty")
    try:
        user_id = UserId.parse(source_id)
    except InvalidValue:
        user_id = UserId(str(uuid.uuid5(LEGACY_ID_NAMESPACE, source_id)))
    stored = row.values.get(columns.column("password_hash")) or ""
    if not stored.strip():
        raise RowRefused(columns.column("password_hash"), "empty: the user has no password")
    try:
        hash_format = str(check_importable(stored))
    except UnusableHash as error:
        # The message never repeats the hash, whatever the checker wrote.
        raise RowRefused(
            columns.column("password_hash"), str(error).replace(stored, "<hash>")
        ) from error
    declared = value("hash_format")
    if declared and declared.lower() != hash_format:
        raise RowRefused(
            columns.column("hash_format"), f"says {declared!r}, the hash is {hash_format}"
        )
    disabled = _flag(value("disabled"), columns.column("disabled"))
    lockout_on = _flag(value("lockout_enabled") or "true", columns.column("lockout_enabled"))
    lockout_end = _moment(value("lockout_end"), columns.column("lockout_end"))
    return LegacyUser(
        number=row.number,
        source_id=source_id,
        user_id=user_id,
        email=parsed("email", Email.parse),
        first_name=parsed("first_name", PersonName.parse),
        last_name=parsed("last_name", PersonName.parse),
        password_hash=stored,
        hash_format=hash_format,
        created_at=_moment(value("created"), columns.column("created")),
        email_verified=_flag(value("email_verified"), columns.column("email_verified")),
        disabled=disabled,
        locked_until=lockout_end if lockout_on and lockout_end and lockout_end > now else None,
    )


def _flag(text: str, column: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise RowRefused(column, f"must be true or false, not {text[:20]!r}")


def _moment(text: str, column: str) -> datetime | None:
    if not text:
        return None
    try:
        # SQL Server writes "2024-03-01 10:00:00.1234567 +00:00"; Python wants no space there.
        moment = datetime.fromisoformat(text.replace(" +", "+").replace(" -", "-"))
    except ValueError as error:
        raise RowRefused(column, f"must be an ISO 8601 time, not {text[:40]!r}") from error
    if moment.tzinfo is None:  # a time without an offset is UTC, as AspNetUsers stores times
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError as error:
        raise RowRefused(column, f"is out of range: {text[:40]!r}") from error


def _duplicates(users: list[LegacyUser], columns: ColumnMap) -> dict[int, Refusal]:
    keyed: list[tuple[str, str, dict[str, list[int]]]] = [
        (columns.column("email"), "email (without regard to case)", defaultdict(list)),
        (columns.column("id"), "id", defaultdict(list)),
    ]
    for user in users:
        keyed[0][2][user.email.normalized].append(user.number)
        keyed[1][2][user.user_id.value].append(user.number)
    refused: dict[int, Refusal] = {}
    for column, what, groups in keyed:
        for numbers in groups.values():
            for number in numbers if len(numbers) > 1 else ():
                others = ", ".join(str(other) for other in numbers if other != number)
                refused.setdefault(
                    number, Refusal(number, column, f"the same {what} as row {others}")
                )
    return refused
