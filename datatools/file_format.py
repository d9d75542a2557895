"""The export file's lines: a header, one user item with its email guard a line, an end line.

JSON Lines, UTF-8. Items are in DynamoDB's typed JSON (``{"S": ...}``, ``{"N": ...}``, ...), as
the low-level API returns them; binary values (``B``, ``BS``), which the service never stores,
are written base64-encoded, as the AWS CLI does. Lines:

  {"format": "user-service-export", "format_version": 1, "schema_version": 2,
   "tables": {"users": ..., "emails": ...}, "started_at": "<ISO-8601 UTC>"}
  {"user": {<user item>}, "guard": {"Email": ..., "UserId": ...}}            one per user
  {"user": ..., "guard": ..., "guard_problem": "missing" | "owned_by_other_user"}
  {"end": true, "users": <count>, "finished_at": "<ISO-8601 UTC>"}           last line

``guard_problem`` marks a user whose guard item in the source was missing or named another
user: the line carries the guard the user should have. A file without the end line is an
export that did not finish.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

FORMAT_NAME = "user-service-export"
FORMAT_VERSION = 1
GUARD_PROBLEMS = frozenset({"missing", "owned_by_other_user"})

Item = dict[str, Any]

_SCALAR_TYPES = frozenset({"S", "N", "BOOL", "NULL"})
_SET_TYPES = frozenset({"SS", "NS"})


class MalformedLine(ValueError):
    """A line of an export file that is not what the format says it must be."""


@dataclass(frozen=True)
class ExportHeader:
    """The first line: which format, which schema, which tables, when."""

    schema_version: int
    users_table: str
    emails_table: str
    started_at: str
    format_version: int = FORMAT_VERSION


@dataclass(frozen=True)
class UserRecord:
    """One user item, the guard item it should have, and what was wrong with the stored one."""

    user: Item
    guard: Item
    guard_problem: str | None = None

    @property
    def user_id(self) -> str:
        return str(self.user["Id"]["S"])


@dataclass(frozen=True)
class ExportEnd:
    """The last line of a finished export."""

    users: int
    finished_at: str


def guard_of(user: Item) -> Item:
    """The email-guard item a user item should have: its normalized email, owned by it."""
    return {"Email": {"S": user["EmailIndex"]["S"]}, "UserId": {"S": user["Id"]["S"]}}


def header_line(header: ExportHeader) -> str:
    return _dump(
        {
            "format": FORMAT_NAME,
            "format_version": header.format_version,
            "schema_version": header.schema_version,
            "tables": {"users": header.users_table, "emails": header.emails_table},
            "started_at": header.started_at,
        }
    )


def user_line(record: UserRecord) -> str:
    line: dict[str, Any] = {"user": _to_json(record.user), "guard": _to_json(record.guard)}
    if record.guard_problem is not None:
        line["guard_problem"] = record.guard_problem
    return _dump(line)


def end_line(end: ExportEnd) -> str:
    return _dump({"end": True, "users": end.users, "finished_at": end.finished_at})


def parse_header(text: str) -> ExportHeader:
    """The header of a file (its first line); MalformedLine if it is none this code reads."""
    value = _load(text)
    if value.get("format") != FORMAT_NAME:
        raise MalformedLine(f"not a {FORMAT_NAME} file (the first line names no such format)")
    try:
        header = ExportHeader(
            schema_version=_int(value["schema_version"]),
            users_table=str(value["tables"]["users"]),
            emails_table=str(value["tables"]["emails"]),
            started_at=str(value["started_at"]),
            format_version=_int(value["format_version"]),
        )
    except (KeyError, TypeError) as error:
        raise MalformedLine(f"incomplete header ({type(error).__name__}: {error})") from error
    if header.format_version != FORMAT_VERSION:
        raise MalformedLine(
            f"format version {header.format_version}; this code reads version {FORMAT_VERSION}"
        )
    return header


def parse_line(text: str) -> UserRecord | ExportEnd:
    """A user line or the end line; MalformedLine (with the reason) for anything else."""
    value = _load(text)
    if value.get("end") is True:
        try:
            return ExportEnd(users=_int(value["users"]), finished_at=str(value["finished_at"]))
        except KeyError as error:
            raise MalformedLine(f"end line without {error}") from error
    if set(value) - {"user", "guard", "guard_problem"} or not {"user", "guard"} <= set(value):
        raise MalformedLine("a user line has exactly the keys user, guard and guard_problem")
    user, guard = _item(value["user"], "user"), _item(value["guard"], "guard")
    for name in ("Id", "EmailIndex"):
        if not isinstance(user.get(name, {}).get("S"), str):
            raise MalformedLine(f"the user item has no string {name}")
    if guard != guard_of(user):
        raise MalformedLine("the guard is not {Email: the user's EmailIndex, UserId: its Id}")
    problem = value.get("guard_problem")
    if problem is not None and problem not in GUARD_PROBLEMS:
        raise MalformedLine(f"unknown guard_problem {problem!r}")
    return UserRecord(user=user, guard=guard, guard_problem=problem)


def _dump(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _load(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise MalformedLine(f"not JSON ({error})") from error
    if not isinstance(value, dict):
        raise MalformedLine("not a JSON object")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedLine(f"{value!r} is not an integer")
    return value


def _item(value: Any, what: str) -> Item:
    if not isinstance(value, dict) or not value:
        raise MalformedLine(f"{what} is not a non-empty item")
    try:
        return {str(name): _from_json(attribute) for name, attribute in value.items()}
    except (TypeError, ValueError, KeyError) as error:
        raise MalformedLine(f"{what} holds a malformed attribute value ({error})") from error


def _to_json(item: Item) -> Item:
    return {name: _value_to_json(value) for name, value in item.items()}


def _value_to_json(value: Item) -> Item:
    ((kind, body),) = value.items()
    if kind == "B":
        return {"B": base64.b64encode(body).decode("ascii")}
    if kind == "BS":
        return {"BS": [base64.b64encode(part).decode("ascii") for part in body]}
    if kind == "M":
        return {"M": _to_json(body)}
    if kind == "L":
        return {"L": [_value_to_json(entry) for entry in body]}
    return {kind: body}


def _from_json(value: Any) -> Item:
    """A typed attribute value read back from JSON; TypeError/ValueError when it is none."""
    if not isinstance(value, dict) or len(value) != 1:
        raise TypeError("an attribute value is an object with exactly one type key")
    ((kind, body),) = value.items()
    if kind in _SCALAR_TYPES:
        expected = {"S": str, "N": str, "BOOL": bool, "NULL": bool}[kind]
        if not isinstance(body, expected):
            raise TypeError(f"{kind} holds {type(body).__name__}")
        return {kind: body}
    if kind in _SET_TYPES:
        if not isinstance(body, list) or not all(isinstance(part, str) for part in body):
            raise TypeError(f"{kind} is not a list of strings")
        return {kind: list(body)}
    if kind == "B":
        return {"B": base64.b64decode(_text(body), validate=True)}
    if kind == "BS":
        if not isinstance(body, list):
            raise TypeError("BS is not a list")
        return {"BS": [base64.b64decode(_text(part), validate=True) for part in body]}
    if kind == "M":
        if not isinstance(body, dict):
            raise TypeError("M is not an object")
        return {"M": {str(name): _from_json(entry) for name, entry in body.items()}}
    if kind == "L":
        if not isinstance(body, list):
            raise TypeError("L is not a list")
        return {"L": [_from_json(entry) for entry in body]}
    raise ValueError(f"unknown attribute type {kind!r}")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("binary values are base64 strings")
    return value
