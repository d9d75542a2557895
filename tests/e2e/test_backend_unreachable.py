"""With DynamoDB out of reach the service stays up, says NOT_SERVING, and answers UNAVAILABLE with retry advice."""

from __future__ import annotations

import grpc
from biome.user.v1 import user_service_pb2 as pb
from biome.user.v1 import user_service_pb2_grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from server.app import running_service
from tests.conftest import free_port
from tests.e2e.harness import rpc_error, service_settings


async def test_rpcs_fail_unavailable_with_retry_info_while_dynamodb_cannot_be_reached() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    settings = service_settings(closed).model_copy(
        update={
            "ensure_tables_created": False,
            "dynamodb_connect_timeout": 0.5,
            "dynamodb_max_attempts": 1,
        }
    )
    async with running_service(settings, address="127.0.0.1:0") as running:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest()
            )
            assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING

            stub = user_service_pb2_grpc.UserServiceStub(channel)
            error = await rpc_error(
                stub.GetUserByEmail(pb.GetUserByEmailRequest(email="ada@example.com"))
            )
            assert error.code() is grpc.StatusCode.UNAVAILABLE
            status = rpc_status.from_call(error)  # type: ignore[arg-type]
            assert status is not None
            assert any(
                detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for detail in status.details
            )
            assert "127.0.0.1" not in (error.details() or "")

            registration = await rpc_error(
                stub.RegisterUser(
                    pb.RegisterUserRequest(
                        email="ada@example.com",
                        password="correct horse battery",
                        first_name="Ada",
                        last_name="L",
                    )
                )
            )
            assert registration.code() is grpc.StatusCode.UNAVAILABLE
