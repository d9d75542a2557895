"""The environment each child service gets: every setting decided here, none by the shell."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from tools.bench.processes import HOST, ROOT
from tools.load.target import loopback_url

# Signs ListUsers page tokens; fixed, so the benchmark can start a page anywhere in the table.
PAGE_TOKEN_SECRET = "bench-page-token-secret-0123456789"
# What the benchmark changes from the service's defaults (--service-setting may change them
# again). A health probe costs two GetItems; every 30 s instead of 2 s, it adds nothing
# measurable to a row's CPU per RPC (the floor has no health probe at all). Observability is on as
# in production: a JSON access line per RPC (into the child's log file) and the metrics endpoint,
# so their cost is in the service's CPU per RPC; the floor does neither.
BENCH_DEFAULTS = {
    "USER_SERVICE_LOG_LEVEL": "INFO",
    "USER_SERVICE_LOG_FORMAT": "json",
    "USER_SERVICE_METRICS_PORT": "0",
    "USER_SERVICE_HEALTH_CHECK_INTERVAL_SECONDS": "30",
}
# Settings the benchmark itself decides; --service-setting may not change them.
BENCH_CONTROLLED = frozenset(
    {
        "USER_SERVICE_PROFILE",
        "USER_SERVICE_HOST",
        "USER_SERVICE_PORT",
        "USER_SERVICE_DYNAMODB_ENDPOINT",
        "USER_SERVICE_EMBEDDED_DYNAMODB",
        "USER_SERVICE_ENSURE_TABLES_CREATED",
        "USER_SERVICE_TABLE_NAME",
        "USER_SERVICE_EMAIL_TABLE_NAME",
        "USER_SERVICE_EVENTS_TABLE_NAME",
        "USER_SERVICE_PAGE_TOKEN_SECRET",
        "USER_SERVICE_AWS_REGION",
        "USER_SERVICE_TLS_CERT_FILE",
        "USER_SERVICE_TLS_KEY_FILE",
        "USER_SERVICE_TLS_CLIENT_CA_FILE",
        "USER_SERVICE_API_KEYS",
    }
)


@dataclass(frozen=True)
class Tables:
    """The users, email-guard, events and sessions tables one service uses."""

    users: str
    emails: str
    events: str
    sessions: str


def parse_service_setting(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` (NAME with or without USER_SERVICE_) as (USER_SERVICE_NAME, VALUE)."""
    name, equals, value = text.partition("=")
    name = name.strip().upper()
    if not equals or not name:
        raise ValueError(f"expected NAME=VALUE, e.g. PASSWORD_HASH_WORKERS=1, not {text!r}")
    if not name.startswith("USER_SERVICE_"):
        name = "USER_SERVICE_" + name
    if name in BENCH_CONTROLLED:
        raise ValueError(f"{name} is set by the benchmark itself")
    return name, value


def default_environment(port: int, settings: Sequence[tuple[str, str]] = ()) -> dict[str, str]:
    """What ``make run`` would give the service, on ``port``: this environment without
    USER_SERVICE_* and AWS_* (``settings``, the --service-setting options, applied last)."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("USER_SERVICE_", "AWS_"))
    }
    python_path = [str(ROOT), str(ROOT / "protos"), environment.get("PYTHONPATH", "")]
    environment.update(
        PYTHONPATH=os.pathsep.join(filter(None, python_path)),
        USER_SERVICE_PROFILE="development",
        USER_SERVICE_HOST=HOST,
        USER_SERVICE_PORT=str(port),
    )
    environment.update(settings)
    return environment


def on_moto(
    port: int, endpoint: str, tables: Tables, settings: Sequence[tuple[str, str]] = ()
) -> dict[str, str]:
    """A service's (or the floor's) environment: that moto, those tables, created at start."""
    environment = default_environment(port)
    environment.update(BENCH_DEFAULTS)
    environment.update(
        USER_SERVICE_DYNAMODB_ENDPOINT=loopback_url(endpoint),
        USER_SERVICE_EMBEDDED_DYNAMODB="false",
        USER_SERVICE_ENSURE_TABLES_CREATED="true",
        USER_SERVICE_TABLE_NAME=tables.users,
        USER_SERVICE_EMAIL_TABLE_NAME=tables.emails,
        USER_SERVICE_EVENTS_TABLE_NAME=tables.events,
        USER_SERVICE_SESSIONS_TABLE_NAME=tables.sessions,
        USER_SERVICE_PAGE_TOKEN_SECRET=PAGE_TOKEN_SECRET,
        USER_SERVICE_AWS_REGION="us-east-1",
    )
    environment.update(settings)
    return environment
