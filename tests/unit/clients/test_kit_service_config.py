"""The client kit's service config names only RPCs the service has, retries only where a repeat
changes nothing, and gives every RPC a deadline but the event stream."""

from __future__ import annotations

from biome.user.v1 import user_service_pb2
from user_service_client import channel

METHODS = {
    method.name: method
    for method in user_service_pb2.DESCRIPTOR.services_by_name["UserService"].methods
}


def configs_naming(method: str) -> list[dict[str, object]]:
    return [
        config
        for config in channel.service_config()["methodConfig"]
        if {"service": channel.SERVICE, "method": method} in config["name"]
    ]


def test_every_method_the_config_names_exists_and_is_named_once() -> None:
    named = [*channel.RETRIED_READS, *channel.RETRIED_WRITES, *channel.HASHING, *channel.STREAMS]

    assert sorted(set(named)) == sorted(named)
    assert set(named) <= set(METHODS)


def test_streams_are_the_streaming_methods_and_have_no_deadline_nor_retry() -> None:
    streaming = {name for name, method in METHODS.items() if method.server_streaming}

    assert set(channel.STREAMS) == streaming
    for name in streaming:
        (config,) = configs_naming(name)
        assert "timeout" not in config and "retryPolicy" not in config


def test_only_reads_and_idempotent_writes_are_retried_and_only_on_unavailable() -> None:
    retried = {
        entry["method"]
        for config in channel.service_config()["methodConfig"]
        if "retryPolicy" in config
        for entry in config["name"]
    }

    assert retried == {*channel.RETRIED_READS, *channel.RETRIED_WRITES}
    assert not retried & {"RegisterUser", "Authenticate", "RefreshSession", "UpdateProfile"}
    assert channel.RETRY_POLICY["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert 2 <= channel.RETRY_POLICY["maxAttempts"] <= 5  # gRPC caps it at 5
