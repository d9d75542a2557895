"""DynamoDB implementation of the UnitOfWork port: staged writes land in one transaction."""

from __future__ import annotations

from typing import Any

from domain.ports import UnitOfWork
from persistence.schema import TableNames
from persistence.transaction import StagedWrite, apply_writes
from persistence.user_repository import DynamoUserRepository


class DynamoUnitOfWork(UnitOfWork):
    """One atomic change to the users and email-guard tables; cheap, so make one per request."""

    def __init__(self, client: Any, tables: TableNames) -> None:
        self._client = client
        self._staged: list[StagedWrite] = []
        self.users = DynamoUserRepository(client, tables, self._staged)

    async def commit(self) -> None:
        # On failure the writes stay staged (leaving the context drops them); no version moves.
        await apply_writes(self._client, self._staged)
        self._staged.clear()

    async def rollback(self) -> None:
        self._staged.clear()
