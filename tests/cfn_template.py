"""deploy/cloudformation/user-service.yaml as CloudFormation would see it for given parameters.

``resolve`` evaluates the intrinsic functions the template uses (Ref, Fn::Sub, Fn::GetAtt, Fn::If
and the condition functions) the way CloudFormation does, with the account and region left as
the placeholders of docs/iam-policy*.json (``ACCOUNT_ID``, ``REGION``), so that a resolved
policy compares with the guide's JSON as it is. A function it does not know fails the test
instead of passing through unresolved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "deploy" / "cloudformation" / "user-service.yaml"
PSEUDO = {
    "AWS::Region": "REGION",
    "AWS::AccountId": "ACCOUNT_ID",
    "AWS::Partition": "aws",
    "AWS::StackName": "STACK",
}
_NO_VALUE = object()
_SUB_VARIABLE = re.compile(r"\$\{([^}!]+)\}")


class _TemplateLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms: !Ref X is {"Ref": "X"}, !Sub s {"Fn::Sub": s}."""


def _short_form(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_TemplateLoader.add_multi_constructor("!", _short_form)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=_TemplateLoader)
    assert isinstance(document, dict)
    return document


@dataclass
class Resolved:
    """The template's resources and outputs for one set of parameters."""

    template: dict[str, Any]
    parameters: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        declared = self.template["Parameters"]
        unknown = set(self.parameters) - set(declared)
        assert not unknown, f"the template has no parameter {sorted(unknown)}"
        self.values = {
            name: str(self.parameters.get(name, spec.get("Default", "")))
            for name, spec in declared.items()
        }

    def condition(self, name: str) -> bool:
        return bool(self._condition(self.template["Conditions"][name]))

    def _condition(self, node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            ((function, argument),) = node.items()
            if function == "Fn::Equals":
                left, right = (self.resolve(item) for item in argument)
                return left == right
            if function == "Fn::Not":
                return not self._condition(argument[0])
            if function == "Fn::And":
                return all(self._condition(item) for item in argument)
            if function == "Fn::Or":
                return any(self._condition(item) for item in argument)
            if function == "Condition":
                return self.condition(argument)
        return self.resolve(node)

    def exists(self, logical_id: str) -> bool:
        condition = self.template["Resources"][logical_id].get("Condition")
        return condition is None or self.condition(condition)

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        """The properties of each resource of a type that this stack creates, resolved."""
        return {
            logical_id: self.resolve(resource.get("Properties", {}))
            for logical_id, resource in self.template["Resources"].items()
            if resource["Type"] == resource_type and self.exists(logical_id)
        }

    def ref(self, name: str) -> Any:
        if name in PSEUDO:
            return PSEUDO[name]
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.values:
            return self.values[name]
        resource = self.template["Resources"][name]
        assert self.exists(name), f"Ref to {name}, which this stack does not create"
        if resource["Type"] == "AWS::DynamoDB::Table":
            return self.resolve(resource["Properties"]["TableName"])
        if resource["Type"] == "AWS::IAM::ManagedPolicy":
            return f"arn:aws:iam::ACCOUNT_ID:policy/STACK-{name}"
        return f"<{name}>"  # what else a Ref gives (an id made at deploy time) stands as its name

    def get_att(self, name: str, attribute: str) -> str:
        resource = self.template["Resources"][name]
        if resource["Type"] == "AWS::DynamoDB::Table" and attribute == "Arn":
            return f"arn:aws:dynamodb:REGION:ACCOUNT_ID:table/{self.ref(name)}"
        raise AssertionError(f"GetAtt {name}.{attribute} is not modelled here")

    def _sub(self, text: str, variables: dict[str, Any]) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name:
                return self.get_att(*name.split(".", 1))
            return str(self.ref(name))

        return _SUB_VARIABLE.sub(value, text)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            items = [self.resolve(item) for item in node]
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((function, argument),) = node.items()
            if function == "Ref":
                return self.ref(argument)
            if function == "Fn::GetAtt":
                return self.get_att(*argument)
            if function == "Fn::Sub":
                if isinstance(argument, str):
                    return self._sub(argument, {})
                return self._sub(argument[0], argument[1])
            if function == "Fn::If":
                condition, when_true, when_false = argument
                return self.resolve(when_true if self.condition(condition) else when_false)
            assert not function.startswith("Fn::"), f"{function} is not modelled here"
        resolved = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not _NO_VALUE}

    def outputs(self) -> dict[str, dict[str, Any]]:
        """Each output this stack has: {"Description": ..., "Value": ...}, resolved."""
        return {
            key: self.resolve({k: v for k, v in output.items() if k != "Condition"})
            for key, output in self.template["Outputs"].items()
            if "Condition" not in output or self.condition(output["Condition"])
        }
