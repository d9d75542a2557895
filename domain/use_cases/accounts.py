"""Account use cases: validate primitives, drive the aggregate, commit one unit of work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from domain.errors import InvalidValue, StaleVersion, UserNotFound
from domain.pagination import PageTokenCodec
from domain.password_policy import check_new_password
from domain.policies import AuthPolicy, SessionPolicy
from domain.ports import Clock, PasswordHasher, UnitOfWork, VerificationMailing
from domain.use_cases.retry import retry_on_conflict
from domain.use_cases.validation import Violations
from domain.use_cases.verification import issue_verification, mail_after_reply
from domain.user import User
from domain.values import Email, Password, PersonName, UserId

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
MAX_BATCH_IDS = 100
# A refusal names this many malformed ids and counts the rest: the violations travel in the
# reply's trailers, which gRPC clients cap (8 KiB by default), and 100 of them would not fit.
MAX_NAMED_BAD_IDS = 10


@dataclass(frozen=True)
class UsersPage:
    """A page of users and the token of the next page ("" when there is none)."""

    users: list[User]
    next_page_token: str


@dataclass(frozen=True)
class UserLookup:
    """One requested id and the user that has it (None when no user has it)."""

    user_id: UserId
    user: User | None


def check_expected_version(check: Violations, expected_version: int) -> None:
    """A violation on ``expected_version`` unless it can be a stored version (shared by the use
    cases that change a user at the version its caller read)."""
    if expected_version < 1:
        check.add("expected_version", "must be the version you last read (1 or more)")


async def register_user(
    uow: UnitOfWork,
    hasher: PasswordHasher,
    clock: Clock,
    policy: AuthPolicy,
    mailing: VerificationMailing,
    *,
    email: str,
    password: str,
    first_name: str,
    last_name: str,
    email_verified: bool = False,
) -> User:
    """Create an account. Its address starts unverified, and the verification (a link and a
    code) is issued in the registration's write and mailed after the reply; unless the caller
    vouches for the address (``email_verified``: only a role may, server.rpc_access), then it
    starts verified and nothing is mailed."""
    with Violations() as check:
        parsed_email = check.parse("email", Email.parse, email)
        parsed_password = check.parse("password", Password.parse, password)
        parsed_first = check.parse("first_name", PersonName.parse, first_name)
        parsed_last = check.parse("last_name", PersonName.parse, last_name)
        check.rule("password", check_new_password, parsed_password, email=parsed_email)
    password_hash = await hasher.hash(parsed_password)
    now = clock()
    user = User.register(
        user_id=UserId.new(),
        email=parsed_email,
        first_name=parsed_first,
        last_name=parsed_last,
        password_hash=password_hash,
        now=now,
    )
    if email_verified:
        user.mark_email_verified(now)
        verification = None
    else:
        verification = issue_verification(user, now, policy)

    async def commit(attempt: int) -> User:
        async with uow:
            await uow.users.add(user)
            await uow.commit()
        return user

    # Only a ConcurrentWrite can be retried here: another registration (or any write) of this
    # address was under way at that instant. Sent again, the address is free (this one lands)
    # or taken (EmailAlreadyRegistered); the same user, hash and id every time.
    registered = await retry_on_conflict(commit)
    if verification is not None:
        mail_after_reply(mailing, verification)
    return registered


async def get_user(uow: UnitOfWork, *, user_id: str) -> User:
    with Violations() as check:
        parsed_id = check.parse("id", UserId.parse, user_id)
    async with uow:
        user = await uow.users.get_by_id(parsed_id)
    if user is None:
        raise UserNotFound(f"no user with id {parsed_id}")
    return user


async def get_user_by_email(uow: UnitOfWork, *, email: str) -> User:
    with Violations() as check:
        parsed_email = check.parse("email", Email.parse, email)
    async with uow:
        user = await uow.users.get_by_email(parsed_email)
    if user is None:
        raise UserNotFound("no user with this email")
    return user


async def batch_get_users(uow: UnitOfWork, *, ids: Sequence[str]) -> list[UserLookup]:
    """One lookup per requested id, in the request's order; duplicates are answered in place."""
    with Violations() as check:
        if not 1 <= len(ids) <= MAX_BATCH_IDS:
            check.add("ids", f"must hold 1 to {MAX_BATCH_IDS} ids, not {len(ids)}")
            check.raise_if_any()  # the ids themselves are not looked at
        user_ids = _parse_ids(check, ids)
    async with uow:
        found = await uow.users.get_many(user_ids)
    return [UserLookup(user_id, found.get(user_id)) for user_id in user_ids]


def _parse_ids(check: Violations, ids: Sequence[str]) -> list[UserId]:
    """The ids parsed; the first malformed ones recorded by position (``ids[3]``), the rest
    counted."""
    parsed: list[UserId] = []
    malformed = 0
    for i, raw in enumerate(ids):
        try:
            parsed.append(UserId.parse(raw))
        except InvalidValue as error:
            malformed += 1
            if malformed <= MAX_NAMED_BAD_IDS:
                check.add(f"ids[{i}]", str(error))
    if malformed > MAX_NAMED_BAD_IDS:
        unnamed = malformed - MAX_NAMED_BAD_IDS
        check.add("ids", f"{unnamed} more ids after those named are not UUIDs")
    return parsed


async def update_profile(
    uow: UnitOfWork,
    clock: Clock,
    *,
    user_id: str,
    first_name: str | None,
    last_name: str | None,
    expected_version: int,
) -> User:
    with Violations() as check:
        parsed_id = check.parse("id", UserId.parse, user_id)
        parsed_first = check.optional("first_name", PersonName.parse, first_name)
        parsed_last = check.optional("last_name", PersonName.parse, last_name)
        if first_name is None and last_name is None:
            check.add("first_name", "give first_name, last_name or both")
        check_expected_version(check, expected_version)

    async def apply(attempt: int) -> User:
        async with uow:
            user = await load_at_version(uow, parsed_id, expected_version)
            user.update_profile(first_name=parsed_first, last_name=parsed_last, now=clock())
            if user.events:
                await uow.users.update(user)
                await uow.commit()
        return user

    # A sign-in or refresh landing in between changes the stored user but not its version:
    # the profile change is re-applied on a fresh read, and still checked against the version.
    return await retry_on_conflict(apply)


async def delete_user(
    uow: UnitOfWork, clock: Clock, *, user_id: str, expected_version: int
) -> None:
    with Violations() as check:
        parsed_id = check.parse("id", UserId.parse, user_id)
        check_expected_version(check, expected_version)

    async def apply(attempt: int) -> None:
        async with uow:
            user = await load_at_version(uow, parsed_id, expected_version)
            user.mark_deleted(now=clock())
            await uow.users.delete(user)
            await uow.commit()

    await retry_on_conflict(apply)


async def disable_user(
    uow: UnitOfWork, clock: Clock, policy: SessionPolicy, *, user_id: str
) -> User:
    """Block sign-in and refresh, ending every session; idempotent."""

    async def disable(uow: UnitOfWork, user: User) -> None:
        user.disable(clock(), policy, await uow.sessions.current(user))

    return await _switch_status(uow, user_id, disable)


async def enable_user(uow: UnitOfWork, clock: Clock, *, user_id: str) -> User:
    """Let a disabled user sign in again; enabling an active user changes nothing."""

    async def enable(uow: UnitOfWork, user: User) -> None:
        user.enable(clock())

    return await _switch_status(uow, user_id, enable)


async def _switch_status(
    uow: UnitOfWork, user_id: str, switch: Callable[[UnitOfWork, User], Awaitable[None]]
) -> User:
    with Violations() as check:
        parsed_id = check.parse("id", UserId.parse, user_id)

    async def apply(attempt: int) -> User:
        async with uow:
            user = await uow.users.require(parsed_id)
            before = _switched_state(user)
            await switch(uow, user)
            if _switched_state(user) != before:
                await uow.users.update(user)
                await uow.commit()
        return user

    return await retry_on_conflict(apply)


def _switched_state(user: User) -> tuple[object, ...]:
    """What enabling or disabling may change (the pending secrets a disable voids included):
    a write is needed when any of it did."""
    return (
        user.status,
        user.session_epoch,
        user.password_reset,
        user.pending_email_change,
        user.email_verification,
    )


async def list_users(
    uow: UnitOfWork, page_tokens: PageTokenCodec, *, page_size: int, page_token: str
) -> UsersPage:
    with Violations() as check:
        check_page_size(check, page_size)
        after = check.optional("page_token", page_tokens.decode, page_token or None)
    async with uow:
        page = await uow.users.list_page(page_size or DEFAULT_PAGE_SIZE, after)
    next_token = page_tokens.encode(page.last_key) if page.last_key is not None else ""
    return UsersPage(users=page.users, next_page_token=next_token)


def check_page_size(check: Violations, page_size: int) -> None:
    """A page size of 0 (the default) to MAX_PAGE_SIZE."""
    if not 0 <= page_size <= MAX_PAGE_SIZE:
        check.add(
            "page_size", f"must be between 0 and {MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE})"
        )


async def load_at_version(uow: UnitOfWork, user_id: UserId, expected_version: int) -> User:
    """The user, as stored at ``expected_version``: UserNotFound, or StaleVersion when another
    write landed since the caller read it."""
    user = await uow.users.get_by_id(user_id)
    if user is None:
        raise UserNotFound(f"no user with id {user_id}")
    if user.version != expected_version:
        raise StaleVersion(expected=expected_version, actual=user.version)
    return user
