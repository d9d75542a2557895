"""Turns settings into the DynamoDB client options and table names the persistence layer takes."""

from __future__ import annotations

import os

from persistence.dynamodb_client import DynamoDbOptions
from persistence.schema import TableNames
from server.settings import Settings

# Any credentials satisfy a local DynamoDB (moto, DynamoDB Local, LocalStack); botocore wants some.
LOCAL_CREDENTIALS = ("local", "local")
_CREDENTIAL_ENV_VARS = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE")


def table_names(settings: Settings) -> TableNames:
    return TableNames(
        users=settings.table_name,
        emails=settings.email_table_name,
        events=settings.events_table_name,
    )


def dynamodb_options(settings: Settings, endpoint_url: str | None) -> DynamoDbOptions:
    """Client options for ``endpoint_url`` (None: AWS itself).

    In development, a local endpoint gets dummy credentials unless the environment names some;
    otherwise botocore's usual credential chain applies (environment, profile, container, role).
    """
    access_key_id = secret_access_key = None
    if (
        not settings.is_production
        and endpoint_url is not None
        and not any(os.environ.get(name) for name in _CREDENTIAL_ENV_VARS)
    ):
        access_key_id, secret_access_key = LOCAL_CREDENTIALS
    return DynamoDbOptions(
        region=settings.aws_region,
        endpoint_url=endpoint_url,
        connect_timeout=settings.dynamodb_connect_timeout,
        read_timeout=settings.dynamodb_read_timeout,
        max_attempts=settings.dynamodb_max_attempts,
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
    )
