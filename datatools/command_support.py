"""What the data commands (export, import, migrate) share: exit codes, failures, the client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from persistence.dynamodb_client import open_dynamodb_client
from server.from_settings import dynamodb_options
from server.settings import Settings

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
PARTIAL_SUFFIX = ".partial"
# Problems listed one by one at the end of a run; beyond that, only counted.
MAX_LISTED_PROBLEMS = 100
STDIO = "-"


class CommandFailed(Exception):
    """A data command cannot go on; the message says why and what to do."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.code = code


@asynccontextmanager
async def open_client(settings: Settings) -> AsyncIterator[Any]:
    """A DynamoDB client for the configured endpoint, closed when the block ends."""
    async with open_dynamodb_client(
        dynamodb_options(settings, settings.dynamodb_endpoint)
    ) as client:
        yield client


def now() -> str:
    """The current UTC time to the second, as the export file writes it."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def listed(items: list[Any]) -> list[Any]:
    """The problems to list one by one; beyond MAX_LISTED_PROBLEMS they are only counted."""
    return items[:MAX_LISTED_PROBLEMS]
