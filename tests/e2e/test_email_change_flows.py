"""Email change over a real gRPC channel, the mail read from a real SMTP server on loopback: asked,
confirmed from the new address or cancelled from the old one, set by an administrator; and every
bad request answered with its documented status, changing nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc
import pytest
import pytest_asyncio
from biome.user.v1 import user_service_pb2 as pb
from biome.user.v1 import user_service_pb2_grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.e2e.auth_helpers import (
    PASSWORD,
    TIMEOUT,
    Account,
    register,
    sign_in,
    sign_in_error,
    unique_email,
)
from tests.e2e.harness import Service, field_violations, rpc_error
from tests.e2e.secured_service import RPC_TIMEOUT, CallerKeys, SecuredService, bearer
from tests.smtp_server import reset_token_from

Code = grpc.StatusCode
Stub: TypeAlias = "user_service_pb2_grpc.UserServiceAsyncStub"


async def request_change(
    service: Service, account: Account, new_email: str, version: int = 1
) -> pb.RequestEmailChangeResponse:
    return await service.stub.RequestEmailChange(
        pb.RequestEmailChangeRequest(id=account.id, new_email=new_email, expected_version=version),
        timeout=TIMEOUT,
    )


async def mailed_tokens(service: Service, account: Account, new_email: str) -> tuple[str, str]:
    """(the confirm token mailed to the new address, the cancel token mailed to the old one)."""
    to_new = await service.smtp.wait_for_message(to=new_email)
    to_old = await service.smtp.wait_for_message(to=account.email)
    return reset_token_from(to_new), reset_token_from(to_old)


async def confirm(service: Service, token: str) -> pb.User:
    return await service.stub.ConfirmEmailChange(
        pb.ConfirmEmailChangeRequest(token=token), timeout=TIMEOUT
    )


async def cancel(service: Service, token: str) -> pb.CancelEmailChangeResponse:
    return await service.stub.CancelEmailChange(
        pb.CancelEmailChangeRequest(token=token), timeout=TIMEOUT
    )


async def event_kinds(service: Service, user_id: str) -> list[str]:
    reply = await service.stub.ListUserEvents(
        pb.ListUserEventsRequest(user_id=user_id, page_size=100), timeout=TIMEOUT
    )
    return [str(event.WhichOneof("kind")) for event in reply.events]


async def stored_user(service: Service, user_id: str) -> dict[str, Any]:
    reply = await service.dynamodb.get_item(
        TableName=service.tables.users, Key={"Id": {"S": user_id}}, ConsistentRead=True
    )
    item: dict[str, Any] = reply["Item"]
    return item


async def mailed_reset(service: Service, email: str) -> str:
    await service.stub.RequestPasswordReset(
        pb.RequestPasswordResetRequest(email=email), timeout=TIMEOUT
    )
    return reset_token_from(await service.smtp.wait_for_message(to=email))


def body_of(message: Any) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text: str = body.get_content()
    return text


async def test_a_change_is_mailed_to_both_addresses_and_confirmed_from_the_new_one(
    service: Service,
) -> None:
    account = await register(service, label="mover")
    new_email = unique_email("moved")

    reply = await request_change(service, account, new_email)

    to_new = await service.smtp.wait_for_message(to=new_email)
    to_old = await service.smtp.wait_for_message(to=account.email)
    assert to_new["Subject"] == "Confirm your new email address"
    assert "account to this address" in " ".join(body_of(to_new).split())
    assert to_old["Subject"] == "Your account's email address is about to change"
    notice = " ".join(body_of(to_old).split())
    # The notice names neither the new address nor its domain: text the requester chose.
    assert "to another email address" in notice and new_email.split("@")[0] not in notice
    confirm_token, cancel_token = reset_token_from(to_new), reset_token_from(to_old)
    assert confirm_token != cancel_token
    assert reply.expires_at.ToDatetime().timestamp() > service.clock().timestamp() + 23 * 3600
    # Until confirmed, the address in use is the account's: it signs in and resets.
    unchanged = await service.stub.GetUser(pb.GetUserRequest(id=account.id), timeout=TIMEOUT)
    assert (unchanged.email, unchanged.version) == (account.email, 1)
    await sign_in(service, account.email, PASSWORD)
    assert (await sign_in_error(service, new_email, PASSWORD)).code() == Code.UNAUTHENTICATED
    service.clock.advance(seconds=61)  # past the security mail cool-down the request started
    pending_reset = await mailed_reset(service, account.email)

    moved = await confirm(service, confirm_token)

    assert (moved.email, moved.email_verified, moved.version) == (new_email, True, 2)
    assert moved.HasField("email_verified_at")
    assert await service.stub.GetUser(pb.GetUserRequest(id=account.id), timeout=TIMEOUT) == moved
    assert (await sign_in(service, new_email.upper(), PASSWORD)).user.id == account.id
    refused = await sign_in_error(service, account.email, PASSWORD)
    assert refused.code() == Code.UNAUTHENTICATED
    # The reset link mailed to the old address stopped working with the move.
    voided = await rpc_error(
        service.stub.ResetPassword(
            pb.ResetPasswordRequest(reset_token=pending_reset, new_password=PASSWORD),
            timeout=TIMEOUT,
        )
    )
    assert voided.code() == Code.UNAUTHENTICATED
    gone = await rpc_error(
        service.stub.GetUserByEmail(pb.GetUserByEmailRequest(email=account.email), timeout=TIMEOUT)
    )
    assert gone.code() == Code.NOT_FOUND
    found = await service.stub.GetUserByEmail(
        pb.GetUserByEmailRequest(email=new_email), timeout=TIMEOUT
    )
    assert found.id == account.id
    kinds = await event_kinds(service, account.id)
    assert "email_change_requested" in kinds and "email_changed" in kinds
    assert kinds.index("email_change_requested") < kinds.index("email_changed")
    assert "email_verified" in kinds
    # The links work once.
    for token, rpc in ((confirm_token, confirm), (cancel_token, cancel)):
        used = await rpc_error(rpc(service, token))
        assert used.code() == Code.UNAUTHENTICATED and field_violations(used).keys() == {"token"}
    # The old address is free again.
    assert account.email not in {
        guard["Email"]["S"] for guard in await service.scan(service.tables.emails)
    }
    await service.stub.RegisterUser(
        pb.RegisterUserRequest(
            email=account.email, password=PASSWORD, first_name="New", last_name="Owner"
        ),
        timeout=TIMEOUT,
    )


async def test_the_old_address_cancels_the_change_and_the_confirm_link_stops_working(
    service: Service,
) -> None:
    account = await register(service, label="stayer")
    new_email = unique_email("unwanted")
    await request_change(service, account, new_email)
    confirm_token, cancel_token = await mailed_tokens(service, account, new_email)

    assert await cancel(service, cancel_token) == pb.CancelEmailChangeResponse()

    refused = await rpc_error(confirm(service, confirm_token))
    assert refused.code() == Code.UNAUTHENTICATED
    assert field_violations(refused).keys() == {"token"}
    user = await service.stub.GetUser(pb.GetUserRequest(id=account.id), timeout=TIMEOUT)
    assert (user.email, user.version) == (account.email, 1)
    assert "PendingEmailChange" not in await stored_user(service, account.id)
    assert (await event_kinds(service, account.id))[-1] == "email_change_cancelled"
    await sign_in(service, account.email, PASSWORD)


async def test_an_administrator_sets_a_verified_address_without_mail(service: Service) -> None:
    account = await register(service, label="support")
    new_email = unique_email("support-set")

    changed = await service.stub.ChangeEmail(
        pb.ChangeEmailRequest(id=account.id, email=new_email, expected_version=1), timeout=TIMEOUT
    )

    assert (changed.email, changed.email_verified, changed.version) == (new_email, True, 2)
    kinds = await event_kinds(service, account.id)
    assert kinds[-2:] == ["email_changed", "email_verified"]
    assert (await sign_in(service, new_email, PASSWORD)).user.id == account.id
    with pytest.raises(AssertionError, match="no new message"):
        await service.smtp.wait_for_message(to=new_email, timeout=0.5)


async def test_a_second_request_within_the_cool_down_is_refused_with_when_to_retry(
    service: Service,
) -> None:
    account = await register(service, label="eager")
    first = unique_email("first")
    await request_change(service, account, first)
    await mailed_tokens(service, account, first)
    before = await stored_user(service, account.id)

    error = await rpc_error(request_change(service, account, unique_email("second")))

    assert error.code() == Code.RESOURCE_EXHAUSTED
    status = rpc_status.from_call(error)  # type: ignore[arg-type, unused-ignore]
    assert status is not None
    retry = error_details_pb2.RetryInfo()
    assert any(detail.Unpack(retry) for detail in status.details)
    assert 0 < retry.retry_delay.seconds <= 60
    assert await stored_user(service, account.id) == before


async def test_confirming_an_address_taken_since_the_request_is_already_exists_and_changes_nothing(
    service: Service,
) -> None:
    account = await register(service, label="late")
    new_email = unique_email("contested")
    await request_change(service, account, new_email)
    confirm_token, cancel_token = await mailed_tokens(service, account, new_email)
    await service.stub.RegisterUser(
        pb.RegisterUserRequest(
            email=new_email.upper(), password=PASSWORD, first_name="Quick", last_name="One"
        ),
        timeout=TIMEOUT,
    )
    before = await stored_user(service, account.id)

    taken = await rpc_error(confirm(service, confirm_token))

    assert taken.code() == Code.ALREADY_EXISTS
    assert await stored_user(service, account.id) == before  # the change is still pending
    await cancel(service, cancel_token)


# --- bad input: the documented status, and nothing changed ---------------------------------------

UNKNOWN_ID = "7d2c1f0e-3b4a-4c5d-8e9f-0a1b2c3d4e5f"


def bad_requests(
    account: Account, other: Account, tokens: dict[str, str]
) -> list[tuple[str, str, Any, Code, set[str]]]:
    """(label, RPC, request, the documented code, the fields it names) for every refusal."""
    me, version = account.id, 1
    forged = f"{me}.{'A' * 43}"

    def req(**fields: Any) -> pb.RequestEmailChangeRequest:
        return pb.RequestEmailChangeRequest(
            **{"id": me, "new_email": unique_email("bad"), "expected_version": version, **fields}
        )

    def admin(**fields: Any) -> pb.ChangeEmailRequest:
        return pb.ChangeEmailRequest(
            **{"id": me, "email": unique_email("bad"), "expected_version": version, **fields}
        )

    invalid, unauthenticated = Code.INVALID_ARGUMENT, Code.UNAUTHENTICATED
    cases: list[tuple[str, str, Any, Code, set[str]]] = [
        ("malformed id", "RequestEmailChange", req(id="not-a-uuid"), invalid, {"id"}),
        ("empty id", "RequestEmailChange", req(id=""), invalid, {"id"}),
        ("unknown id", "RequestEmailChange", req(id=UNKNOWN_ID), Code.NOT_FOUND, set()),
        ("stale version", "RequestEmailChange", req(expected_version=2), Code.ABORTED, set()),
        (
            "no version",
            "RequestEmailChange",
            req(expected_version=0),
            invalid,
            {"expected_version"},
        ),
        (
            "same address",
            "RequestEmailChange",
            req(new_email=account.email),
            invalid,
            {"new_email"},
        ),
        (
            "same address, other case",
            "RequestEmailChange",
            req(new_email=f"  {account.email.upper()}"),
            invalid,
            {"new_email"},
        ),
        ("malformed address", "RequestEmailChange", req(new_email="a@b"), invalid, {"new_email"}),
        (
            "taken address",
            "RequestEmailChange",
            req(new_email=other.email),
            Code.ALREADY_EXISTS,
            set(),
        ),
        ("admin: malformed id", "ChangeEmail", admin(id="{nope}"), invalid, {"id"}),
        ("admin: unknown id", "ChangeEmail", admin(id=UNKNOWN_ID), Code.NOT_FOUND, set()),
        ("admin: stale version", "ChangeEmail", admin(expected_version=9), Code.ABORTED, set()),
        (
            "admin: same address",
            "ChangeEmail",
            admin(email=account.email.upper()),
            invalid,
            {"email"},
        ),
        (
            "admin: taken address",
            "ChangeEmail",
            admin(email=other.email),
            Code.ALREADY_EXISTS,
            set(),
        ),
        ("admin: empty address", "ChangeEmail", admin(email=""), invalid, {"email"}),
    ]
    token_cases: list[tuple[str, str, Code, set[str]]] = [
        ("empty", "", invalid, {"token"}),
        ("blank", " \t", invalid, {"token"}),
        ("one character", "x", unauthenticated, {"token"}),
        ("no secret", f"{me}.", unauthenticated, {"token"}),
        ("forged", forged, unauthenticated, {"token"}),
        ("refresh-shaped", f"{me}.{UNKNOWN_ID}.{'A' * 43}", unauthenticated, {"token"}),
        ("200 characters", f"{me}." + "A" * (199 - len(me)), unauthenticated, {"token"}),
        ("201 characters", f"{me}." + "A" * (200 - len(me)), unauthenticated, {"token"}),
        ("5000 characters", "A" * 5000, unauthenticated, {"token"}),
        ("unknown user", f"{UNKNOWN_ID}.{'A' * 43}", unauthenticated, {"token"}),
        # A token names its user: the secret of one user's token under another user's id.
        (
            "spliced onto another user",
            splice(tokens["confirm"], other.id),
            unauthenticated,
            {"token"},
        ),
        (
            "another's spliced onto mine",
            splice(tokens["foreign confirm"], me),
            unauthenticated,
            {"token"},
        ),
        ("a reset token", tokens["reset"], unauthenticated, {"token"}),
        ("truncated", tokens["confirm"][:-1], unauthenticated, {"token"}),
        ("non-ASCII", tokens["confirm"][:-1] + "é", unauthenticated, {"token"}),
    ]
    for label, token, code, fields in token_cases:
        cases.append(
            (f"confirm: {label}", "ConfirmEmailChange", token_request(True, token), code, fields)
        )
        cases.append(
            (f"cancel: {label}", "CancelEmailChange", token_request(False, token), code, fields)
        )
    cases += [
        (
            "confirm with the cancel token",
            "ConfirmEmailChange",
            token_request(True, tokens["cancel"]),
            unauthenticated,
            {"token"},
        ),
        (
            "cancel with the confirm token",
            "CancelEmailChange",
            token_request(False, tokens["confirm"]),
            unauthenticated,
            {"token"},
        ),
    ]
    return cases


def splice(token: str, user_id: str) -> str:
    """``token``'s secret under ``user_id``."""
    return f"{user_id}.{token.partition('.')[2]}"


def token_request(confirming: bool, token: str) -> Any:
    if confirming:
        return pb.ConfirmEmailChangeRequest(token=token)
    return pb.CancelEmailChangeRequest(token=token)


async def test_every_bad_request_gets_its_documented_status_and_changes_nothing(
    service: Service,
) -> None:
    account, other = await register(service, label="target"), await register(service, label="other")
    await service.stub.RequestPasswordReset(
        pb.RequestPasswordResetRequest(email=account.email), timeout=TIMEOUT
    )
    reset_token = reset_token_from(await service.smtp.wait_for_message(to=account.email))
    service.clock.advance(seconds=61)  # past the security mail cool-down
    new_email, foreign_email = unique_email("pending"), unique_email("foreign")
    await request_change(service, account, new_email)
    confirm_token, cancel_token = await mailed_tokens(service, account, new_email)
    await request_change(service, other, foreign_email)
    foreign_confirm, _ = await mailed_tokens(service, other, foreign_email)
    service.clock.advance(seconds=61)  # past the cool-down: each refusal below is its own
    tokens = {
        "confirm": confirm_token,
        "cancel": cancel_token,
        "reset": reset_token,
        "foreign confirm": foreign_confirm,
    }
    users_before = {a.id: await stored_user(service, a.id) for a in (account, other)}
    guards_before = await service.scan(service.tables.emails)

    for label, rpc, request, code, fields in bad_requests(account, other, tokens):
        error = await rpc_error(getattr(service.stub, rpc)(request, timeout=TIMEOUT))
        assert (error.code(), set(field_violations(error))) == (code, fields), label
        for secret in tokens.values():
            assert secret not in (error.details() or ""), label

    assert {a.id: await stored_user(service, a.id) for a in (account, other)} == users_before
    assert await service.scan(service.tables.emails) == guards_before
    # The real tokens still work after all that: nothing was spent.
    assert (await confirm(service, confirm_token)).email == new_email


async def test_an_expired_link_neither_confirms_nor_cancels(service: Service) -> None:
    account = await register(service, label="slow")
    new_email = unique_email("expired")
    await request_change(service, account, new_email)
    confirm_token, cancel_token = await mailed_tokens(service, account, new_email)
    before = await stored_user(service, account.id)
    service.clock.advance(hours=24)

    for token, rpc in ((confirm_token, confirm), (cancel_token, cancel)):
        expired = await rpc_error(rpc(service, token))
        assert expired.code() == Code.UNAUTHENTICATED
        assert field_violations(expired).keys() == {"token"}
    assert await stored_user(service, account.id) == before


# --- who may call what ------------------------------------------------------------------------


@pytest_asyncio.fixture
async def stub(secured: SecuredService) -> AsyncIterator[Stub]:
    async with secured.channel() as channel:
        yield user_service_pb2_grpc.UserServiceStub(channel)


async def test_a_user_token_asks_to_change_its_own_address_and_no_other(
    stub: Stub, keys: CallerKeys
) -> None:
    users = []
    for label in ("own", "victim"):
        email = unique_email(label)
        # Vouched for (by an admin): no verification mail holds the change's mail back.
        user = await stub.RegisterUser(
            pb.RegisterUserRequest(
                email=email, password=PASSWORD, first_name="A", last_name="B", email_verified=True
            ),
            metadata=bearer(keys.admin),
            timeout=RPC_TIMEOUT,
        )
        users.append((user, email))
    (me, my_email), (victim, _) = users
    signed_in = await stub.Authenticate(
        pb.AuthenticateRequest(email=my_email, password=PASSWORD),
        metadata=bearer(keys.plain),
        timeout=RPC_TIMEOUT,
    )
    as_me = (*bearer(keys.plain), ("x-user-token", signed_in.access_token))

    def asking(user: pb.User) -> pb.RequestEmailChangeRequest:
        return pb.RequestEmailChangeRequest(
            id=user.id, new_email=unique_email("next"), expected_version=1
        )

    await stub.RequestEmailChange(asking(me), metadata=as_me, timeout=RPC_TIMEOUT)
    refused = await rpc_error(
        stub.RequestEmailChange(asking(victim), metadata=as_me, timeout=RPC_TIMEOUT)
    )
    roleless = await rpc_error(
        stub.RequestEmailChange(asking(me), metadata=bearer(keys.plain), timeout=RPC_TIMEOUT)
    )
    admin_only = await rpc_error(
        stub.ChangeEmail(
            pb.ChangeEmailRequest(id=me.id, email=unique_email("x"), expected_version=1),
            metadata=as_me,
            timeout=RPC_TIMEOUT,
        )
    )
    for error in (refused, roleless, admin_only):
        assert error.code() == Code.PERMISSION_DENIED, error
    by_admin = await stub.ChangeEmail(
        pb.ChangeEmailRequest(id=victim.id, email=unique_email("fixed"), expected_version=1),
        metadata=bearer(keys.admin),
        timeout=RPC_TIMEOUT,
    )
    assert by_admin.email_verified and by_admin.version == 2
    # Confirm and cancel need no token of the user, only an identified caller: the mailed token
    # is the proof.
    unknown = await rpc_error(
        stub.CancelEmailChange(
            pb.CancelEmailChangeRequest(token=f"{me.id}.{'A' * 43}"),
            metadata=bearer(keys.plain),
            timeout=RPC_TIMEOUT,
        )
    )
    assert unknown.code() == Code.UNAUTHENTICATED
