"""The client kit's service config names only RPCs the service has and retries only where a
repeat changes nothing; every RPC but the event stream gets a default deadline."""

from __future__ import annotations

from biome.user.v1 import user_service_pb2
from user_service_client import channel

METHODS = {
    method.name: method
    for method in user_service_pb2.DESCRIPTOR.services_by_name["UserService"].methods
}


def configs_naming(method: str) -> list[dict[str, object]]:
    """The method configs naming ``method`` itself (the service-wide one names no method)."""
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
        assert channel.default_timeout(f"/{channel.SERVICE}/{name}") is None
        assert configs_naming(name) == []  # only the service-wide config, which retries nothing


def test_every_unary_method_has_a_deadline_longest_for_hashing_shortest_for_reads() -> None:
    timeouts = {name: channel.default_timeout(f"/{channel.SERVICE}/{name}") for name in METHODS}

    assert {timeouts[name] for name in channel.RETRIED_READS} == {channel.READ_TIMEOUT_SECONDS}
    assert {timeouts[name] for name in channel.HASHING} == {channel.HASHING_TIMEOUT_SECONDS}
    assert timeouts["UpdateProfile"] == channel.WRITE_TIMEOUT_SECONDS
    assert channel.READ_TIMEOUT_SECONDS < channel.WRITE_TIMEOUT_SECONDS
    assert channel.WRITE_TIMEOUT_SECONDS < channel.HASHING_TIMEOUT_SECONDS


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
