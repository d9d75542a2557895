"""The export file's lines: written and read back unchanged; anything else refused with a reason."""

from __future__ import annotations

import json

import pytest

from datatools.file_format import (
    ExportEnd,
    ExportHeader,
    MalformedLine,
    UserRecord,
    end_line,
    guard_of,
    header_line,
    parse_header,
    parse_line,
    user_line,
)
from persistence.session_mapper import session_to_embedded
from persistence.user_mapper import user_to_item
from tests.builders import new_user, session


def record(**changes: object) -> UserRecord:
    user = new_user("Ada@Example.com")
    item = user_to_item(user, version=2, revision=7, event_seq=3)
    # A user line holds the user's sessions in the item, as schema version 2 kept them.
    item["Sessions"] = {"L": [session_to_embedded(session("a" * 64, previous="b" * 64))]}
    return UserRecord(user=item, guard=guard_of(item), **changes)  # type: ignore[arg-type]


def test_a_user_line_reads_back_as_the_same_items_on_one_line() -> None:
    original = record()

    line = user_line(original)

    assert "\n" not in line
    assert parse_line(line) == original
    assert original.guard == {
        "Email": {"S": "ada@example.com"},
        "UserId": original.user["Id"],
    }


def test_binary_values_and_sets_survive_the_round_trip_as_base64() -> None:
    base = record()
    item = {
        **base.user,
        "Blob": {"B": b"\x00\xffbinary"},
        "Blobs": {"BS": [b"\x01", b"\x02"]},
        "Tags": {"SS": ["a", "b"]},
        "Nested": {"M": {"Flag": {"BOOL": True}, "Nothing": {"NULL": True}, "B": {"B": b"\x07"}}},
    }

    line = user_line(UserRecord(user=item, guard=base.guard))

    assert json.loads(line)["user"]["Blob"] == {"B": "AP9iaW5hcnk="}
    parsed = parse_line(line)
    assert isinstance(parsed, UserRecord)
    assert parsed.user == item


def test_a_guard_problem_is_written_and_read_back() -> None:
    flagged = record(guard_problem="owned_by_other_user")

    assert parse_line(user_line(flagged)) == flagged


def test_the_header_and_the_end_line_read_back() -> None:
    header = ExportHeader(2, "Users", "UserEmails", "2026-11-26T09:00:00+00:00")
    end = ExportEnd(users=12, finished_at="2026-11-26T09:05:00+00:00")

    assert parse_header(header_line(header)) == header
    assert json.loads(header_line(header))["format"] == "user-service-export"
    assert parse_line(end_line(end)) == end


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"user": ', "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"user": {}, "guard": {}}', "not a non-empty item"),
        ('{"user": {"Id": {"S": "x"}}}', "exactly the keys"),
        ('{"user": {"Id": {"S": "x"}, "EmailIndex": {"S": "e"}}, "guard": {"Email": {"S": "e"}, '
         '"UserId": {"S": "someone else"}}}', "the guard is not"),
        ('{"user": {"Id": {"X": "x"}}, "guard": {"Email": {"S": "e"}}}', "unknown attribute type"),
        ('{"user": {"Id": {"S": 1}}, "guard": {"Email": {"S": "e"}}}', "S holds int"),
        ('{"user": {"Id": {"S": "x"}}, "guard": {"Email": {"S": "e"}}}', "no string EmailIndex"),
        ('{"user": {"Id": {"B": "not base64!"}}, "guard": {"Email": {"S": "e"}}}', "malformed"),
        ('{"end": true}', "end line without"),
    ],
)  # fmt: skip
def test_a_malformed_line_is_refused_with_its_reason(text: str, reason: str) -> None:
    with pytest.raises(MalformedLine, match=reason):
        parse_line(text)


def test_an_unknown_guard_problem_is_refused() -> None:
    line = json.loads(user_line(record()))
    line["guard_problem"] = "haunted"

    with pytest.raises(MalformedLine, match="unknown guard_problem"):
        parse_line(json.dumps(line))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"format": "something-else"}, "not a user-service-export file"),
        ({"format_version": 2}, "format version 2"),
        ({"tables": None}, "incomplete header"),
        ({"schema_version": "2"}, "not an integer"),
    ],
)
def test_a_header_of_another_format_or_version_is_refused(
    change: dict[str, object], reason: str
) -> None:
    header = json.loads(header_line(ExportHeader(2, "Users", "UserEmails", "now")))
    header.update(change)

    with pytest.raises(MalformedLine, match=reason):
        parse_header(json.dumps(header))
