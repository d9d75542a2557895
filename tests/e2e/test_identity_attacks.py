"""Attacks on the identity lifecycle: the interactions between email verification, email change,
sessions by device and the secrets they keep, over a real gRPC channel against moto with the mail
read from a real SMTP server on loopback. The first ones failed before their fixes (a review of
issue 15); the others guard interactions that held."""

from __future__ import annotations

import asyncio

import grpc
from biome.user.v1 import user_service_pb2 as pb

from datatools.file_format import UserRecord
from datatools.table_export import export_users
from domain.secret_tokens import hash_code
from tests.e2e.auth_helpers import NEW_PASSWORD, PASSWORD, TIMEOUT, register, unique_email
from tests.e2e.harness import Service, rpc_error
from tests.e2e.test_email_change_flows import (
    cancel,
    confirm,
    mailed_reset,
    mailed_tokens,
    request_change,
)
from tests.e2e.test_races import outcome, race, racing_stubs
from tests.e2e.test_verification_flows import CODE_LIMIT, by_code, by_token, unverified, wrong
from tests.smtp_server import reset_token_from, verification_code_from

Code = grpc.StatusCode


# --- a pending email change does not outlive the owner's recovery --------------------------------


async def test_a_password_reset_voids_a_pending_email_change(service: Service) -> None:
    """Someone with a stolen access token asks to move the account to their own address. The
    owner notices, resets the password (which ends every session): the thief's confirm link
    must stop working, or the thief takes the account over after the owner recovered it."""
    victim = await register(service, label="victim")
    thief_address = unique_email("thief")
    await request_change(service, victim, thief_address)
    confirm_token, _ = await mailed_tokens(service, victim, thief_address)
    service.clock.advance(seconds=61)  # past the security-mail cool-down
    reset = await mailed_reset(service, victim.email)
    await service.stub.ResetPassword(
        pb.ResetPasswordRequest(reset_token=reset, new_password=NEW_PASSWORD), timeout=TIMEOUT
    )

    error = await rpc_error(confirm(service, confirm_token))

    assert error.code() == Code.UNAUTHENTICATED


async def test_a_password_change_voids_a_pending_email_change(service: Service) -> None:
    victim = await register(service, label="victim")
    thief_address = unique_email("thief")
    await request_change(service, victim, thief_address)
    confirm_token, _ = await mailed_tokens(service, victim, thief_address)
    await service.stub.ChangePassword(
        pb.ChangePasswordRequest(
            user_id=victim.id, current_password=PASSWORD, new_password=NEW_PASSWORD
        ),
        timeout=TIMEOUT,
    )

    error = await rpc_error(confirm(service, confirm_token))

    assert error.code() == Code.UNAUTHENTICATED


# --- VerifyEmail does not tell who has an unverified account -------------------------------------


async def test_exhausting_codes_does_not_tell_whether_an_address_has_an_account(
    service: Service,
) -> None:
    """A wrong code for an address without an account is UNAUTHENTICATED; after CODE_LIMIT
    wrong codes an address with an unverified account must answer the same, or anyone could
    tell which addresses registered."""
    account, mail = await unverified(service, "probed")
    nobody = unique_email("nobody")
    guess = wrong(verification_code_from(mail))
    for _ in range(CODE_LIMIT):
        await rpc_error(service.stub.VerifyEmail(by_code(account.email, guess), timeout=TIMEOUT))
        await rpc_error(service.stub.VerifyEmail(by_code(nobody, guess), timeout=TIMEOUT))

    registered = await rpc_error(
        service.stub.VerifyEmail(by_code(account.email, guess), timeout=TIMEOUT)
    )
    unknown = await rpc_error(service.stub.VerifyEmail(by_code(nobody, guess), timeout=TIMEOUT))

    assert registered.code() == unknown.code(), (registered.code(), unknown.code())


# --- the export carries nothing that recovers a live verification code ---------------------------


async def test_an_export_holds_nothing_the_verification_code_is_recovered_from(
    service: Service,
) -> None:
    account, mail = await unverified(service, "exported")
    records: list[UserRecord] = []
    await export_users(service.dynamodb, service.tables, records.append)
    [record] = [r for r in records if r.user_id == account.id]
    pending = record.user.get("EmailVerification", {}).get("M", {})

    recovered = None
    if "CodeHash" in pending:  # 10**6 HMACs: about a second
        salt, stored = pending["CodeSalt"]["S"], pending["CodeHash"]["S"]
        recovered = next(
            (c for c in (f"{n:06d}" for n in range(10**6)) if hash_code(c, salt) == stored), None
        )

    assert recovered is None, f"the export gives the live code {recovered} away"
    assert recovered != verification_code_from(mail)


# --- interactions that held (regression guards) ---------------------------------------------------


async def test_a_verification_link_for_the_old_address_is_void_after_a_confirmed_change(
    service: Service,
) -> None:
    account, mail = await unverified(service, "oldlink")
    new_address = unique_email("newlink")
    service.clock.advance(seconds=61)
    await request_change(service, account, new_address)
    confirm_token, _ = await mailed_tokens(service, account, new_address)
    await confirm(service, confirm_token)

    by_link = await rpc_error(
        service.stub.VerifyEmail(by_token(reset_token_from(mail)), timeout=TIMEOUT)
    )
    by_old_code = await rpc_error(
        service.stub.VerifyEmail(
            by_code(account.email, verification_code_from(mail)), timeout=TIMEOUT
        )
    )
    assert by_link.code() == by_old_code.code() == Code.UNAUTHENTICATED


async def test_a_pending_change_dies_with_an_admin_change_a_disable_or_a_delete(
    service: Service,
) -> None:
    for ending in ("admin", "disable", "delete"):
        account = await register(service, label=f"pend{ending}")
        wanted = unique_email("wanted")
        await request_change(service, account, wanted)
        confirm_token, _ = await mailed_tokens(service, account, wanted)
        version = (
            await service.stub.GetUser(pb.GetUserRequest(id=account.id), timeout=TIMEOUT)
        ).version
        if ending == "admin":
            await service.stub.ChangeEmail(
                pb.ChangeEmailRequest(
                    id=account.id, email=unique_email("support"), expected_version=version
                ),
                timeout=TIMEOUT,
            )
        elif ending == "disable":
            await service.stub.DisableUser(pb.DisableUserRequest(id=account.id), timeout=TIMEOUT)
            await service.stub.EnableUser(pb.EnableUserRequest(id=account.id), timeout=TIMEOUT)
        else:
            await service.stub.DeleteUser(
                pb.DeleteUserRequest(id=account.id, expected_version=version), timeout=TIMEOUT
            )
        error = await rpc_error(confirm(service, confirm_token))
        assert error.code() == Code.UNAUTHENTICATED, ending
        # The dead change holds nothing: the address is free.
        await service.stub.RegisterUser(
            pb.RegisterUserRequest(
                email=wanted, password=PASSWORD, first_name="Ada", last_name="Byron"
            ),
            timeout=TIMEOUT,
        )


async def test_ten_concurrent_confirms_of_one_token_move_the_account_once(
    service: Service,
) -> None:
    account = await register(service, label="twice")
    wanted = unique_email("twice-new")
    await request_change(service, account, wanted)
    confirm_token, cancel_token = await mailed_tokens(service, account, wanted)

    results = await asyncio.gather(
        *(confirm(service, confirm_token) for _ in range(10)),
        cancel(service, cancel_token),
        return_exceptions=True,
    )

    ok = [r for r in results if not isinstance(r, BaseException)]
    errors = [r.code() for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(ok) == 1, results  # one confirm, or the cancel
    assert set(errors) <= {Code.UNAUTHENTICATED, Code.ABORTED}, errors
    stored = await service.stub.GetUser(pb.GetUserRequest(id=account.id), timeout=TIMEOUT)
    assert stored.email in (account.email, wanted)
    assert stored.version in (1, 2)


async def test_list_sessions_after_logout_all_is_empty_and_an_ended_own_session_is_refused(
    service: Service,
) -> None:
    account = await register(service, label="sessions")
    for _ in range(2):
        await service.stub.Authenticate(
            pb.AuthenticateRequest(email=account.email, password=PASSWORD), timeout=TIMEOUT
        )
    await service.stub.LogoutAll(pb.LogoutAllRequest(user_id=account.id), timeout=TIMEOUT)
    listed = await service.stub.ListSessions(
        pb.ListSessionsRequest(user_id=account.id), timeout=TIMEOUT
    )
    assert list(listed.sessions) == []


# --- RequestEmailChange is no unthrottled registered-address oracle ---------------


async def test_request_email_change_does_not_probe_addresses_past_the_mail_limit(
    service: Service,
) -> None:
    """Any signed-in user asks for changes to addresses of their choice: once the mail limit
    holds them back, a taken address still answers ALREADY_EXISTS (checked before the limit,
    counting nothing) and a free one RESOURCE_EXHAUSTED, as often as they like."""
    prober = await register(service, label="prober")
    taken = await register(service, label="taken")
    await request_change(service, prober, unique_email("first"))
    version = (await service.stub.GetUser(pb.GetUserRequest(id=prober.id), timeout=TIMEOUT)).version

    answers = set()
    for _ in range(20):
        for address in (taken.email, unique_email("free")):
            error = await rpc_error(request_change(service, prober, address, version))
            answers.add((address == taken.email, error.code()))

    assert len({code for _, code in answers}) == 1, sorted(answers, key=str)


async def test_sixty_distinct_guesses_over_eight_channels_check_at_most_the_limit(
    service: Service,
) -> None:
    account, mail = await unverified(service, "flood")
    code = verification_code_from(mail)
    guesses = [f"{(int(code) + n) % 10**6:06d}" for n in range(1, 61)]

    async with racing_stubs(service, 8) as stubs:
        results = await race(
            outcome(stubs[n % 8].VerifyEmail(by_code(account.email, g), timeout=TIMEOUT))
            for n, g in enumerate(guesses)
        )

    # Counted or past the limit, a wrong code is refused alike: the item holds the count.
    assert {c for c, _ in results} <= {Code.UNAUTHENTICATED, Code.ABORTED}
    item = (
        await service.dynamodb.get_item(
            TableName=service.tables.users, Key={"Id": {"S": account.id}}, ConsistentRead=True
        )
    )["Item"]
    assert int(item["EmailVerification"]["M"]["WrongCodes"]["N"]) == CODE_LIMIT
