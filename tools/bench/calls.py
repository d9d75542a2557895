"""What each row sends: requests over the seeded users, each with its deadline."""

from __future__ import annotations

import itertools
import random
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import grpc
from biome.user.v1 import user_service_pb2 as pb

from domain.pagination import PageTokenCodec
from domain.values import UserId
from tools.bench.environment import PAGE_TOKEN_SECRET
from tools.bench.measure import Call
from tools.bench.seed import SEED_PASSWORD, Seeded

if TYPE_CHECKING:  # the async stub type exists only in the generated .pyi
    from biome.user.v1.user_service_pb2_grpc import UserServiceAsyncStub

PAGE_SIZE = 50
MAX_WORKERS = 16
REGISTERED_PASSWORD = "registered-bench-passphrase-3141"
# Seeded users reserved for sign-ins (one per worker, so concurrent sign-ins never race on a
# user item), for refresh chains, and for the sign-in load of the event-loop check.
SIGN_IN_USERS = range(0, MAX_WORKERS)
REFRESH_USERS = range(MAX_WORKERS, 2 * MAX_WORKERS)
LOOP_LOAD_USERS = range(2 * MAX_WORKERS, 3 * MAX_WORKERS)
RESERVED_USERS = 3 * MAX_WORKERS


class Calls:
    """The RPCs of every row, against the service's stub or the floor's (same method names)."""

    def __init__(
        self,
        service: UserServiceAsyncStub,
        floor: UserServiceAsyncStub,
        seeded: Seeded,
        *,
        rpc_timeout: float,
        seed: int | None,
        sign_ins: UserServiceAsyncStub | None = None,
    ) -> None:
        self._service, self._floor, self._seeded = service, floor, seeded
        # Where sign-ins go (refresh chains start with one): the service, unless the rows'
        # server has no Authenticate (the limit).
        self._sign_ins = sign_ins or service
        self._timeout = rpc_timeout
        self._random = random.Random(seed)
        self._page_tokens = PageTokenCodec(PAGE_TOKEN_SECRET.encode())
        self._registrations = itertools.count()
        self._run = uuid4().hex[:8]
        self._refresh_tokens: dict[int, str] = {}
        self.registered = 0

    def _any_user(self) -> int:
        # Reads skip the reserved users: they hold sessions, the others do not.
        first = min(RESERVED_USERS, len(self._seeded) - 1)
        return self._random.randrange(first, len(self._seeded))

    def floor_get_user(self, worker: int, iteration: int) -> Any:
        request = pb.GetUserRequest(id=self._seeded.ids[self._any_user()])
        return self._floor.GetUser(request, timeout=self._timeout)

    def floor_get_user_by_email(self, worker: int, iteration: int) -> Any:
        request = pb.GetUserByEmailRequest(email=self._seeded.emails[self._any_user()])
        return self._floor.GetUserByEmail(request, timeout=self._timeout)

    def get_user(self, worker: int, iteration: int) -> Any:
        request = pb.GetUserRequest(id=self._seeded.ids[self._any_user()])
        return self._service.GetUser(request, timeout=self._timeout)

    def get_user_by_email(self, worker: int, iteration: int) -> Any:
        request = pb.GetUserByEmailRequest(email=self._seeded.emails[self._any_user()])
        return self._service.GetUserByEmail(request, timeout=self._timeout)

    def get_jwks(self, worker: int, iteration: int) -> Any:
        return self._service.GetJwks(pb.GetJwksRequest(), timeout=self._timeout)

    def list_users(self, worker: int, iteration: int) -> Any:
        # A page that starts anywhere in the table (after a seeded user chosen at random), as a
        # caller paging through would reach it; the token is signed with the service's secret.
        after = UserId(self._seeded.ids[self._any_user()])
        request = pb.ListUsersRequest(
            page_size=PAGE_SIZE, page_token=self._page_tokens.encode(after)
        )
        return self._service.ListUsers(request, timeout=self._timeout)

    async def register_user(self, worker: int, iteration: int) -> None:
        number = next(self._registrations)
        request = pb.RegisterUserRequest(
            email=f"registered-{self._run}-{number}@bench.example.com",
            password=REGISTERED_PASSWORD,
            first_name="Registered",
            last_name=f"User {number}",
        )
        await self._service.RegisterUser(request, timeout=self._timeout)
        self.registered += 1

    def authenticate(self, worker: int, iteration: int) -> Any:
        return self._sign_in(SIGN_IN_USERS[worker % len(SIGN_IN_USERS)])

    def loop_load(self, worker: int, iteration: int) -> Any:
        return self._sign_in(LOOP_LOAD_USERS[worker % len(LOOP_LOAD_USERS)])

    def _sign_in(self, user: int) -> Any:
        request = pb.AuthenticateRequest(email=self._seeded.emails[user], password=SEED_PASSWORD)
        return self._sign_ins.Authenticate(request, timeout=self._timeout)

    async def open_refresh_chains(self, workers: int) -> None:
        """Signs in one reserved user per worker (not measured), for its chain of refreshes."""
        for worker in range(workers):
            if worker not in self._refresh_tokens:
                await self._restart_chain(worker)

    async def refresh_session(self, worker: int, iteration: int) -> None:
        # Each worker rotates its own session's token: no two refreshes race on one session.
        request = pb.RefreshSessionRequest(refresh_token=self._refresh_tokens.pop(worker))
        try:
            reply = await self._service.RefreshSession(request, timeout=self._timeout)
        except grpc.aio.AioRpcError:
            await self._restart_chain(worker)
            raise
        self._refresh_tokens[worker] = reply.refresh_token

    async def _restart_chain(self, worker: int) -> None:
        user = REFRESH_USERS[worker % len(REFRESH_USERS)]
        reply = await self._sign_in(user)
        self._refresh_tokens[worker] = reply.refresh_token


def row_calls(calls: Calls) -> dict[str, Call]:
    """Every row's call, by row name, in the order of the table."""
    return {
        "floor": calls.floor_get_user,
        "floor (guard + user)": calls.floor_get_user_by_email,
        "GetUser": calls.get_user,
        "GetUserByEmail": calls.get_user_by_email,
        "ListUsers": calls.list_users,
        "RegisterUser": calls.register_user,
        "Authenticate": calls.authenticate,
        "RefreshSession": calls.refresh_session,
    }
