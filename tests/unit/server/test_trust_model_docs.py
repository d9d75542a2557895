"""The README and the production guide state the trust model as server.rpc_access enforces it:
both hold, exactly, the table generated here from the rules (print it with
``python -m tests.unit.server.test_trust_model_docs``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.roles import ADMIN, ROLES
from server.rpc_access import RULE_BY_RPC, Rule

ROOT = Path(__file__).resolve().parents[3]
DOCUMENTS = (ROOT / "README.md", ROOT / "docs" / "production.md")


def _roles(rule: Rule) -> str:
    if rule.public or rule.any_caller:
        return "—"
    return ", ".join(f"`{role}`" for role in [*sorted(rule.roles - {ADMIN}), ADMIN])


def _own_token(rule: Rule) -> str:
    if rule.any_caller:
        return "—"
    if rule.own_user_field is None:
        return "no"
    own = f"on the user its `{rule.own_user_field}` names"
    return f"{own}, signed in recently" if rule.recent_sign_in else own


def access_table() -> str:
    """Who may call each RPC, one row per RPC in the order server.rpc_access lists them."""
    lines = [
        "| RPC | any caller | own user token | roles (any user) |",
        "| --- | --- | --- | --- |",
    ]
    for rpc, rule in RULE_BY_RPC.items():
        any_caller = "yes" if rule.any_caller else "no"
        lines.append(f"| `{rpc}` | {any_caller} | {_own_token(rule)} | {_roles(rule)} |")
    return "\n".join(lines) + "\n"


def field_rules_table() -> str:
    """The request fields that only some roles may set, whatever the RPC's own rule."""
    lines = ["| RPC | field | only with the role |", "| --- | --- | --- |"]
    for rpc, rule in RULE_BY_RPC.items():
        for field_rule in rule.field_rules:
            roles = ", ".join(f"`{role}`" for role in [*sorted(field_rule.roles - {ADMIN}), ADMIN])
            lines.append(f"| `{rpc}` | `{field_rule.field}` | {roles} |")
    return "\n".join(lines) + "\n"


def roles_table() -> str:
    """Each role and what it allows."""
    lines = ["| Role | allows |", "| --- | --- |"]
    lines += [f"| `{role}` | {allows} |" for role, allows in ROLES.items()]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_the_document_holds_the_access_table_generated_from_the_rules(document: Path) -> None:
    text = document.read_text()
    assert "## Trust model" in text or "### Trust model" in text
    assert access_table() in text, f"{document.name} lacks, exactly:\n{access_table()}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_the_document_holds_the_fields_only_some_roles_may_set(document: Path) -> None:
    assert field_rules_table() in document.read_text(), (
        f"{document.name} lacks:\n{field_rules_table()}"
    )


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_the_document_holds_the_roles_and_what_each_allows(document: Path) -> None:
    assert roles_table() in document.read_text(), f"{document.name} lacks:\n{roles_table()}"


if __name__ == "__main__":
    print(access_table())
    print(field_rules_table())
    print(roles_table())
