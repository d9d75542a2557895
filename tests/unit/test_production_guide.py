"""The production guide (docs/) stays true to the code: IAM policies, settings, commands, links."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import yaml
from botocore import xform_name

from server.settings import Settings
from tests.cfn_template import TEMPLATE, Resolved, load_template

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
GUIDE = DOCS / "production.md"
SOURCE_DIRS = ("persistence", "server", "datatools")

SERVICE_POLICY = "iam-policy.json"
INIT_TABLES_POLICY = "iam-policy-init-tables.json"
KMS_POLICY = "iam-policy-kms.json"
# DynamoDB calls of these modules are made by `user-service init-tables` (and at start-up only
# with USER_SERVICE_ENSURE_TABLES_CREATED=true): the deploy job's policy grants them, not the
# service's. Every other module's calls are the running service's.
POLICY_OF_MODULE = {"persistence/table_initializer.py": INIT_TABLES_POLICY}
# `user-service export`, `import` and `migrate` run as an operator, with their own policy.
DATA_TOOLS_POLICY = "iam-policy-data-tools.json"
DATA_TOOL_MODULES = (
    "datatools/table_export.py",
    "datatools/table_import.py",
    "datatools/table_migration.py",
)
POLICY_OF_MODULE |= dict.fromkeys(DATA_TOOL_MODULES, DATA_TOOLS_POLICY)

# `client.get_item(`, `self._client.get_item(`: a method call; it counts when the method's name
# is a DynamoDB operation's, whatever the client is called.
_METHOD_CALL = re.compile(r"\.([a-z][a-z0-9_]*)\(")
_PAGINATOR = re.compile(r"""\bget_paginator\(\s*["']([a-z_]+)["']""")
_WAITER = re.compile(r"\bget_waiter\(")
# The item kinds staged for TransactWriteItems: {"Put": {...}}, {"Delete": {...}}, ...
_STAGED_ITEM = re.compile(r"""["'](Put|Update|Delete|ConditionCheck)["']\s*:""")
# IAM authorizes each item of a transaction by the action of its kind, not the transaction.
_ITEM_ACTION = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}
_TRANSACTIONS = {"TransactWriteItems", "TransactGetItems"}
_ENCLOSING_OPERATION = "dynamodb:EnclosingOperation"

_SETTING = re.compile(r"\bUSER_SERVICE_[A-Z0-9_]*[A-Z0-9]\b")
_FENCE = re.compile(r"^```([a-z]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_COMMAND = re.compile(r"""(?:^|[\s"'(\[])user-service (?!-)([a-z][a-z-]*)""", re.MULTILINE)
_EXEC_COMMAND = re.compile(r""""user-service",\s*"([a-z][a-z-]*)\"""")
_SUBCOMMAND = re.compile(r"""add_parser\(\s*["']([a-z-]+)["']""")


# --- what the code calls -------------------------------------------------------------------


@cache
def dynamodb_operations() -> dict[str, str]:
    """snake_case client method -> DynamoDB API operation, from botocore's service model."""
    model = botocore.session.get_session().get_service_model("dynamodb")
    return {xform_name(name): name for name in model.operation_names}


def operations_called(source: str) -> set[str]:
    """The DynamoDB operations a module's source calls on a client (API names)."""
    known = dynamodb_operations()
    called = {known[name] for name in _METHOD_CALL.findall(source) if name in known}
    called |= {known[name] for name in _PAGINATOR.findall(source) if name in known}
    if _WAITER.search(source):
        called.add("DescribeTable")  # the table_exists and table_not_exists waiters
    return called


@dataclass(frozen=True)
class Needs:
    """The IAM actions a group of modules needs: called directly, or as transaction items."""

    direct: frozenset[str]
    in_transactions: frozenset[str]

    @property
    def all(self) -> frozenset[str]:
        return self.direct | self.in_transactions


def needs_by_policy() -> dict[str, Needs]:
    """For each policy file, the IAM actions of the DynamoDB calls of the modules it covers."""
    sources: dict[str, list[str]] = {}
    for directory in SOURCE_DIRS:
        for path in sorted((ROOT / directory).rglob("*.py")):
            module = path.relative_to(ROOT).as_posix()
            if module.startswith("server/embedded_"):
                continue  # the development DynamoDB itself (moto), not a caller of AWS
            policy = POLICY_OF_MODULE.get(module, SERVICE_POLICY)
            sources.setdefault(policy, []).append(path.read_text(encoding="utf-8"))
    needs = {}
    for policy, texts in sources.items():
        operations = set().union(*(operations_called(text) for text in texts))
        direct = {f"dynamodb:{name}" for name in operations - _TRANSACTIONS}
        if "TransactGetItems" in operations:
            direct.add("dynamodb:GetItem")
        staged: set[str] = set()
        if "TransactWriteItems" in operations:
            staged = {_ITEM_ACTION[kind] for text in texts for kind in _STAGED_ITEM.findall(text)}
            assert staged, f"{policy}: TransactWriteItems is called but no staged item was found"
        needs[policy] = Needs(frozenset(direct), frozenset(staged))
    return needs


def test_the_derivation_finds_client_calls_paginators_and_staged_items() -> None:
    source = (
        "r = await self._client.get_item(TableName=t)\n"
        "await client.transact_write_items(TransactItems=items)\n"
        "await dynamodb.batch_get_item(RequestItems=request)\n"
        "pages = client.get_paginator('scan')\n"
        "client.meta.events.register('before-send.dynamodb', hook)\n"
        "await client.close()\n"
    )
    assert operations_called(source) == {"GetItem", "TransactWriteItems", "BatchGetItem", "Scan"}
    assert _STAGED_ITEM.findall('{"Put": {}, "Delete": {}}') == ["Put", "Delete"]


# --- the policies --------------------------------------------------------------------------


def load_policy(name: str) -> dict[str, Any]:
    return json.loads((DOCS / name).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def statements(name: str) -> list[dict[str, Any]]:
    return list(load_policy(name)["Statement"])


def granted(name: str, prefix: str = "") -> set[str]:
    return {
        action
        for statement in statements(name)
        for action in as_list(statement["Action"])
        if action.startswith(prefix)
    }


POLICIES = sorted(path.name for path in DOCS.glob("*.json"))


def test_the_guide_ships_the_three_policies_it_describes() -> None:
    assert {SERVICE_POLICY, INIT_TABLES_POLICY, KMS_POLICY} <= set(POLICIES)


@pytest.mark.parametrize("name", POLICIES)
def test_each_policy_is_an_allow_only_iam_policy_without_wildcards(name: str) -> None:
    policy = load_policy(name)
    assert policy["Version"] == "2012-10-17"
    assert policy["Statement"], "a policy with no statement"
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert not {"NotAction", "NotResource", "Principal"} & set(statement)
        for value in as_list(statement["Action"]) + as_list(statement["Resource"]):
            assert "*" not in value and "?" not in value, f"{name}: wildcard in {value!r}"


def test_the_service_policy_grants_exactly_the_dynamodb_calls_of_the_running_service() -> None:
    needs = needs_by_policy()[SERVICE_POLICY]
    assert granted(SERVICE_POLICY) == set(needs.all)


def test_the_init_tables_policy_grants_exactly_the_calls_that_create_tables() -> None:
    needs = needs_by_policy()[INIT_TABLES_POLICY]
    assert granted(INIT_TABLES_POLICY) == set(needs.all)


def test_the_data_tools_policy_grants_exactly_the_calls_of_export_import_and_migrate() -> None:
    needs = needs_by_policy()[DATA_TOOLS_POLICY]
    assert granted(DATA_TOOLS_POLICY) == set(needs.all)
    assert all((ROOT / module).is_file() for module in DATA_TOOL_MODULES)


def test_the_data_tools_write_email_guards_only_in_transactions_and_never_delete_users() -> None:
    users = "arn:aws:dynamodb:REGION:ACCOUNT_ID:table/Users"
    emails = "arn:aws:dynamodb:REGION:ACCOUNT_ID:table/UserEmails"
    events = "arn:aws:dynamodb:REGION:ACCOUNT_ID:table/UserEvents"
    sessions = "arn:aws:dynamodb:REGION:ACCOUNT_ID:table/UserSessions"
    on_users = {
        action
        for statement in statements(DATA_TOOLS_POLICY)
        if users in as_list(statement["Resource"])
        for action in as_list(statement["Action"])
    }
    assert on_users == {
        "dynamodb:DescribeTable", "dynamodb:Scan", "dynamodb:GetItem", "dynamodb:PutItem"
    }  # fmt: skip
    for statement in statements(DATA_TOOLS_POLICY):
        assert set(as_list(statement["Resource"])) <= {users, emails, events, sessions}
        if events in as_list(statement["Resource"]):
            assert as_list(statement["Action"]) == ["dynamodb:Query"], "events are only read"
        writes = {"dynamodb:PutItem", "dynamodb:DeleteItem"} & set(as_list(statement["Action"]))
        if {emails, sessions} & set(as_list(statement["Resource"])) and writes:
            assert _ENCLOSING_OPERATION in json.dumps(statement["Condition"])


def test_an_action_the_code_calls_outside_a_transaction_is_not_limited_to_transactions() -> None:
    for policy, needs in needs_by_policy().items():
        unconditional = {
            action
            for statement in statements(policy)
            if _ENCLOSING_OPERATION not in json.dumps(statement.get("Condition", {}))
            for action in as_list(statement["Action"])
        }
        assert needs.direct <= unconditional, f"{policy}: {sorted(needs.direct - unconditional)}"


def test_the_dynamodb_policies_name_only_the_four_tables_by_their_default_names() -> None:
    tables = {
        Settings.model_fields["table_name"].default,
        Settings.model_fields["email_table_name"].default,
        Settings.model_fields["events_table_name"].default,
        Settings.model_fields["sessions_table_name"].default,
    }
    arn = re.compile(
        r"arn:aws:dynamodb:REGION:ACCOUNT_ID:table/([A-Za-z0-9_.-]+)(?:/index/[A-Za-z0-9_.-]+)?"
    )
    for name in (SERVICE_POLICY, INIT_TABLES_POLICY):
        assert granted(name) == granted(name, "dynamodb:"), f"{name} grants non-DynamoDB actions"
        named = set()
        for statement in statements(name):
            for resource in as_list(statement["Resource"]):
                match = arn.fullmatch(resource)
                assert match, f"{name}: {resource!r} is not a table or index ARN with placeholders"
                named.add(match.group(1))
        assert named == tables, name


def test_the_service_queries_only_the_events_and_sessions_tables_and_the_stream_index() -> None:
    events = "arn:aws:dynamodb:REGION:ACCOUNT_ID:table/UserEvents"
    sessions = "arn:aws:dynamodb:REGION:ACCOUNT_ID:table/UserSessions"
    queried = {
        resource
        for statement in statements(SERVICE_POLICY)
        if "dynamodb:Query" in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    }
    # ListUserEvents reads the table (consistently); WatchEvents the EventStream index; sign-in,
    # LogoutAll and the like a user's current sessions.
    assert queried == {events, f"{events}/index/EventStream", sessions}
    indexed = [
        resource
        for statement in statements(SERVICE_POLICY)
        for resource in as_list(statement["Resource"])
        if "/index/" in resource
    ]
    assert indexed == [f"{events}/index/EventStream"], "only Query needs an index ARN"


def test_the_kms_policy_only_decrypts_through_dynamodb() -> None:
    (statement,) = statements(KMS_POLICY)
    assert as_list(statement["Action"]) == ["kms:Decrypt"]
    assert as_list(statement["Resource"]) == ["arn:aws:kms:REGION:ACCOUNT_ID:key/KEY_ID"]
    assert statement["Condition"] == {
        "StringEquals": {"kms:ViaService": "dynamodb.REGION.amazonaws.com"}
    }


# --- the stack's policies (deploy/cloudformation/user-service.yaml) ---------------------------

# Each managed policy of the stack and the guide's policy it is: the same statements, on the
# stack's tables instead of the placeholders.
POLICY_OF_STACK = {
    "ServicePolicy": SERVICE_POLICY,
    "InitTablesPolicy": INIT_TABLES_POLICY,
    "DataToolsPolicy": DATA_TOOLS_POLICY,
    "KmsPolicy": KMS_POLICY,
}
KMS_KEY = "arn:aws:kms:REGION:ACCOUNT_ID:key/KEY_ID"


def stack_policies(**parameters: str) -> dict[str, dict[str, Any]]:
    """The policy document of each managed policy of the stack, resolved for ``parameters``."""
    stack = Resolved(load_template(), {"KmsKeyArn": KMS_KEY, **parameters})
    return {
        logical_id: properties["PolicyDocument"]
        for logical_id, properties in stack.resources("AWS::IAM::ManagedPolicy").items()
    }


def test_the_stack_has_a_managed_policy_for_each_policy_of_the_guide() -> None:
    assert set(stack_policies()) == set(POLICY_OF_STACK)
    assert sorted(POLICY_OF_STACK.values()) == POLICIES
    assert "KmsPolicy" not in stack_policies(KmsKeyArn=""), "no key, no KMS policy"


@pytest.mark.parametrize(("logical_id", "name"), sorted(POLICY_OF_STACK.items()))
def test_each_managed_policy_of_the_stack_is_the_guides_policy(logical_id: str, name: str) -> None:
    # With the default table names, the stack's ARNs resolve to the guide's placeholders'.
    assert stack_policies()[logical_id] == load_policy(name), TEMPLATE.name


@pytest.mark.parametrize(
    ("logical_id", "name"),
    sorted(item for item in POLICY_OF_STACK.items() if item[1] != KMS_POLICY),
)
def test_each_managed_policy_of_the_stack_grants_exactly_the_calls_of_its_modules(
    logical_id: str, name: str
) -> None:
    document = stack_policies()[logical_id]
    needs = needs_by_policy()[name]
    actions = {action for s in document["Statement"] for action in as_list(s["Action"])}
    assert actions == set(needs.all)
    unconditional = {
        action
        for statement in document["Statement"]
        if _ENCLOSING_OPERATION not in json.dumps(statement.get("Condition", {}))
        for action in as_list(statement["Action"])
    }
    assert needs.direct <= unconditional, sorted(needs.direct - unconditional)


def test_the_stacks_policies_name_only_the_stacks_tables() -> None:
    arn = re.compile(r"arn:aws:dynamodb:REGION:ACCOUNT_ID:table/([A-Za-z0-9_.-]+)(?:/index/.+)?")
    for logical_id, document in stack_policies(EnvironmentSuffix="prod").items():
        for statement in document["Statement"]:
            for resource in as_list(statement["Resource"]):
                if logical_id == "KmsPolicy":
                    assert resource == KMS_KEY
                    continue
                match = arn.fullmatch(resource)
                assert match and match.group(1).endswith("-prod"), (logical_id, resource)


def parameter_overrides(command: str) -> list[str]:
    """The parameter names of a deploy command's --parameter-overrides (to its last line)."""
    rest = command.split("--parameter-overrides", 1)[1]
    lines = []
    for line in rest.splitlines():
        lines.append(line)
        if not line.rstrip().endswith("\\"):
            break
    return re.findall(r"(?:^|\s)([A-Za-z][A-Za-z0-9]*)=", " ".join(lines))


def test_the_guides_stack_commands_name_the_template_and_its_parameters_and_outputs() -> None:
    template = load_template()
    blocks = [body for language, body in fenced_blocks(GUIDE.read_text(encoding="utf-8"))]
    deploys = [body for body in blocks if "aws cloudformation deploy" in body]
    assert len(deploys) >= 3  # the tables, a customer key, provisioned capacity
    for command in deploys:
        assert f"--template-file {TEMPLATE.relative_to(ROOT).as_posix()} " in command
        names = parameter_overrides(command)
        assert names, command
        assert set(names) <= set(template["Parameters"]), command
    outputs = {name for body in blocks for name in re.findall(r"\$\(output (\w+)\)", body)}
    assert "ServicePolicyArn" in outputs
    assert outputs <= set(template["Outputs"])


# --- the guide's text ----------------------------------------------------------------------


def doc_files() -> list[Path]:
    return sorted(path for path in DOCS.rglob("*") if path.suffix in {".md", ".json"})


def markdown_files() -> list[Path]:
    return [path for path in doc_files() if path.suffix == ".md"]


def fenced_blocks(text: str) -> Iterator[tuple[str, str]]:
    for match in _FENCE.finditer(text):
        yield match.group(1), match.group(2)


def readme_settings() -> set[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in _SETTING.findall(row.split(" | ", 1)[0])}


def test_every_setting_the_docs_name_is_in_the_readme_configuration_table() -> None:
    table = readme_settings()
    assert "USER_SERVICE_HEALTH_PORT" in table  # the table was found and read
    named = {
        (path.name, name)
        for path in doc_files()
        for name in _SETTING.findall(path.read_text(encoding="utf-8"))
    }
    assert named, "the docs name no setting at all"
    assert sorted((doc, name) for doc, name in named if name not in table) == []


def test_every_user_service_command_the_guide_runs_exists() -> None:
    cli = (ROOT / "server" / "cli.py").read_text(encoding="utf-8")
    commands = set(_SUBCOMMAND.findall(cli))
    text = GUIDE.read_text(encoding="utf-8")
    code = [body for _, body in fenced_blocks(text)] + _INLINE_CODE.findall(text)
    used = {name for snippet in code for name in _COMMAND.findall(snippet)}
    used |= {name for snippet in code for name in _EXEC_COMMAND.findall(snippet)}
    assert {"health", "init-tables"} <= used
    assert used <= commands, sorted(used - commands)


@pytest.mark.parametrize("path", markdown_files(), ids=lambda path: path.name)
def test_every_json_and_yaml_block_of_the_docs_parses(path: Path) -> None:
    for language, body in fenced_blocks(path.read_text(encoding="utf-8")):
        if language == "json":
            json.loads(body)
        elif language == "yaml":
            yaml.safe_load(body)


def yaml_documents(path: Path) -> list[Any]:
    text = path.read_text(encoding="utf-8")
    return [yaml.safe_load(body) for language, body in fenced_blocks(text) if language == "yaml"]


def test_the_kubernetes_section_points_at_the_manifests_and_applies_them() -> None:
    # The manifests live in deploy/kubernetes/ (checked by test_kubernetes_manifests.py); the
    # guide names each, applies them with their own command, and copies none of them.
    text = GUIDE.read_text(encoding="utf-8")
    section = text.split("\n## Kubernetes\n", 1)[1]
    manifests = sorted(path.name for path in (ROOT / "deploy" / "kubernetes").glob("*.yaml"))
    assert len(manifests) > 1
    assert [name for name in manifests if f"`{name}`" not in section] == []
    commands = "\n".join(body for language, body in fenced_blocks(section) if language == "bash")
    assert "kubectl apply -k deploy/kubernetes/" in commands
    kinds = {
        document.get("kind") for document in yaml_documents(GUIDE) if isinstance(document, dict)
    }
    assert not kinds & {"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler"}
    assert "livenessProbe:" not in section and "readinessProbe:" not in section


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    for _, body in fenced_blocks(text):
        text = text.replace(body, "")  # a "# comment" in a code block is no heading
    seen: dict[str, int] = {}
    result = set()
    for heading in _HEADING.findall(text):
        anchor = github_anchor(heading)
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        result.add(anchor if count == 0 else f"{anchor}-{count}")
    return result


def test_github_anchors_are_computed_as_github_does() -> None:
    assert github_anchor("Capacity: on demand or provisioned") == (
        "capacity-on-demand-or-provisioned"
    )
    assert github_anchor("Shutdown and `terminationGracePeriodSeconds`") == (
        "shutdown-and-terminationgraceperiodseconds"
    )


@pytest.mark.parametrize("path", markdown_files(), ids=lambda path: path.name)
def test_every_relative_link_in_the_docs_resolves(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for _, body in fenced_blocks(text):
        text = text.replace(body, "")
    links = [link for link in _LINK.findall(text) if not re.match(r"[a-z]+:", link)]
    assert links, f"{path.name} has no relative link to check"
    broken = []
    for link in links:
        target, _, anchor = link.partition("#")
        resolved = (path.parent / target).resolve() if target else path
        if not resolved.exists():
            broken.append(link)
        elif anchor and anchor not in anchors(resolved):
            broken.append(link)
    assert broken == []
