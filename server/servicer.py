"""The UserService RPCs: each turns its request into a use case call and the result into a reply."""

from __future__ import annotations

from biome.user.v1 import user_service_pb2 as pb
from biome.user.v1 import user_service_pb2_grpc
from grpc.aio import ServicerContext as Context

from domain import use_cases
from domain.page_tokens import PageTokenCodec
from domain.ports import Clock, PasswordHasher, UnitOfWorkFactory
from server.messages import user_to_pb, users_page_to_pb


class UserServiceServicer(user_service_pb2_grpc.UserServiceServicer):
    """Thin adapter from gRPC to domain.use_cases; domain errors are mapped by server.status."""

    def __init__(
        self,
        *,
        uow_factory: UnitOfWorkFactory,
        hasher: PasswordHasher,
        clock: Clock,
        page_tokens: PageTokenCodec,
    ) -> None:
        self._uow = uow_factory
        self._hasher = hasher
        self._clock = clock
        self._page_tokens = page_tokens

    async def RegisterUser(
        self, request: pb.RegisterUserRequest, context: Context[pb.RegisterUserRequest, pb.User]
    ) -> pb.User:
        user = await use_cases.register_user(
            self._uow(),
            self._hasher,
            self._clock,
            email=request.email,
            password=request.password,
            first_name=request.first_name,
            last_name=request.last_name,
        )
        return user_to_pb(user)

    async def GetUser(
        self, request: pb.GetUserRequest, context: Context[pb.GetUserRequest, pb.User]
    ) -> pb.User:
        return user_to_pb(await use_cases.get_user(self._uow(), user_id=request.id))

    async def GetUserByEmail(
        self, request: pb.GetUserByEmailRequest, context: Context[pb.GetUserByEmailRequest, pb.User]
    ) -> pb.User:
        return user_to_pb(await use_cases.get_user_by_email(self._uow(), email=request.email))

    async def UpdateProfile(
        self, request: pb.UpdateProfileRequest, context: Context[pb.UpdateProfileRequest, pb.User]
    ) -> pb.User:
        user = await use_cases.update_profile(
            self._uow(),
            self._clock,
            user_id=request.id,
            first_name=request.first_name if request.HasField("first_name") else None,
            last_name=request.last_name if request.HasField("last_name") else None,
            expected_version=request.expected_version,
        )
        return user_to_pb(user)

    async def ListUsers(
        self,
        request: pb.ListUsersRequest,
        context: Context[pb.ListUsersRequest, pb.ListUsersResponse],
    ) -> pb.ListUsersResponse:
        page = await use_cases.list_users(
            self._uow(),
            self._page_tokens,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return users_page_to_pb(page)

    async def DeleteUser(
        self,
        request: pb.DeleteUserRequest,
        context: Context[pb.DeleteUserRequest, pb.DeleteUserResponse],
    ) -> pb.DeleteUserResponse:
        await use_cases.delete_user(
            self._uow(), self._clock, user_id=request.id, expected_version=request.expected_version
        )
        return pb.DeleteUserResponse()
