"""The stack's tables are the ones `user-service init-tables` creates, and its outputs the settings.

init-tables' real requests are recorded (ensure_tables against a recording client) and compared
with the template's tables resolved for the same names, both ways: a key, an attribute type, an
index, a projection or a TTL attribute that one has and the other has not fails here. Capacity,
encryption, recovery and deletion protection are the template's own business (checked below, and
by cfn-lint and checkov in `make lint`).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from botocore.exceptions import ClientError

from persistence.schema import TableNames
from persistence.table_initializer import ensure_tables
from server.settings import Settings
from tests.cfn_template import Resolved, load_template

TABLE = "AWS::DynamoDB::Table"
# What a CreateTable request says about a table's shape (capacity aside); the template must say
# the same, and nothing more of this kind (a stream, a local index).
SHAPE_FIELDS = (
    "TableName",
    "KeySchema",
    "AttributeDefinitions",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
    "StreamSpecification",
    "BillingMode",
)
PARAMETER_OF_TABLE = {
    "users": "UsersTableName",
    "emails": "EmailTableName",
    "events": "EventsTableName",
    "sessions": "SessionsTableName",
}


class RecordingDynamoDb:
    """Just enough of DynamoDB for ensure_tables on an empty account; records what it is sent."""

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []
        self.ttl: list[dict[str, Any]] = []
        self.updated: list[dict[str, Any]] = []
        self._tables: dict[str, dict[str, Any]] = {}

    async def describe_table(self, TableName: str) -> dict[str, Any]:
        if TableName not in self._tables:
            error = {"Error": {"Code": "ResourceNotFoundException", "Message": "no table"}}
            raise ClientError(error, "DescribeTable")  # type: ignore[arg-type]
        return {"Table": self._tables[TableName]}

    async def create_table(self, **request: Any) -> dict[str, Any]:
        self.created.append(request)
        indexes = [
            {**index, "IndexStatus": "ACTIVE"}
            for index in request.get("GlobalSecondaryIndexes", [])
        ]
        self._tables[request["TableName"]] = {
            **request,
            "TableStatus": "ACTIVE",
            "GlobalSecondaryIndexes": indexes,
        }
        return {}

    async def update_table(self, **request: Any) -> dict[str, Any]:
        self.updated.append(request)
        return {}

    async def describe_time_to_live(self, TableName: str) -> dict[str, Any]:
        return {"TimeToLiveDescription": {"TimeToLiveStatus": "DISABLED"}}

    async def update_time_to_live(self, **request: Any) -> dict[str, Any]:
        self.ttl.append(request)
        return {}


async def init_tables_requests(names: TableNames) -> RecordingDynamoDb:
    client = RecordingDynamoDb()
    assert await ensure_tables(client, names, wait_seconds=1)
    assert client.updated == [], "every index is created with its table"
    return client


def table_shape(request: dict[str, Any]) -> dict[str, Any]:
    """A table's shape in a form where the order of attributes and of indexes does not count."""
    shape = {key: request[key] for key in SHAPE_FIELDS if key in request}
    shape.setdefault("BillingMode", "PROVISIONED")  # CloudFormation's default, and DynamoDB's
    shape["AttributeDefinitions"] = sorted(
        shape["AttributeDefinitions"], key=lambda item: item["AttributeName"]
    )
    if "GlobalSecondaryIndexes" in shape:
        shape["GlobalSecondaryIndexes"] = sorted(
            (
                {key: value for key, value in index.items() if key != "ProvisionedThroughput"}
                for index in shape["GlobalSecondaryIndexes"]
            ),
            key=lambda index: index["IndexName"],
        )
    return shape


def stack_names(stack: Resolved) -> TableNames:
    """The table names a stack with these parameters creates, in the service's terms."""
    suffix = stack.values["EnvironmentSuffix"]
    return TableNames(
        **{
            table: stack.values[parameter] + (f"-{suffix}" if suffix else "")
            for table, parameter in PARAMETER_OF_TABLE.items()
        }
    )


PARAMETER_SETS = [
    pytest.param({}, id="defaults"),
    pytest.param({"EnvironmentSuffix": "prod"}, id="suffixed"),
    pytest.param(
        {"UsersTableName": "Accounts", "SessionsTableName": "Devices", "EnvironmentSuffix": "qa"},
        id="renamed",
    ),
    pytest.param(
        {"BillingMode": "PROVISIONED", "KmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/k"},
        id="provisioned-with-a-customer-key",
    ),
]


@pytest.mark.parametrize("parameters", PARAMETER_SETS)
async def test_the_stack_creates_the_tables_init_tables_creates(parameters: dict[str, str]) -> None:
    stack = Resolved(load_template(), parameters)
    names = stack_names(stack)
    recorded = await init_tables_requests(names)
    expected = {request["TableName"]: table_shape(request) for request in recorded.created}
    assert set(expected) == {names.users, names.emails, names.events, names.sessions}
    templated = {
        properties["TableName"]: table_shape(properties)
        for properties in stack.resources(TABLE).values()
    }
    if stack.values["BillingMode"] == "PROVISIONED":
        # The capacity mode is the template's parameter; everything else is init-tables' shape.
        for shape in templated.values():
            shape["BillingMode"] = "PAY_PER_REQUEST"
    assert templated == expected


@pytest.mark.parametrize("parameters", PARAMETER_SETS)
async def test_the_stack_expires_what_init_tables_expires(parameters: dict[str, str]) -> None:
    stack = Resolved(load_template(), parameters)
    recorded = await init_tables_requests(stack_names(stack))
    expected = {
        request["TableName"]: request["TimeToLiveSpecification"] for request in recorded.ttl
    }
    assert len(expected) == 2  # events and sessions
    templated = {
        properties["TableName"]: properties["TimeToLiveSpecification"]
        for properties in stack.resources(TABLE).values()
        if "TimeToLiveSpecification" in properties
    }
    assert templated == expected


def test_the_comparison_sees_a_changed_projection_key_type_or_ttl() -> None:
    template = load_template()
    users = template["Resources"]["UsersTable"]["Properties"]
    events = template["Resources"]["EventsTable"]["Properties"]
    before = table_shape(Resolved(template).resources(TABLE)["UsersTable"])
    users["GlobalSecondaryIndexes"][0]["Projection"] = {"ProjectionType": "ALL"}
    assert table_shape(Resolved(template).resources(TABLE)["UsersTable"]) != before
    events["AttributeDefinitions"][1]["AttributeType"] = "S"  # Seq
    events_shape = table_shape(Resolved(template).resources(TABLE)["EventsTable"])
    assert {"AttributeName": "Seq", "AttributeType": "S"} in events_shape["AttributeDefinitions"]


def test_every_table_keeps_backups_refuses_deletion_and_encrypts_with_the_chosen_key() -> None:
    template = load_template()
    for parameters, sse in (
        ({}, {"SSEEnabled": False}),
        (
            {"KmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/k"},
            {
                "SSEEnabled": True,
                "SSEType": "KMS",
                "KMSMasterKeyId": "arn:aws:kms:eu-west-1:123456789012:key/k",
            },
        ),
    ):
        tables = Resolved(template, parameters).resources(TABLE)
        assert len(tables) == 4
        for logical_id, properties in tables.items():
            assert properties["PointInTimeRecoverySpecification"] == {
                "PointInTimeRecoveryEnabled": True
            }, logical_id
            assert properties["DeletionProtectionEnabled"] is True, logical_id
            assert properties["SSESpecification"] == sse, logical_id
            resource = template["Resources"][logical_id]
            assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"


def test_provisioned_capacity_gives_every_table_and_index_capacity_and_auto_scaling() -> None:
    template = load_template()
    on_demand = Resolved(template)
    assert on_demand.resources("AWS::ApplicationAutoScaling::ScalableTarget") == {}
    assert all("ProvisionedThroughput" not in t for t in on_demand.resources(TABLE).values())
    stack = Resolved(template, {"BillingMode": "PROVISIONED"})
    scaled = set()
    for properties in stack.resources(TABLE).values():
        assert properties["BillingMode"] == "PROVISIONED"
        assert properties["ProvisionedThroughput"]
        resource = f"table/{properties['TableName']}"
        scaled |= {(resource, "table", "Read"), (resource, "table", "Write")}
        for index in properties.get("GlobalSecondaryIndexes", []):
            assert index["ProvisionedThroughput"]
            path = f"{resource}/index/{index['IndexName']}"
            scaled |= {(path, "index", "Read"), (path, "index", "Write")}
    targets = stack.resources("AWS::ApplicationAutoScaling::ScalableTarget")
    dimensions = set()
    for target in targets.values():
        namespace, kind, units = target["ScalableDimension"].split(":")
        assert namespace == target["ServiceNamespace"] == "dynamodb"
        dimensions.add((target["ResourceId"], kind, units.removesuffix("CapacityUnits")))
    assert dimensions == scaled
    policies = stack.resources("AWS::ApplicationAutoScaling::ScalingPolicy")
    assert sorted(p["ScalingTargetId"] for p in policies.values()) == [
        f"<{t}>" for t in sorted(targets)
    ]


def test_the_outputs_are_the_service_settings_that_name_its_tables_and_region() -> None:
    stack = Resolved(load_template(), {"EnvironmentSuffix": "prod"})
    settings = {
        output["Description"]: output["Value"]
        for output in stack.outputs().values()
        if output["Description"].startswith("USER_SERVICE_")
    }
    names = stack_names(stack)
    assert settings == {
        "USER_SERVICE_AWS_REGION": "REGION",
        "USER_SERVICE_TABLE_NAME": names.users,
        "USER_SERVICE_EMAIL_TABLE_NAME": names.emails,
        "USER_SERVICE_EVENTS_TABLE_NAME": names.events,
        "USER_SERVICE_SESSIONS_TABLE_NAME": names.sessions,
    }
    # Each is a setting the service reads, and each output's key spells its setting's name.
    fields = {
        field: info
        for field, info in Settings.model_fields.items()
        if f"USER_SERVICE_{field.upper()}" in settings
    }
    assert len(fields) == len(settings)
    for key, output in stack.outputs().items():
        if output["Description"].startswith("USER_SERVICE_"):
            words = re.findall(r"[A-Z][a-z0-9]*", key)
            assert "_".join(words).upper() == output["Description"], key


def alarm_metrics(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """The metrics an alarm watches: its one metric, or those its math expression adds up."""
    if "MetricName" in alarm:
        return [{key: alarm[key] for key in ("Namespace", "MetricName", "Dimensions")}]
    (expression,) = [m for m in alarm["Metrics"] if "Expression" in m]
    stats = [m for m in alarm["Metrics"] if "MetricStat" in m]
    # DynamoDB sends no datapoint for a minute without throttles or errors; SUM(METRICS()) has
    # none either then, so the alarm may stay in ALARM or never evaluate. Filled with 0, the
    # expression is 0 in quiet minutes and the alarm clears.
    filled = "SUM(FILL(METRICS(), 0))" if len(stats) > 1 else f"FILL({stats[0]['Id']}, 0)"
    assert expression["Expression"] == filled and expression["ReturnData"] is True
    return [m["MetricStat"]["Metric"] for m in stats]


def test_the_alarms_watch_each_tables_throttles_and_system_errors_and_the_stream_index() -> None:
    stack = Resolved(load_template(), {"EnvironmentSuffix": "prod"})
    alarms = list(stack.resources("AWS::CloudWatch::Alarm").values())
    tables = [properties["TableName"] for properties in stack.resources(TABLE).values()]
    watched: dict[tuple[str, str, str | None], str] = {}
    for alarm in alarms:
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold" and alarm["Threshold"] == 0
        for metric in alarm_metrics(alarm):
            assert metric["Namespace"] == "AWS/DynamoDB"
            dimensions = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
            table = dimensions.pop("TableName")
            other = "".join(f"{name}={value}" for name, value in dimensions.items()) or None
            watched[(metric["MetricName"], table, other)] = alarm["AlarmName"]
    for table in tables:
        assert ("ReadThrottleEvents", table, None) in watched
        assert ("WriteThrottleEvents", table, None) in watched
    # A table's throttle metrics leave out its global secondary indexes' (CloudWatch counts those
    # under TableName + GlobalSecondaryIndexName only): every index of the template, a new one
    # included, needs its own read and write metrics in an alarm.
    indexes = [
        (properties["TableName"], index["IndexName"])
        for properties in stack.resources(TABLE).values()
        for index in properties.get("GlobalSecondaryIndexes", [])
    ]
    assert len(indexes) == 3
    for table, index in indexes:
        for metric_name in ("ReadThrottleEvents", "WriteThrottleEvents"):
            key = (metric_name, table, f"GlobalSecondaryIndexName={index}")
            assert key in watched, f"no alarm watches {metric_name} of {table}'s {index}"
    names = stack_names(stack)
    stream_writes = ("WriteThrottleEvents", names.events, "GlobalSecondaryIndexName=EventStream")
    assert watched[stream_writes] == f"{names.events}-EventStream-write-throttled"
    # SystemErrors of exactly the operations the service calls on each table: those its policy
    # grants outright, and TransactWriteItems where it grants writes inside transactions only.
    policy = stack.resources("AWS::IAM::ManagedPolicy")["ServicePolicy"]["PolicyDocument"]
    called: dict[str, set[str]] = {}
    for statement in policy["Statement"]:
        resources = statement["Resource"]
        for resource in [resources] if isinstance(resources, str) else resources:
            table = resource.split(":table/", 1)[1].split("/index/", 1)[0]
            actions = statement["Action"]
            if "Condition" in statement:
                called.setdefault(table, set()).add("TransactWriteItems")
            else:
                for action in [actions] if isinstance(actions, str) else actions:
                    called.setdefault(table, set()).add(action.removeprefix("dynamodb:"))
    errors: dict[str, set[str]] = {}
    for metric_name, table, dimension in watched:
        if metric_name == "SystemErrors":
            assert dimension is not None and dimension.startswith("Operation=")
            errors.setdefault(table, set()).add(dimension.removeprefix("Operation="))
    assert errors == called


def test_the_alarms_notify_the_topic_when_one_is_given() -> None:
    topic = "arn:aws:sns:eu-west-1:123456789012:user-service-alerts"
    for alarm in (
        Resolved(load_template(), {"AlarmTopicArn": topic})
        .resources("AWS::CloudWatch::Alarm")
        .values()
    ):
        assert alarm["AlarmActions"] == alarm["OKActions"] == [topic]
    for alarm in Resolved(load_template()).resources("AWS::CloudWatch::Alarm").values():
        assert "AlarmActions" not in alarm and "OKActions" not in alarm
