"""Readiness probe: one cheap GetItem per table, proving DynamoDB answers and all tables exist."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from persistence.errors import THROTTLING_CODES, error_code, to_storage_error
from persistence.schema import TableNames

# Not a UUID, so no user or guard item ever has this key.
_PROBE_KEY = "readiness-probe"


async def check_ready(client: Any, tables: TableNames) -> None:
    """Return if every table answers a read; else raise StorageUnavailable or StorageError.

    The events table is probed too: every write carries its events there, so without it the
    service could read but not change anything; and the sessions table, without which nobody
    could sign in or refresh.

    A throttled read counts as an answer: DynamoDB and the table are there, and throttling
    is a limit of the table or the account that every replica meets at once, so taking this
    one out of rotation would not help; its callers get UNAVAILABLE with RetryInfo instead.
    """
    probes: tuple[tuple[str, dict[str, Any]], ...] = (
        (tables.users, {"Id": {"S": _PROBE_KEY}}),
        (tables.emails, {"Email": {"S": _PROBE_KEY}}),
        (tables.events, {"UserId": {"S": _PROBE_KEY}, "Seq": {"N": "0"}}),
        (tables.sessions, {"UserId": {"S": _PROBE_KEY}, "SessionKey": {"S": _PROBE_KEY}}),
    )
    for table, key in probes:
        try:
            await client.get_item(TableName=table, Key=key)
        except ClientError as error:
            if error_code(error) not in THROTTLING_CODES:
                raise to_storage_error(error, "GetItem") from error
        except BotoCoreError as error:
            raise to_storage_error(error, "GetItem") from error
