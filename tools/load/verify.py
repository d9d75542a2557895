"""The verification pass: every user whose registration succeeded is found by id and by email."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from biome.user.v1 import user_service_pb2 as pb

from tools.load.accounts import Account
from tools.load.rpc import Result, Stub, send
from tools.load.stats import Stats

MAX_LISTED_PROBLEMS = 20


@dataclass
class Verification:
    """How many users were checked, which ones failed the check and why (the first few)."""

    users: int = 0
    failed_users: int = 0
    problems: list[str] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)


async def verify_accounts(
    stub: Stub,
    accounts: list[Account],
    *,
    concurrency: int,
    rpc_timeout: float,
    within: float,
    seed: int | None,
) -> Verification:
    """Reads each account by id (GetUser) and by email in mixed case (GetUserByEmail).

    Both must answer OK with the account's id and email; an account the workload still trusts
    must also show the names and version it last wrote. Accounts not checked ``within`` seconds
    count as failed.
    """
    verification = Verification(users=len(accounts))
    checked = 0
    rng = random.Random(seed)
    gate = asyncio.Semaphore(concurrency)

    async def check(account: Account) -> None:
        nonlocal checked
        async with gate:
            by_id = await send(stub, "GetUser", pb.GetUserRequest(id=account.user_id), rpc_timeout)
            mixed_case = "".join(c.upper() if rng.random() < 0.5 else c for c in account.email)
            by_email = await send(
                stub, "GetUserByEmail", pb.GetUserByEmailRequest(email=mixed_case), rpc_timeout
            )
        checked += 1
        problems: list[str] = []
        for result in (by_id, by_email):
            problem = _problem(account, result, exact=not account.uncertain)
            verification.stats.record(
                result.method, result.code, result.seconds, expected=not problem, note=problem
            )
            if problem:
                problems.append(problem)
        if problems:
            verification.failed_users += 1
            remaining = MAX_LISTED_PROBLEMS - len(verification.problems)
            verification.problems.extend(problems[: max(0, remaining)])

    try:
        async with asyncio.timeout(within):
            await asyncio.gather(*(check(account) for account in accounts))
    except TimeoutError:
        unchecked = len(accounts) - checked
        verification.failed_users += unchecked
        verification.problems.append(f"{unchecked} users not verified within {within:g} s")
    return verification


def _problem(account: Account, result: Result, *, exact: bool) -> str:
    """What is wrong with one verification read of ``account`` ("" when nothing is)."""
    who = f"user {account.user_id} <{account.email}>"
    if not result.ok:
        return f"{who}: {result.method} answered {result.code.name}: {result.details}"
    user: pb.User = result.reply
    if (user.id, user.email) != (account.user_id, account.email):
        return f"{who}: {result.method} returned user {user.id} <{user.email}>"
    wanted = (account.first_name, account.last_name, account.version)
    got = (user.first_name, user.last_name, user.version)
    if exact and got != wanted:
        return f"{who}: {result.method} returned {got}, the run last wrote {wanted}"
    return ""
