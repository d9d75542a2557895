"""`user-service health` exits 0 only on SERVING, checked against a grpc_testing channel."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import grpc_testing
import pytest
from grpc_health.v1 import health_pb2

from server.cli import EXIT_FAILURE, EXIT_OK, check_health

CHECK = health_pb2.DESCRIPTOR.services_by_name["Health"].methods_by_name["Check"]


def answer_health_check(
    reply: health_pb2.HealthCheckResponse | None, code: grpc.StatusCode
) -> tuple[int, health_pb2.HealthCheckRequest]:
    channel = grpc_testing.channel(
        health_pb2.DESCRIPTOR.services_by_name.values(), grpc_testing.strict_real_time()
    )
    with ThreadPoolExecutor(max_workers=1) as pool:
        exit_code = pool.submit(check_health, channel, "test")
        _, request, rpc = channel.take_unary_unary(CHECK)
        rpc.terminate(reply or health_pb2.HealthCheckResponse(), (), code, "")
        return exit_code.result(timeout=5), request


def test_health_command_exits_0_when_serving(capsys: pytest.CaptureFixture[str]) -> None:
    exit_code, request = answer_health_check(
        health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING),
        grpc.StatusCode.OK,
    )
    assert (exit_code, request.service) == (EXIT_OK, "")
    assert capsys.readouterr().out.strip() == "SERVING"


def test_health_command_exits_1_when_not_serving(capsys: pytest.CaptureFixture[str]) -> None:
    exit_code, _ = answer_health_check(
        health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.NOT_SERVING),
        grpc.StatusCode.OK,
    )
    assert exit_code == EXIT_FAILURE
    assert capsys.readouterr().out.strip() == "NOT_SERVING"


def test_health_command_exits_1_with_one_line_when_the_call_fails(
    capsys: pytest.CaptureFixture[str],
) -> None:
    exit_code, _ = answer_health_check(None, grpc.StatusCode.UNAVAILABLE)
    assert exit_code == EXIT_FAILURE
    assert (
        capsys.readouterr().err.strip() == "user-service: health check of test failed: UNAVAILABLE"
    )
