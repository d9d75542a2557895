"""The stack deployed to moto's CloudFormation, and the service serving from what it made.

deploy/cloudformation/user-service.yaml goes to moto_server's CloudFormation API over HTTP; the
stack's outputs become the service's environment (USER_SERVICE_TABLE_NAME and the rest, read by
the production guide's own query), table creation stays off, and the README's core flows run
over a real gRPC channel against the tables the stack created. moto's CloudFormation does not
implement AWS::CloudWatch::Alarm or AWS::ApplicationAutoScaling::* and skips them (the stack
still completes): those are checked by cfn-lint and checkov in `make lint` and by
tests/unit/test_cloudformation_template.py, not here.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import jmespath  # type: ignore[import-untyped]  # botocore's, as the AWS CLI's --query uses
import pytest
import pytest_asyncio
from aiobotocore.session import get_session
from biome.user.v1 import user_service_pb2 as pb

from persistence.schema import TableNames
from persistence.table_initializer import ensure_tables
from server.settings import Settings
from tests.cfn_template import ROOT, TEMPLATE, Resolved, load_template
from tests.e2e.conftest import serving
from tests.e2e.harness import service_settings
from tests.smtp_server import CapturingSmtpServer

# What moto's CloudFormation skips (with a warning) instead of creating.
NOT_IN_MOTO = {
    "AWS::CloudWatch::Alarm",
    "AWS::ApplicationAutoScaling::ScalableTarget",
    "AWS::ApplicationAutoScaling::ScalingPolicy",
}
TABLE_SETTINGS = ("table_name", "email_table_name", "events_table_name", "sessions_table_name")
PASSWORD = "tangerine-sky-42"


async def deploy(moto_endpoint: str, parameters: dict[str, str]) -> dict[str, Any]:
    """Creates a stack of the template with ``parameters``; returns its description."""
    async with get_session().create_client(
        "cloudformation",
        region_name="us-east-1",
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as cloudformation:
        name = f"user-service-{uuid4().hex[:8]}"
        await cloudformation.create_stack(
            StackName=name,
            TemplateBody=TEMPLATE.read_text(encoding="utf-8"),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        )
        waiter = cloudformation.get_waiter("stack_create_complete")
        await waiter.wait(StackName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        (stack,) = (await cloudformation.describe_stacks(StackName=name))["Stacks"]
        listed = await cloudformation.list_stack_resources(StackName=name)
        stack["Resources"] = listed["StackResourceSummaries"]
        return dict(stack)


def settings_environment(stack: dict[str, Any]) -> dict[str, str]:
    """The settings the production guide's command reads from the stack's outputs: its own
    JMESPath query (the one that writes user-service-tables.env), applied to this stack."""
    guide = (ROOT / "docs" / "production.md").read_text(encoding="utf-8")
    (query,) = re.findall(r"--query '([^']+)'[^\n]*\n[^\n]*user-service-tables\.env", guide)
    pairs = jmespath.search(query, {"Stacks": [stack]})
    assert pairs, "the guide's query finds no setting"
    return {name: value for name, value in pairs}


STACK_PARAMETERS = [
    pytest.param({}, id="on-demand"),
    pytest.param(
        {
            "BillingMode": "PROVISIONED",
            "KmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/0d1c6f1e-7a39-4e0b",
            "AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:user-service-alerts",
        },
        id="provisioned-with-a-key-and-a-topic",
    ),
]


@pytest_asyncio.fixture(params=STACK_PARAMETERS)
async def stack(
    moto_endpoint: str, request: pytest.FixtureRequest
) -> AsyncIterator[dict[str, Any]]:
    parameters = {"EnvironmentSuffix": uuid4().hex[:8], **request.param}
    described = await deploy(moto_endpoint, parameters)
    described["TemplateParameters"] = parameters
    yield described


async def test_the_stack_creates_every_resource_moto_implements(stack: dict[str, Any]) -> None:
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    template = load_template()
    stack_resources = {
        logical_id: resource["Type"]
        for logical_id, resource in template["Resources"].items()
        if Resolved(template, stack["TemplateParameters"]).exists(logical_id)
    }
    # moto lists each resource it did not create (skipped, or whose condition is false) blank.
    created = [r["LogicalResourceId"] for r in stack["Resources"] if r["LogicalResourceId"]]
    assert len(stack["Resources"]) == len(template["Resources"])
    assert sorted(created) == sorted(k for k, t in stack_resources.items() if t not in NOT_IN_MOTO)
    assert any(t in NOT_IN_MOTO for t in stack_resources.values()), "the alarms went missing"
    assert {"UsersTable", "EmailsTable", "EventsTable", "SessionsTable", "ServicePolicy"} <= set(
        created
    )
    assert all(r["ResourceStatus"] == "CREATE_COMPLETE" for r in stack["Resources"])


async def test_the_stacks_tables_are_the_tables_init_tables_creates(
    stack: dict[str, Any], dynamodb_client: Any
) -> None:
    environment = settings_environment(stack)
    made_by_stack = TableNames(
        users=environment["USER_SERVICE_TABLE_NAME"],
        emails=environment["USER_SERVICE_EMAIL_TABLE_NAME"],
        events=environment["USER_SERVICE_EVENTS_TABLE_NAME"],
        sessions=environment["USER_SERVICE_SESSIONS_TABLE_NAME"],
    )
    suffix = uuid4().hex[:8]
    made_by_init_tables = TableNames(
        users=f"Users-{suffix}",
        emails=f"UserEmails-{suffix}",
        events=f"UserEvents-{suffix}",
        sessions=f"UserSessions-{suffix}",
    )
    await ensure_tables(dynamodb_client, made_by_init_tables, wait_seconds=10)

    async def shape(name: str) -> dict[str, Any]:
        table = (await dynamodb_client.describe_table(TableName=name))["Table"]
        return {
            "KeySchema": table["KeySchema"],
            "AttributeDefinitions": sorted(
                table["AttributeDefinitions"], key=lambda a: a["AttributeName"]
            ),
            "GlobalSecondaryIndexes": sorted(
                (
                    {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
                    for index in table.get("GlobalSecondaryIndexes", [])
                ),
                key=lambda index: index["IndexName"],
            ),
            "BillingMode": table["BillingModeSummary"]["BillingMode"],
        }

    billing = stack["TemplateParameters"].get("BillingMode", "PAY_PER_REQUEST")
    for field in ("users", "emails", "events", "sessions"):
        stacked = await shape(getattr(made_by_stack, field))
        assert stacked.pop("BillingMode") == billing
        stacked["BillingMode"] = "PAY_PER_REQUEST"  # init-tables' mode; the stack's a parameter
        assert stacked == await shape(getattr(made_by_init_tables, field)), field
    # And init-tables, run against the stack's tables, finds nothing to create.
    assert await ensure_tables(dynamodb_client, made_by_stack, wait_seconds=10) == []


async def test_the_service_serves_the_readme_flows_from_the_stacks_outputs(
    stack: dict[str, Any],
    moto_endpoint: str,
    smtp_server: CapturingSmtpServer,
    dynamodb_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    environment = settings_environment(stack)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    # Everything but the tables and the region as the other end-to-end tests have it; those come
    # from the environment the outputs made, and the service creates no table.
    base = service_settings(moto_endpoint, smtp_server, ensure_tables_created=False)
    fields = {
        name: getattr(base, name)
        for name in base.model_fields_set
        if name not in TABLE_SETTINGS and name != "aws_region"
    }
    settings = Settings(**fields)
    assert settings.table_name == environment["USER_SERVICE_TABLE_NAME"]
    assert settings.sessions_table_name == environment["USER_SERVICE_SESSIONS_TABLE_NAME"]
    assert settings.aws_region == environment["USER_SERVICE_AWS_REGION"] == "us-east-1"
    assert settings.creates_tables is False
    tables_before = (await dynamodb_client.list_tables())["TableNames"]

    async with serving(settings, smtp_server) as service:
        registered = await service.stub.RegisterUser(
            pb.RegisterUserRequest(
                email="grace@example.com",
                password=PASSWORD,
                first_name="Grace",
                last_name="Hopper",
                email_verified=True,
            )
        )
        signed_in = await service.stub.Authenticate(
            pb.AuthenticateRequest(email="grace@example.com", password=PASSWORD)
        )
        assert signed_in.user.id == registered.id
        as_user = (("x-user-token", signed_in.access_token),)
        fetched = await service.stub.GetUser(pb.GetUserRequest(id=registered.id), metadata=as_user)
        assert fetched.email == "grace@example.com"
        refreshed = await service.stub.RefreshSession(
            pb.RefreshSessionRequest(refresh_token=signed_in.refresh_token)
        )
        assert refreshed.refresh_token != signed_in.refresh_token
        as_user = (("x-user-token", refreshed.access_token),)
        assert await service.stub.GetUser(pb.GetUserRequest(id=registered.id), metadata=as_user)

    # It all landed in the stack's tables, and no other table was made.
    assert (await dynamodb_client.list_tables())["TableNames"] == tables_before
    user = await dynamodb_client.get_item(
        TableName=environment["USER_SERVICE_TABLE_NAME"], Key={"Id": {"S": registered.id}}
    )
    assert user["Item"]["Email"] == {"S": "grace@example.com"}
    guard = await dynamodb_client.get_item(
        TableName=environment["USER_SERVICE_EMAIL_TABLE_NAME"],
        Key={"Email": {"S": "grace@example.com"}},
    )
    assert guard["Item"]["UserId"] == {"S": registered.id}
    events = await dynamodb_client.query(
        TableName=environment["USER_SERVICE_EVENTS_TABLE_NAME"],
        KeyConditionExpression="UserId = :id",
        ExpressionAttributeValues={":id": {"S": registered.id}},
    )
    assert events["Count"] >= 2  # registered, signed in
    sessions = await dynamodb_client.query(
        TableName=environment["USER_SERVICE_SESSIONS_TABLE_NAME"],
        KeyConditionExpression="UserId = :id",
        ExpressionAttributeValues={":id": {"S": registered.id}},
    )
    assert sessions["Count"] == 1
