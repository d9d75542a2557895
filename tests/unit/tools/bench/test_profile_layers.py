"""The profile's grouping by layer: py-spy's collapsed stacks and cProfile's statistics."""

from __future__ import annotations

import cProfile
import json
import pstats
import sysconfig
from pathlib import Path

import pytest

from tools.bench.processes import ROOT
from tools.bench.profile_layers import (
    EVENT_LOOP,
    LAYER_NAMES,
    OTHER,
    THREADS,
    breakdown_of_pstats,
    breakdown_of_stacks,
    layer_of,
    module_path,
    parse_collapsed,
)

STDLIB = sysconfig.get_paths()["stdlib"]
SITE = "/venv/lib/python3.11/site-packages"
LOG_LAYER = "access log, request id & metrics"
SIGNING = "aiobotocore: SigV4 signing"
BOTOCORE_REST = "aiobotocore: the rest (serialising, endpoint rules, events, retries)"
MAPPING = "handler & mapping (servicer, items, domain values, protobuf)"


def frame(function: str, path: str, line: int = 1) -> str:
    return f"{function} ({path}:{line})"


LOOP = [
    frame("<module>", f"{ROOT}/server/__main__.py"),
    frame("main", f"{ROOT}/server/cli.py"),
    frame("BaseEventLoop._run_once", f"{STDLIB}/asyncio/base_events.py"),
    frame("Handle._run", f"{STDLIB}/asyncio/events.py"),
]
SERVICER = [*LOOP, frame("UserServiceServicer.GetUser", f"{ROOT}/server/servicer.py")]
SIGN = frame("SigV4Auth.add_auth", f"{SITE}/botocore/auth.py")
DUMPS = frame("dumps", f"{STDLIB}/json/__init__.py")
SERIALIZE = frame("JSONSerializer.serialize_to_request", f"{SITE}/botocore/serialize.py")
ACCESS_LINE = frame("Logger.log", f"{STDLIB}/logging/__init__.py")
POLLER = [
    frame("Thread._bootstrap", f"{STDLIB}/threading.py"),
    frame("Thread.run", f"{STDLIB}/threading.py"),
]


def collapsed(*stacks: tuple[list[str], int]) -> str:
    return "".join(f"{';'.join(stack)} {count}\n" for stack, count in stacks)


@pytest.mark.parametrize(
    ("path", "module", "layer"),
    [
        (f"{SITE}/botocore/auth.py", "botocore/auth.py", SIGNING),
        (f"{SITE}/botocore/serialize.py", "botocore/serialize.py", BOTOCORE_REST),
        (f"{SITE}/aiohttp/client.py", "aiohttp/client.py", "aiobotocore: HTTP (aiohttp)"),
        (f"{SITE}/jwt/api_jwt.py", "jwt/api_jwt.py", "PyJWT & crypto"),
        (f"{ROOT}/server/servicer.py", "server/servicer.py", MAPPING),
        (f"{ROOT}/persistence/user_mapper.py", "persistence/user_mapper.py", MAPPING),
        (
            f"{ROOT}/persistence/unit_of_work.py",
            "persistence/unit_of_work.py",
            "unit of work, repositories & their botocore hooks",
        ),
        (
            f"{ROOT}/domain/use_cases/accounts.py",
            "domain/use_cases/accounts.py",
            "use cases & domain",
        ),
        (
            f"{ROOT}/server/interceptors/observed_calls.py",
            "server/interceptors/observed_calls.py",
            LOG_LAYER,
        ),
        (
            f"{ROOT}/server/interceptors/caller_auth.py",
            "server/interceptors/caller_auth.py",
            "gRPC (Python parts) & other interceptors",
        ),
        (f"{STDLIB}/logging/__init__.py", "std:logging/__init__.py", LOG_LAYER),
        (f"{STDLIB}/json/encoder.py", "std:json/encoder.py", None),
        (f"{ROOT}/server/cli.py", "server/cli.py", None),  # on every stack: no layer's
        ("~", "builtin:", None),
        ("/somewhere/else.py", "/somewhere/else.py", OTHER),
    ],
)
def test_each_file_has_its_layer(path: str, module: str, layer: str | None) -> None:
    assert module_path(path) == module
    assert layer_of(module) == layer


def test_collapsed_stacks_are_read_root_first_with_their_counts() -> None:
    stacks = parse_collapsed(collapsed(([*SERVICER, SIGN], 3), ([*LOOP], 2)) + "garbage\n")

    (signing, count), (loop, loop_count) = stacks.most_common()
    assert count == 3 and loop_count == 2
    assert signing[0] == ("<module>", "server/__main__.py")
    assert signing[-1] == ("SigV4Auth.add_auth", "botocore/auth.py")
    assert loop[-1] == ("Handle._run", "std:asyncio/events.py")


def test_each_sample_goes_to_the_innermost_layer_the_standard_library_to_its_caller() -> None:
    stacks = parse_collapsed(
        collapsed(
            ([*SERVICER, SIGN], 20),  # signing
            ([*SERVICER, SERIALIZE, DUMPS], 30),  # json.dumps for botocore: botocore's
            ([*SERVICER, ACCESS_LINE, DUMPS], 10),  # logging is the access log's
            ([*SERVICER], 15),  # the servicer's own
            (LOOP, 20),  # the loop running what no profiler sees (gRPC's Cython)
            (POLLER, 5),  # another thread
        )
    )

    breakdown = breakdown_of_stacks(stacks)

    layers = {share.name: share for share in breakdown.layers}
    assert [share.name for share in breakdown.layers] == list(LAYER_NAMES)
    assert breakdown.samples == 100 and breakdown.unit == "samples"
    assert layers[SIGNING].self_percent == 20.0
    assert layers[BOTOCORE_REST].self_percent == 30.0
    assert layers[LOG_LAYER].self_percent == 10.0
    assert layers[MAPPING].self_percent == 15.0
    assert layers[MAPPING].inclusive_percent == 75.0  # the servicer was under all of those
    assert layers[EVENT_LOOP].self_percent == 20.0
    assert layers[THREADS].self_percent == 5.0
    assert sum(share.self_percent for share in breakdown.layers) == pytest.approx(100.0)
    top_self = {share.name: share.self_percent for share in breakdown.top_self}
    assert top_self["dumps (json/__init__.py)"] == 40.0
    top_inclusive = {share.name: share.inclusive_percent for share in breakdown.top_inclusive}
    assert top_inclusive["UserServiceServicer.GetUser (server/servicer.py)"] == 75.0
    assert not any("cli.py" in name or "asyncio" in name for name in top_inclusive)


def _work() -> str:
    return json.dumps({"numbers": list(range(2_000))})


def test_cprofile_statistics_are_grouped_the_same_way(tmp_path: Path) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(200):
        _work()
    profiler.disable()
    profiler.dump_stats(tmp_path / "stats")

    breakdown = breakdown_of_pstats(pstats.Stats(str(tmp_path / "stats")).stats)  # type: ignore[attr-defined]

    layers = {share.name: share for share in breakdown.layers}
    assert breakdown.unit == "calls" and breakdown.samples > 200
    # This test file is outside every layer: json.dumps's time, called from it, is "other".
    assert layers[OTHER].self_percent > 90
    assert sum(share.self_percent for share in breakdown.layers) == pytest.approx(100, abs=0.5)
    top_self = [share.name for share in breakdown.top_self]
    assert any(name.startswith("dumps (json") or "encode" in name for name in top_self[:3])


def test_what_starts_the_process_and_its_loop_is_no_layer_even_in_a_layer_file() -> None:
    # The limit's main() is in tools/bench/limit.py, whose handlers are the handler layer.
    limit_main = frame("main", f"{ROOT}/tools/bench/limit.py")
    handler = frame("Limit.get_user", f"{ROOT}/tools/bench/limit.py")
    loop = [limit_main, *LOOP[2:]]
    stacks = parse_collapsed(collapsed((loop, 6), ([*loop, handler], 4)))

    layers = {share.name: share for share in breakdown_of_stacks(stacks).layers}

    assert layers[EVENT_LOOP].self_percent == 60.0
    assert layers[MAPPING].self_percent == 40.0
    assert layers[MAPPING].inclusive_percent == 40.0
