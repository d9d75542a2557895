"""TOTP and recovery codes over a real gRPC channel, the codes computed here with pyotp as an
authenticator app would: enrollment, recovery codes, disabling, the administrator's reset; replays
and bad codes of every shape answered with their documented status, changing nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc
import pyotp
import pytest
import pytest_asyncio
from biome.user.v1 import user_service_pb2 as pb
from biome.user.v1 import user_service_pb2_grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from tests.e2e.auth_helpers import PASSWORD, TIMEOUT, Account, register, unique_email
from tests.e2e.harness import Service, field_violations, rpc_error
from tests.e2e.secured_service import RPC_TIMEOUT, CallerKeys, SecuredService, bearer
from tests.smtp_server import reset_token_from

Code = grpc.StatusCode
Stub: TypeAlias = "user_service_pb2_grpc.UserServiceAsyncStub"


def app_code(service: Service, secret: str) -> str:
    """The code the app shows now, by the server's clock."""
    return pyotp.TOTP(secret).at(service.clock())


def next_step(service: Service) -> None:
    """Move the server's clock a step on, so that the app shows a fresh code."""
    service.clock.advance(seconds=30)


async def begin(service: Service, account: Account) -> pb.BeginTotpEnrollmentResponse:
    return await service.stub.BeginTotpEnrollment(
        pb.BeginTotpEnrollmentRequest(user_id=account.id), timeout=TIMEOUT
    )


async def confirm(
    service: Service, account: Account, code: str
) -> pb.ConfirmTotpEnrollmentResponse:
    return await service.stub.ConfirmTotpEnrollment(
        pb.ConfirmTotpEnrollmentRequest(user_id=account.id, code=code), timeout=TIMEOUT
    )


async def enrolled(service: Service) -> tuple[Account, str, list[str]]:
    """A new account with TOTP on: the account, the secret, the recovery codes."""
    account = await register(service, label="totp")
    secret = (await begin(service, account)).secret
    confirmed = await confirm(service, account, app_code(service, secret))
    next_step(service)
    await service.smtp.wait_for_message(to=account.email)  # the notice of the added factor
    return account, secret, list(confirmed.recovery_codes)


async def get_user(service: Service, account: Account) -> pb.User:
    return await service.stub.GetUser(pb.GetUserRequest(id=account.id), timeout=TIMEOUT)


async def stored_item(service: Service, user_id: str) -> dict[str, Any]:
    reply = await service.dynamodb.get_item(
        TableName=service.tables.users, Key={"Id": {"S": user_id}}, ConsistentRead=True
    )
    item: dict[str, Any] = reply["Item"]
    return item


async def event_kinds(service: Service, user_id: str) -> list[str]:
    reply = await service.stub.ListUserEvents(
        pb.ListUserEventsRequest(user_id=user_id, page_size=100), timeout=TIMEOUT
    )
    return [str(event.WhichOneof("kind")) for event in reply.events]


def error_reason(error: grpc.aio.AioRpcError) -> str | None:
    status = rpc_status.from_call(error)  # type: ignore[arg-type, unused-ignore]
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return None


async def test_enrollment_with_the_apps_code_turns_totp_on_and_shows_recovery_codes_once(
    service: Service,
) -> None:
    account = await register(service, label="enroll")

    began = await begin(service, account)
    pending = await get_user(service, account)
    confirmed = await confirm(service, account, app_code(service, began.secret))

    assert began.otpauth_uri == pyotp.TOTP(began.secret).provisioning_uri(
        name=account.email, issuer_name="Biome"
    )
    assert began.qr_code_svg.startswith(b"<svg")
    assert not pending.totp_enabled
    assert len(confirmed.recovery_codes) == 10 == len(set(confirmed.recovery_codes))
    assert confirmed.user.totp_enabled and confirmed.user.recovery_codes_remaining == 10
    user = await get_user(service, account)
    assert user.totp_enabled and user.recovery_codes_remaining == 10 and user.version == 2
    assert (await event_kinds(service, account.id))[-1] == "second_factor_added"
    mail = await service.smtp.wait_for_message(to=account.email)
    assert mail["Subject"] == "A second factor was added to your account"
    item = await stored_item(service, account.id)
    assert began.secret not in str(item)
    assert not any(code.replace("-", "") in str(item) for code in confirmed.recovery_codes)


async def test_recovery_codes_regenerate_with_a_current_code_and_the_old_ones_stop_working(
    service: Service,
) -> None:
    account, secret, old = await enrolled(service)

    renewed = await service.stub.RegenerateRecoveryCodes(
        pb.RegenerateRecoveryCodesRequest(user_id=account.id, totp_code=app_code(service, secret)),
        timeout=TIMEOUT,
    )
    refused = await rpc_error(
        service.stub.DisableTotp(
            pb.DisableTotpRequest(user_id=account.id, recovery_code=old[0]), timeout=TIMEOUT
        )
    )
    disabled = await service.stub.DisableTotp(
        pb.DisableTotpRequest(user_id=account.id, recovery_code=renewed.recovery_codes[0].upper()),
        timeout=TIMEOUT,
    )

    assert not set(renewed.recovery_codes) & set(old)
    assert refused.code() == Code.UNAUTHENTICATED
    assert not disabled.totp_enabled and disabled.recovery_codes_remaining == 0
    kinds = await event_kinds(service, account.id)
    assert kinds[-3:] == [
        "recovery_codes_regenerated",
        "recovery_code_used",
        "second_factor_removed",
    ]
    mail = await service.smtp.wait_for_message(to=account.email)
    assert mail["Subject"] == "A second factor was removed from your account"


async def test_a_code_works_once_and_a_replay_changes_nothing(service: Service) -> None:
    account, secret, _ = await enrolled(service)
    code = app_code(service, secret)
    await service.stub.RegenerateRecoveryCodes(
        pb.RegenerateRecoveryCodesRequest(user_id=account.id, totp_code=code), timeout=TIMEOUT
    )
    before = await stored_item(service, account.id)

    replayed = await rpc_error(
        service.stub.DisableTotp(
            pb.DisableTotpRequest(user_id=account.id, totp_code=code), timeout=TIMEOUT
        )
    )

    assert replayed.code() == Code.UNAUTHENTICATED
    after = await stored_item(service, account.id)
    assert after["Totp"] == before["Totp"] and after["RecoveryCodes"] == before["RecoveryCodes"]
    next_step(service)
    disabled = await service.stub.DisableTotp(
        pb.DisableTotpRequest(user_id=account.id, totp_code=app_code(service, secret)),
        timeout=TIMEOUT,
    )
    assert not disabled.totp_enabled


async def test_the_administrators_reset_removes_the_factor_and_mails_the_owner(
    service: Service,
) -> None:
    account, secret, _ = await enrolled(service)

    reset = await service.stub.ResetSecondFactors(
        pb.ResetSecondFactorsRequest(user_id=account.id), timeout=TIMEOUT
    )

    assert not reset.totp_enabled and reset.recovery_codes_remaining == 0
    assert (await event_kinds(service, account.id))[-1] == "second_factors_reset"
    mail = await service.smtp.wait_for_message(to=account.email)
    assert mail["Subject"] == "A second factor was removed from your account"
    item = await stored_item(service, account.id)
    assert not {"Totp", "PendingTotp", "RecoveryCodes"} & set(item)
    # The owner enrolls anew; the old secret's codes confirm nothing.
    again = await begin(service, account)
    old = app_code(service, secret)
    if old != app_code(service, again.secret):
        refused = await rpc_error(confirm(service, account, old))
        assert refused.code() == Code.UNAUTHENTICATED
    await confirm(service, account, app_code(service, again.secret))


async def test_a_password_reset_leaves_the_factor_on(service: Service) -> None:
    account, _, _ = await enrolled(service)
    await service.stub.RequestPasswordReset(
        pb.RequestPasswordResetRequest(email=account.email), timeout=TIMEOUT
    )
    token = reset_token_from(await service.smtp.wait_for_message(to=account.email))
    await service.stub.ResetPassword(
        pb.ResetPasswordRequest(reset_token=token, new_password="marble-harbor-77"),
        timeout=TIMEOUT,
    )

    user = await get_user(service, account)
    assert user.totp_enabled and user.recovery_codes_remaining == 10


CODES_OF_EVERY_SHAPE = [
    "0",
    "12345",
    "1234567",
    "12345678901234567890",
    "abcdef",
    "ABCDEF",
    "12345a",
    "١٢٣٤٥٦",  # Arabic-Indic digits
    "\uff11\uff12\uff13\uff14\uff15\uff16",  # full-width digits
    "12\u200b3456",
    "-12345",
    "+12345",
    "12.345",
    "\x00\x00\x00\x00\x00\x00",
    "😀😀😀😀😀😀",
    "0000-0000-0000-0000",
    "x" * 64,
]


@pytest.mark.parametrize("code", CODES_OF_EVERY_SHAPE)
async def test_a_confirming_code_of_any_wrong_shape_is_unauthenticated_and_changes_nothing(
    service: Service, code: str
) -> None:
    account = await register(service, label="shapes")
    await begin(service, account)
    before = await stored_item(service, account.id)

    error = await rpc_error(confirm(service, account, code))

    assert error.code() == Code.UNAUTHENTICATED, error
    assert await stored_item(service, account.id) == before


@pytest.mark.parametrize("code", ["", " ", "1" * 65, "1" * 5000])
async def test_an_empty_or_over_long_code_is_invalid_input_on_its_field(
    service: Service, code: str
) -> None:
    account, _, _ = await enrolled(service)
    before = await stored_item(service, account.id)

    # An empty code in DisableTotp's oneof reads as no proof at all: asked for on totp_code.
    disable_field = "totp_code" if not code else None
    for call, field in (
        (
            service.stub.DisableTotp(
                pb.DisableTotpRequest(user_id=account.id, totp_code=code), timeout=TIMEOUT
            ),
            disable_field or "totp_code",
        ),
        (
            service.stub.DisableTotp(
                pb.DisableTotpRequest(user_id=account.id, recovery_code=code), timeout=TIMEOUT
            ),
            disable_field or "recovery_code",
        ),
        (
            service.stub.RegenerateRecoveryCodes(
                pb.RegenerateRecoveryCodesRequest(user_id=account.id, totp_code=code),
                timeout=TIMEOUT,
            ),
            "totp_code",
        ),
    ):
        error = await rpc_error(call)
        assert error.code() == Code.INVALID_ARGUMENT, (field, error)
        assert list(field_violations(error)) == [field]
    assert await stored_item(service, account.id) == before


async def test_disabling_without_proof_and_states_that_refuse_carry_their_reason(
    service: Service,
) -> None:
    account, _, _ = await enrolled(service)
    plain = await register(service, label="plain")

    no_proof = await rpc_error(
        service.stub.DisableTotp(pb.DisableTotpRequest(user_id=account.id), timeout=TIMEOUT)
    )
    again = await rpc_error(begin(service, account))
    off = await rpc_error(
        service.stub.DisableTotp(
            pb.DisableTotpRequest(user_id=plain.id, without_code=True), timeout=TIMEOUT
        )
    )
    nothing_pending = await rpc_error(confirm(service, plain, "123456"))
    unknown = await rpc_error(
        service.stub.BeginTotpEnrollment(
            pb.BeginTotpEnrollmentRequest(user_id="0b7e7f55-9f3c-4d7a-9d38-1c2b3a4d5e6f"),
            timeout=TIMEOUT,
        )
    )
    malformed = await rpc_error(
        service.stub.ResetSecondFactors(
            pb.ResetSecondFactorsRequest(user_id="not-a-uuid"), timeout=TIMEOUT
        )
    )

    assert no_proof.code() == Code.INVALID_ARGUMENT and "totp_code" in field_violations(no_proof)
    assert (again.code(), error_reason(again)) == (
        Code.FAILED_PRECONDITION,
        "TOTP_ALREADY_ENABLED",
    )
    assert (off.code(), error_reason(off)) == (Code.FAILED_PRECONDITION, "TOTP_NOT_ENABLED")
    assert (nothing_pending.code(), error_reason(nothing_pending)) == (
        Code.FAILED_PRECONDITION,
        "NO_TOTP_ENROLLMENT_PENDING",
    )
    assert unknown.code() == Code.NOT_FOUND
    assert malformed.code() == Code.INVALID_ARGUMENT and "user_id" in field_violations(malformed)


# --- who may call what ------------------------------------------------------------------------


@pytest_asyncio.fixture
async def stub(secured: SecuredService) -> AsyncIterator[Stub]:
    async with secured.channel() as channel:
        yield user_service_pb2_grpc.UserServiceStub(channel)


async def test_the_owner_enrolls_with_its_own_token_and_only_an_admin_skips_the_code(
    stub: Stub, keys: CallerKeys
) -> None:
    users = []
    for label in ("own", "victim"):
        email = unique_email(label)
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

    began = await stub.BeginTotpEnrollment(
        pb.BeginTotpEnrollmentRequest(user_id=me.id), metadata=as_me, timeout=RPC_TIMEOUT
    )
    await stub.ConfirmTotpEnrollment(
        pb.ConfirmTotpEnrollmentRequest(user_id=me.id, code=pyotp.TOTP(began.secret).now()),
        metadata=as_me,
        timeout=RPC_TIMEOUT,
    )
    refusals = [
        await rpc_error(
            stub.BeginTotpEnrollment(
                pb.BeginTotpEnrollmentRequest(user_id=victim.id),
                metadata=as_me,
                timeout=RPC_TIMEOUT,
            )
        ),
        await rpc_error(
            stub.DisableTotp(
                pb.DisableTotpRequest(user_id=me.id, without_code=True),
                metadata=as_me,
                timeout=RPC_TIMEOUT,
            )
        ),
        await rpc_error(
            stub.DisableTotp(
                pb.DisableTotpRequest(user_id=me.id, without_code=True),
                metadata=bearer(keys.writer),
                timeout=RPC_TIMEOUT,
            )
        ),
        await rpc_error(
            stub.ResetSecondFactors(
                pb.ResetSecondFactorsRequest(user_id=me.id), metadata=as_me, timeout=RPC_TIMEOUT
            )
        ),
    ]
    for error in refusals:
        assert error.code() == Code.PERMISSION_DENIED, error
    disabled = await stub.DisableTotp(
        pb.DisableTotpRequest(user_id=me.id, without_code=True),
        metadata=bearer(keys.admin),
        timeout=RPC_TIMEOUT,
    )
    assert not disabled.totp_enabled
