"""The two DynamoDB tables of the user service, their keys and indexes: the storage contract.

Table ``Users`` (name configurable) holds one item per user and nothing else, so a Scan page
reads only users:
  Id                 S  partition key, canonical UUID string
  Email              S  display form of the address
  EmailIndex         S  normalized (case-folded) email; hash key of GSI ``EmailIndex``
  FirstName, LastName, PasswordHash, Status   S
  Version            N  optimistic-locking version: 1 once added, +1 per write
  CreatedAt, UpdatedAt  S  ISO-8601 UTC with microseconds: 2024-05-01T12:00:00.000000+00:00
  RefreshTokens      L  of M {TokenHash, SessionId, CreatedAt, ExpiresAt, RevokedAt?}; may be empty
  PasswordReset      M  {TokenHash, RequestedAt, ExpiresAt, UsedAt?}; absent when there is none
  RefreshTokenIndex  S  token hash of the current refresh token (hash key of GSI
                        ``RefreshTokenIndex``); ABSENT when there is none: index keys can't be empty
  SchemaVersion      N  1
Both GSIs project ALL. They are eventually consistent, so no decision is taken on them: email
lookups go through the guard table, token lookups re-read the user consistently.

Table ``UserEmails`` (name configurable) is the email uniqueness guard, one item per normalized
email, written in the same TransactWriteItems as the user with ``attribute_not_exists(Email)``:
  Email              S  partition key, normalized email
  UserId             S  id of the user who owns it

Both tables bill PAY_PER_REQUEST.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EMAIL_INDEX = "EmailIndex"
REFRESH_TOKEN_INDEX = "RefreshTokenIndex"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class TableNames:
    """Names of the users table and the email-guard table (configurable per environment)."""

    users: str = "Users"
    emails: str = "UserEmails"


def _global_index(name: str) -> dict[str, Any]:
    # Each index is keyed on the attribute of the same name.
    return {
        "IndexName": name,
        "KeySchema": [{"AttributeName": name, "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "ALL"},
    }


USERS_GLOBAL_INDEXES: dict[str, dict[str, Any]] = {
    name: _global_index(name) for name in (EMAIL_INDEX, REFRESH_TOKEN_INDEX)
}


def users_table_definition(name: str) -> dict[str, Any]:
    """CreateTable arguments of the users table, with both GSIs."""
    return {
        "TableName": name,
        "KeySchema": [{"AttributeName": "Id", "KeyType": "HASH"}],
        "AttributeDefinitions": [
            {"AttributeName": attribute, "AttributeType": "S"}
            for attribute in ("Id", EMAIL_INDEX, REFRESH_TOKEN_INDEX)
        ],
        "GlobalSecondaryIndexes": list(USERS_GLOBAL_INDEXES.values()),
        "BillingMode": "PAY_PER_REQUEST",
    }


def emails_table_definition(name: str) -> dict[str, Any]:
    """CreateTable arguments of the email-guard table."""
    return {
        "TableName": name,
        "KeySchema": [{"AttributeName": "Email", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "Email", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
