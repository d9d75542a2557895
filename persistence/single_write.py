"""A commit that writes one item and records no event, sent as one conditional PutItem.

A refresh, a failed sign-in that does not lock, a no-op: these change the user item alone. In a
TransactWriteItems such a write costs two write units per KB; alone it costs one
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html#transaction-capacity-handling),
with the same condition (the Revision read, so optimistic locking holds) and the same outcome:
all or nothing, on one item.

What a transaction's ClientRequestToken gave, idempotence when botocore re-sends a request whose
answer was lost, comes here from the item itself: the Put carries a random ``WriteId``, so if
the condition fails and the stored item (returned with ALL_OLD) is exactly the one this write
carried, it is this write that landed, on an earlier attempt, and the commit succeeded. Anything
else stored is another writer's change: a VersionConflict, as in a transaction. (Without the
WriteId two writers making the same change at the same instant, two failed sign-ins say, would
store equal items, and the second would take the first's for its own: one failure counted.)

A single write that meets a transaction in flight on its item fails with
TransactionConflictException, which botocore does not retry: a ConcurrentWrite, like a
transaction's conflict cancellation, which the use case answers by reading the user again and
re-applying its change (domain/use_cases/retry.py, the one layer that retries conflicts).
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from botocore.exceptions import BotoCoreError, ClientError

from persistence.errors import WriteCheck, condition_failed, error_code, to_storage_error

# The attribute that tells this write's item from any other (ignored on read).
WRITE_ID = "WriteId"


async def put_alone(client: Any, put: dict[str, Any], check: WriteCheck) -> None:
    """Apply ``put`` (a transaction's Put: TableName, Item, its condition) as one PutItem, or
    raise the domain error of its ``check``, as the same Put in a transaction would."""
    item = {**put["Item"], WRITE_ID: {"S": str(uuid.uuid4())}}
    request = {**put, "Item": item, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
    try:
        await client.put_item(**request)
    except (ClientError, BotoCoreError) as error:
        if error_code(error) != "ConditionalCheckFailedException":
            raise to_storage_error(error, "PutItem") from error  # a conflict: ConcurrentWrite
        # cast: botocore-stubs type the error response without the Item DynamoDB sends
        stored = (
            cast(dict[str, Any], error.response).get("Item")
            if isinstance(error, ClientError)
            else None
        )
        if stored == item:
            return  # an earlier attempt of this very write landed; its answer was lost
        raise condition_failed(check, stored) from error
