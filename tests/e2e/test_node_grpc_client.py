"""A Node.js caller (@grpc/grpc-js, @grpc/proto-loader) built from the shipped protos only, against
the running service: the README's client (tests/node/grpc_client.mjs, the same code) works."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

import pytest

from tests.e2e.harness import Service
from tests.node_kit import NODE_DIR, run_node

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = NODE_DIR / "grpc_client.mjs"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None, reason="node and npm are needed"
)


def readme_node_client() -> str:
    """The ```js block of the README's "Clients in other languages", "### Node.js"."""
    section = (ROOT / "README.md").read_text().split("## Clients in other languages\n", 1)[1]
    node = section.split("### Node.js\n", 1)[1].split("\n### ", 1)[0]
    match = re.search(r"```js\n(.*?)```", node, re.DOTALL)
    assert match, "no js block under ### Node.js"
    return match.group(1)


def test_the_readme_shows_the_node_client_the_test_runs() -> None:
    assert readme_node_client() == SCRIPT.read_text()


async def test_the_node_client_registers_reads_decodes_errors_and_checks_health(
    service: Service,
) -> None:
    output = await asyncio.to_thread(
        run_node, SCRIPT, service.target, str(ROOT / "protos"), timeout=60
    )
    result = json.loads(output)

    registered, fetched = result["registered"], result["fetched"]
    assert registered["first_name"] == "Grace" and registered["last_name"] == "Hopper"
    assert registered["status"] == "USER_STATUS_ACTIVE"
    assert registered["version"] == "1"  # int64 as a string, not a Long
    assert registered["email_verified"] is False  # a default is present, not dropped
    assert fetched == registered
    assert result["invalid"]["code"] == "INVALID_ARGUMENT"
    [bad_request] = result["invalid"]["details"]
    assert bad_request["type"] == "google.rpc.BadRequest"
    violated = {violation["field"] for violation in bad_request["field_violations"]}
    assert {"email", "password", "first_name", "last_name"} <= violated
    assert result["health"] == {"status": "SERVING"}
