"""Users brought over with the old system's password hashes, over a real gRPC channel: each
published vector signs in with its password and is argon2id afterwards (the old password still
works); a wrong password changes nothing but the failure count; a tampered, truncated, too
costly or not accepted hash never matches, and never answers INTERNAL."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import grpc
from argon2 import extract_parameters
from biome.user.v1 import user_service_pb2 as pb

from domain.user import User
from domain.values import Email, PersonName, UserId
from persistence.unit_of_work import DynamoUnitOfWork
from server.crypto.legacy_hashes import HashFormat
from tests.e2e.auth_helpers import NEW_PASSWORD, TIMEOUT, sign_in, sign_in_error, unique_email
from tests.e2e.conftest import serving
from tests.e2e.harness import Service, service_settings
from tests.smtp_server import CapturingSmtpServer
from tests.unit.server.crypto.test_legacy_hashes import VECTORS

NOW = datetime(2026, 12, 7, tzinfo=UTC)


async def store_user(service: Service, password_hash: str) -> str:
    """A user as the import writes one: the hash exactly as the old system held it."""
    email = unique_email()
    user = User.register(
        user_id=UserId.new(),
        email=Email.parse(email),
        first_name=PersonName.parse("Grace"),
        last_name=PersonName.parse("Hopper"),
        password_hash=password_hash,
        now=NOW,
    )
    user.mark_email_verified(NOW)
    async with DynamoUnitOfWork(service.dynamodb, service.tables) as uow:
        await uow.users.add(user)
        await uow.commit()
    return email


async def stored(service: Service, email: str) -> User:
    async with DynamoUnitOfWork(service.dynamodb, service.tables) as uow:
        user = await uow.users.get_by_email(Email.parse(email))
    assert user is not None
    return user


async def test_every_format_signs_in_with_its_vector_and_is_rehashed(service: Service) -> None:
    for _, password, vector, source in VECTORS:
        email = await store_user(service, vector)

        wrong = await sign_in_error(service, email, password + "?")
        assert wrong.code() == grpc.StatusCode.UNAUTHENTICATED, source
        after_wrong = await stored(service, email)
        assert after_wrong.password_hash == vector, source  # nothing but the count changed
        assert after_wrong.failed_logins == 1, source

        tokens = await sign_in(service, email, password)
        assert tokens.refresh_token, source
        rehashed = await stored(service, email)
        assert rehashed.password_hash != vector, source
        assert rehashed.failed_logins == 0
        today = extract_parameters(rehashed.password_hash)
        assert rehashed.password_hash.startswith("$argon2id$"), source
        assert (today.time_cost, today.memory_cost, today.parallelism) == (2, 19456, 1)

        assert (await sign_in(service, email, password)).refresh_token, source
        assert (await stored(service, email)).password_hash == rehashed.password_hash


def _tamper(stored_hash: str) -> list[str]:
    middle = len(stored_hash) // 2
    swap = "B" if stored_hash[middle] != "B" else "C"
    return [
        stored_hash[:-3],
        stored_hash + "AAAA",
        stored_hash[:middle] + swap + stored_hash[middle + 1 :],
        stored_hash[: len(stored_hash) // 3],
    ]


async def test_a_tampered_or_truncated_hash_never_matches_nor_answers_internal(
    service: Service,
) -> None:
    for _, password, vector, source in VECTORS:
        for bad in _tamper(vector):
            email = await store_user(service, bad)
            error = await sign_in_error(service, email, password)
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED, (source, bad)
            assert (await stored(service, email)).password_hash == bad


def _aspnet_v3(iterations: int) -> str:
    raw = bytearray(base64.b64decode(VECTORS[2][2]))  # ASP.NET Core's V3 vector
    raw[5:9] = iterations.to_bytes(4, "big")
    return base64.b64encode(bytes(raw)).decode()


async def test_a_stored_hash_above_the_ceiling_is_refused_without_the_work(
    service: Service,
) -> None:
    # 2,000,000,000 iterations of HMAC-SHA256 would take about an hour; refused at once.
    email = await store_user(service, _aspnet_v3(2_000_000_000))
    start = time.monotonic()
    error = await sign_in_error(service, email, "my password")
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert time.monotonic() - start < 5
    assert (await stored(service, email)).failed_logins == 1


async def test_a_format_not_accepted_never_matches(
    moto_endpoint: str, smtp_server: CapturingSmtpServer
) -> None:
    settings = service_settings(
        moto_endpoint,
        smtp_server,
        legacy_hash_formats=frozenset({HashFormat.ARGON2ID, HashFormat.PBKDF2}),
    )
    async with serving(settings, smtp_server) as service:
        for found, password, vector, source in VECTORS:
            if found not in (HashFormat.BCRYPT, HashFormat.ASPNET_V2, HashFormat.PBKDF2):
                continue
            email = await store_user(service, vector)
            if found is HashFormat.PBKDF2:
                assert (await sign_in(service, email, password)).refresh_token, source
                continue
            error = await sign_in_error(service, email, password)
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED, source
            assert (await stored(service, email)).password_hash == vector


async def test_change_password_checks_the_current_one_against_a_legacy_hash(
    service: Service,
) -> None:
    _, password, vector, _ = VECTORS[2]  # ASP.NET Identity V3
    email = await store_user(service, vector)
    user = await stored(service, email)
    reply = await service.stub.ChangePassword(
        pb.ChangePasswordRequest(
            user_id=str(user.id), current_password=password, new_password=NEW_PASSWORD
        ),
        timeout=TIMEOUT,
    )
    assert reply == pb.ChangePasswordResponse()
    assert (await stored(service, email)).password_hash.startswith("$argon2id$")
    assert (await sign_in(service, email, NEW_PASSWORD)).refresh_token
    assert (await sign_in_error(service, email, password)).code() == (
        grpc.StatusCode.UNAUTHENTICATED
    )
