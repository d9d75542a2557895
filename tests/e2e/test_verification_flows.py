"""Email verification over a real gRPC channel, with the mail read from a real SMTP server on
loopback: verifying by the link's token and by the code, sign-in that needs a verified address,
wrong codes at once against moto, resending under the cool-down, and bad input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from email.message import EmailMessage

import grpc
import pytest
import pytest_asyncio
from biome.user.v1 import user_service_pb2 as pb
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.e2e.auth_helpers import (
    PASSWORD,
    TIMEOUT,
    WRONG_PASSWORD,
    Account,
    register,
    reply_of,
    sign_in,
    sign_in_error,
    unique_email,
    verify_access_token,
)
from tests.e2e.conftest import serving
from tests.e2e.harness import Service, field_violations, rpc_error, service_settings
from tests.smtp_server import CapturingSmtpServer, reset_token_from, verification_code_from

QUIET_PERIOD = 0.5  # seconds to wait for a mail that must not come
CODE_LIMIT = 5


@pytest_asyncio.fixture
async def strict(moto_endpoint: str, smtp_server: CapturingSmtpServer) -> AsyncIterator[Service]:
    """The service as production configures sign-in: a verified address is required."""
    settings = service_settings(moto_endpoint, smtp_server, require_verified_email=True)
    async with serving(settings, smtp_server) as running:
        yield running


async def unverified(service: Service, label: str = "verify") -> tuple[Account, EmailMessage]:
    """A new account left unverified, and the verification mail it was sent."""
    account = await register(service, label=label, verified=False)
    return account, await service.smtp.wait_for_message(to=account.email)


def by_token(token: str) -> pb.VerifyEmailRequest:
    return pb.VerifyEmailRequest(token=token)


def by_code(email: str, code: str) -> pb.VerifyEmailRequest:
    return pb.VerifyEmailRequest(email=email, code=code)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


async def verify_error(service: Service, request: pb.VerifyEmailRequest) -> grpc.aio.AioRpcError:
    return await rpc_error(service.stub.VerifyEmail(request, timeout=TIMEOUT))


async def resend(service: Service, email: str) -> pb.ResendVerificationResponse:
    return await service.stub.ResendVerification(
        pb.ResendVerificationRequest(email=email), timeout=TIMEOUT
    )


async def assert_no_mail_to(service: Service, email: str) -> None:
    with pytest.raises(AssertionError, match="no new message"):
        await service.smtp.wait_for_message(to=email, timeout=QUIET_PERIOD)


def error_reason(error: grpc.aio.AioRpcError) -> str | None:
    status = rpc_status.from_call(error)  # type: ignore[arg-type, unused-ignore]
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return None


async def get_user(service: Service, user_id: str) -> pb.User:
    return await service.stub.GetUser(pb.GetUserRequest(id=user_id), timeout=TIMEOUT)


# --- verifying ------------------------------------------------------------------------------------


async def test_registration_mails_a_link_and_a_code_and_the_link_verifies_the_address(
    service: Service,
) -> None:
    account, mail = await unverified(service)
    assert not account.user.email_verified
    assert mail["Subject"] and account.email in mail["To"]

    verified = await service.stub.VerifyEmail(by_token(reset_token_from(mail)), timeout=TIMEOUT)

    assert verified.email_verified and verified.HasField("email_verified_at")
    assert verified.version == 2
    stored = await get_user(service, account.id)
    assert stored.email_verified and stored.email_verified_at == verified.email_verified_at


async def test_the_code_from_the_mail_verifies_the_address(service: Service) -> None:
    account, mail = await unverified(service)

    verified = await service.stub.VerifyEmail(
        by_code(account.email.upper(), verification_code_from(mail)), timeout=TIMEOUT
    )

    assert verified.email_verified and (await get_user(service, account.id)).email_verified


async def test_a_used_link_or_code_is_refused_naming_its_field(service: Service) -> None:
    account, mail = await unverified(service)
    token, code = reset_token_from(mail), verification_code_from(mail)
    await service.stub.VerifyEmail(by_token(token), timeout=TIMEOUT)

    used_link = await verify_error(service, by_token(token))
    used_code = await verify_error(service, by_code(account.email, code))

    assert used_link.code() is grpc.StatusCode.UNAUTHENTICATED
    assert set(field_violations(used_link)) == {"token"}
    assert used_code.code() is grpc.StatusCode.UNAUTHENTICATED
    assert set(field_violations(used_code)) == {"code"}
    assert token not in (used_link.details() or "") and code not in (used_code.details() or "")


async def test_an_expired_link_is_refused(service: Service) -> None:
    account, mail = await unverified(service)
    service.clock.advance(hours=24)

    expired = await verify_error(service, by_token(reset_token_from(mail)))

    assert expired.code() is grpc.StatusCode.UNAUTHENTICATED
    assert not (await get_user(service, account.id)).email_verified


async def test_foreign_and_reset_tokens_are_not_verification_tokens(service: Service) -> None:
    ada, ada_mail = await unverified(service, "ada")
    grace, grace_mail = await unverified(service, "grace")
    verified_user = await register(service, label="reset")  # vouched for: no cool-down
    await service.stub.RequestPasswordReset(
        pb.RequestPasswordResetRequest(email=verified_user.email), timeout=TIMEOUT
    )
    reset_token = reset_token_from(await service.smtp.wait_for_message(to=verified_user.email))
    grace_secret = reset_token_from(grace_mail).split(".", 1)[1]
    forged = f"{ada.id}.{grace_secret}"  # Ada's id with Grace's secret

    refusals = [await verify_error(service, by_token(token)) for token in (reset_token, forged)]

    assert {error.code() for error in refusals} == {grpc.StatusCode.UNAUTHENTICATED}
    assert all(set(field_violations(error)) == {"token"} for error in refusals)
    users = [await get_user(service, user.id) for user in (ada, grace)]
    assert not any(user.email_verified for user in users)
    assert (await service.stub.VerifyEmail(by_token(reset_token_from(ada_mail)))).email_verified


# --- sign-in that needs a verified address ----------------------------------------------------


async def test_sign_in_needs_a_verified_address_and_says_so_only_to_the_right_password(
    strict: Service,
) -> None:
    account, mail = await unverified(strict, "strict")
    unknown = await sign_in_error(strict, unique_email("nobody"), PASSWORD)
    wrong_password = await sign_in_error(strict, account.email, WRONG_PASSWORD)

    right = await sign_in_error(strict, account.email, PASSWORD)

    assert right.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(right) == "EMAIL_NOT_VERIFIED"
    assert wrong_password.code() is grpc.StatusCode.UNAUTHENTICATED
    assert reply_of(wrong_password) == reply_of(unknown)  # nothing told without the password
    assert error_reason(wrong_password) is None

    await strict.stub.VerifyEmail(by_code(account.email, verification_code_from(mail)))
    tokens = await sign_in(strict, account.email, PASSWORD)

    assert tokens.user.email_verified
    assert (await verify_access_token(strict, tokens.access_token))["email_verified"] is True


async def test_without_the_requirement_an_unverified_account_signs_in_and_its_token_says_so(
    service: Service,
) -> None:
    account, _ = await unverified(service, "lenient")

    tokens = await sign_in(service, account.email, PASSWORD)

    assert (await verify_access_token(service, tokens.access_token))["email_verified"] is False


# --- wrong codes ----------------------------------------------------------------------------------


async def test_concurrent_wrong_codes_never_get_past_the_limit(service: Service) -> None:
    account, mail = await unverified(service, "guess")
    code = verification_code_from(mail)

    results = await asyncio.gather(
        *(service.stub.VerifyEmail(by_code(account.email, wrong(code))) for _ in range(20)),
        return_exceptions=True,
    )

    codes = [r.code() for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(codes) == 20, results
    # Counted or past the limit, a wrong code is refused alike; the item shows the count.
    assert set(codes) <= {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.ABORTED}
    item = (
        await service.dynamodb.get_item(
            TableName=service.tables.users, Key={"Id": {"S": account.id}}, ConsistentRead=True
        )
    )["Item"]
    assert item["EmailVerification"]["M"]["WrongCodes"] == {"N": str(CODE_LIMIT)}
    right = await verify_error(service, by_code(account.email, code))
    assert right.code() is grpc.StatusCode.UNAUTHENTICATED  # the code is void, said as wrong
    # The link still works.
    assert (await service.stub.VerifyEmail(by_token(reset_token_from(mail)))).email_verified


# --- resending ------------------------------------------------------------------------------------


async def test_a_resend_waits_out_the_cool_down_then_replaces_the_link_and_code(
    service: Service,
) -> None:
    account, first = await unverified(service, "resend")

    await resend(service, account.email)
    await assert_no_mail_to(service, account.email)  # 60 s have not passed since the first
    service.clock.advance(seconds=60)
    await resend(service, account.email)
    second = await service.smtp.wait_for_message(to=account.email)

    assert reset_token_from(second) != reset_token_from(first)
    old = await verify_error(service, by_token(reset_token_from(first)))
    assert old.code() is grpc.StatusCode.UNAUTHENTICATED
    verified = await service.stub.VerifyEmail(
        by_code(account.email, verification_code_from(second)), timeout=TIMEOUT
    )
    assert verified.email_verified


async def test_a_resend_replies_the_same_for_unknown_or_verified_addresses_and_mails_nothing(
    service: Service,
) -> None:
    verified = await register(service, label="already")
    nobody = unique_email("nobody")

    replies = [await resend(service, email) for email in (verified.email, nobody)]

    assert replies == [pb.ResendVerificationResponse()] * 2
    await assert_no_mail_to(service, verified.email)
    await assert_no_mail_to(service, nobody)


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_fields", "fields"),
    [
        ({}, {"token"}),
        ({"token": "a.b", "email": "ada@example.com"}, {"token"}),
        ({"email": "ada@example.com"}, {"code"}),
        ({"code": "123456"}, {"email"}),
        ({"email": "nope", "code": "12 34"}, {"email", "code"}),
    ],
)
async def test_malformed_verify_requests_are_invalid_arguments(
    service: Service, request_fields: dict[str, str], fields: set[str]
) -> None:
    error = await verify_error(service, pb.VerifyEmailRequest(**request_fields))

    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == fields


@pytest.mark.parametrize("length", [1, 36, 37, 80, 199, 200, 201, 4096, 60_000])
async def test_tokens_of_every_length_are_refused_as_not_valid(
    service: Service, length: int
) -> None:
    error = await verify_error(
        service, by_token(("3f2b8a3e-1c4d-4e5f-9a6b-7c8d9e0f1a2b." * 2000)[:length])
    )

    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert set(field_violations(error)) == {"token"}


async def test_a_resend_with_a_malformed_email_is_an_invalid_argument(service: Service) -> None:
    error = await rpc_error(
        service.stub.ResendVerification(pb.ResendVerificationRequest(email="nope"))
    )

    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert set(field_violations(error)) == {"email"}
