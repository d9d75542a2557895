"""No oracle in sign-in: an unknown address, a wrong password, the wrong password that begins a
lock-out, and any password (the right one too) during a lock-out wait get the same reply after
the same DynamoDB calls, as seen by a proxy between the service and moto, over real gRPC."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from tests.e2e.auth_helpers import (
    LOCK_OUT_WAIT_SECONDS,
    PASSWORD,
    WRONG_PASSWORD,
    lock_out,
    register,
    reply_of,
    sign_in,
    sign_in_error,
    unique_email,
)
from tests.e2e.conftest import ServeThroughProxy
from tests.fault_proxy import FaultProxy, RecordedRequest

Call = tuple[str, tuple[tuple[str, str], ...]]


def store_call(request: RecordedRequest) -> Call:
    """A DynamoDB call as the trace compares it: its operation and, per item, action and table."""
    body: dict[str, Any] = request.json()
    if "TransactItems" in body:
        items = tuple(
            (action, str(target["TableName"]))
            for item in body["TransactItems"]
            for action, target in item.items()
        )
        return request.operation, items
    return request.operation, (("", str(body.get("TableName", ""))),)


async def test_unknown_wrong_and_waiting_sign_ins_make_the_same_calls_and_replies(
    serve_through_proxy: ServeThroughProxy, fault_proxy: FaultProxy
) -> None:
    # No health probes in the record: each call's trace is its own.
    async with serve_through_proxy(health_check_interval_seconds=3600) as service:
        account = await register(service)
        waiting = await register(service, label="waiting")
        await lock_out(service, waiting.email)
        at_the_threshold = await register(service, label="fifth")
        for _ in range(4):
            await sign_in_error(service, at_the_threshold.email, WRONG_PASSWORD)
        cases = {
            "unknown email": (unique_email("nobody"), PASSWORD),
            "wrong password": (account.email, WRONG_PASSWORD),
            # Its lock notice (AccountLocked, a reset token, the mail) is work after the reply.
            "wrong password that begins a wait": (at_the_threshold.email, WRONG_PASSWORD),
            "waiting, wrong password": (waiting.email, WRONG_PASSWORD),
            "waiting, right password": (waiting.email, PASSWORD),
        }
        traces: dict[str, list[Call]] = {}
        replies: dict[str, tuple[grpc.StatusCode, str, bytes]] = {}
        for case, (email, password) in cases.items():
            fault_proxy.clear_record()
            error = await sign_in_error(service, email, password)
            traces[case] = [store_call(request) for request in fault_proxy.requests()]
            replies[case] = reply_of(error)
            await asyncio.sleep(0.5)  # work after the reply (a lock notice) is not the next trace

        tables = service.tables
        expected = [
            ("GetItem", (("", tables.emails),)),  # the guard of the address
            ("GetItem", (("", tables.users),)),  # the user (for no account: the nil id)
            ("PutItem", (("", tables.users),)),  # the count, eventless (or a write that fails)
        ]
        # The lock notice may start before the reply is read: its calls come after these three.
        notice = traces["wrong password that begins a wait"][3:]
        notice_calls: list[Call] = [
            ("GetItem", (("", tables.users),)),
            (
                "TransactWriteItems",
                (("Put", tables.users), ("Put", tables.events), ("Put", tables.events)),
            ),
        ]
        assert notice == notice_calls[: len(notice)], notice
        traces["wrong password that begins a wait"][3:] = []
        assert traces == dict.fromkeys(cases, expected)
        assert len(set(replies.values())) == 1, replies  # code, message, status details
        code, message, _ = replies["waiting, right password"]
        assert (code, message) == (
            grpc.StatusCode.UNAUTHENTICATED,
            "the email or password is incorrect",
        )

        # The right password during the wait was refused and counted, yet works once it ends.
        service.clock.advance(seconds=LOCK_OUT_WAIT_SECONDS)
        assert (await sign_in(service, waiting.email, PASSWORD)).refresh_token
