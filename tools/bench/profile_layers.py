"""A profile of the service grouped by layer: py-spy's sampled stacks, or cProfile's statistics.

Every function is put in one layer by the file it lives in (``layer_of``). The standard library
is transparent: its time is the caller's (``json.dumps`` called by botocore's serialiser is
botocore's), except ``logging``, which is the access log's, and the event loop's own frames,
which are what is left when no layer's frame is on the stack. gRPC's server is Cython and its
core C, neither seen by a Python profiler: their time shows as the event loop's (and, for the
thread that polls gRPC's completion queue, as another thread's).

Two views per layer:
- *self*: each sample (or each function's own time) given to the innermost layer on its stack;
  the layers' self shares add up to 100 %.
- *inclusive*: the samples with any frame of the layer on the stack (what the layer and
  everything it calls cost); they overlap.
"""

from __future__ import annotations

import sysconfig
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.bench.processes import ROOT

EVENT_LOOP = "event loop & gRPC core (Cython/C, unseen)"
THREADS = "other threads (gRPC's poller, in C)"
OTHER = "other"
# (layer, prefixes of the module path: "botocore/auth.py", "server/servicer.py", "std:logging/...")
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "access log, request id & metrics",
        (
            "server/interceptors/observed_calls.py",
            "server/interceptors/request_id.py",
            "server/operations/",
            "std:logging/",
            "prometheus_client/",
            "pythonjsonlogger/",
        ),
    ),
    (
        "gRPC (Python parts) & other interceptors",
        ("grpc/", "grpc_health/", "grpc_reflection/", "server/interceptors/"),
    ),
    (
        "handler & mapping (servicer, items, domain values, protobuf)",
        (
            "tools/bench/limit.py",
            "tools/bench/bare_server.py",
            "server/servicer.py",
            "server/pb_mapping.py",
            "persistence/user_mapper.py",
            "persistence/session_mapper.py",
            "persistence/event_mapper.py",
            "persistence/item_upgrades.py",
            "google/protobuf/",
            "domain/values.py",
        ),
    ),
    ("use cases & domain", ("domain/",)),
    ("unit of work, repositories & their botocore hooks", ("persistence/",)),
    ("PyJWT & crypto", ("jwt/", "cryptography/", "server/crypto/")),
    ("server: status mapping & the rest", ("server/",)),
    (
        "aiobotocore: SigV4 signing",
        (
            "botocore/auth.py",
            "botocore/signers.py",
            "aiobotocore/signers.py",
            "botocore/credentials.py",
            "aiobotocore/credentials.py",
        ),
    ),
    (
        "aiobotocore: response parsing",
        (
            "botocore/parsers.py",
            "aiobotocore/parsers.py",
            "botocore/response.py",
            "aiobotocore/response.py",
        ),
    ),
    (
        "aiobotocore: HTTP (aiohttp)",
        (
            "aiohttp/",
            "aiobotocore/httpsession.py",
            "aiobotocore/_endpoint_helpers.py",
            "aiobotocore/httpchecksum.py",
            "multidict/",
            "yarl/",
            "aiohappyeyeballs/",
        ),
    ),
    (
        "aiobotocore: the rest (serialising, endpoint rules, events, retries)",
        ("aiobotocore/", "botocore/", "jmespath/", "dateutil/", "urllib3/", "wrapt/"),
    ),
)
LAYER_NAMES = (*(name for name, _ in LAYERS), EVENT_LOOP, THREADS, OTHER)
BUILTIN = "builtin:"
# Modules whose time is their callers': the standard library, functions in C, and the frames
# that start the process and its event loop (on every stack, so no layer of their own).
ENTRY_FRAMES = (
    "<frozen ",
    "server/__main__.py",
    "server/cli.py",
    "server/app.py",
    "tools/bench/profiled_service.py",
)
TRANSPARENT = ("std:", BUILTIN, *ENTRY_FRAMES)
_STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()
_ROOT = str(ROOT) + "/"


def module_path(path: str) -> str:
    """Where a file is, as the layers name it: "botocore/auth.py" (an installed package),
    "server/servicer.py" (this repository), "std:json/encoder.py" (the standard library),
    "builtin:" (a function in C: cProfile's "~")."""
    if path == "~":
        return BUILTIN
    if "site-packages/" in path:
        return path.rpartition("site-packages/")[2]
    if path.startswith(_ROOT):
        return path[len(_ROOT) :]
    try:
        return "std:" + str(Path(path).resolve().relative_to(_STDLIB))
    except ValueError:
        return path


def layer_of(module: str) -> str | None:
    """The layer a module path belongs to; None for TRANSPARENT ones (the standard library)."""
    if module.startswith(ENTRY_FRAMES):
        return None
    for name, prefixes in LAYERS:
        if module.startswith(prefixes):
            return name
    if module.startswith(TRANSPARENT):
        return None
    return OTHER


@dataclass(frozen=True)
class Share:
    """One line of a profile table: a layer or a function, with its part of the CPU."""

    name: str
    self_percent: float
    inclusive_percent: float

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "self_percent": self.self_percent,
            "inclusive_percent": self.inclusive_percent,
        }


@dataclass(frozen=True)
class Breakdown:
    """A profile grouped by layer, and its functions with the most self and inclusive time."""

    samples: int  # py-spy's samples, or cProfile's function calls
    unit: str  # "samples" or "calls"
    layers: list[Share]  # every layer, in LAYER_NAMES order
    top_self: list[Share]
    top_inclusive: list[Share]  # functions of a layer (not the standard library's)

    def as_json(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "unit": self.unit,
            "layers": [share.as_json() for share in self.layers],
            "top_self": [share.as_json() for share in self.top_self],
            "top_inclusive": [share.as_json() for share in self.top_inclusive],
        }


Frame = tuple[str, str]  # (function, module path)


def parse_collapsed(text: str) -> Counter[tuple[Frame, ...]]:
    """py-spy's ``--format raw`` output ("frame;frame;... count", frames as
    "function (path:line)", the root first) as stacks of (function, module path)."""
    stacks: Counter[tuple[Frame, ...]] = Counter()
    for line in text.splitlines():
        stack_text, _, count = line.rpartition(" ")
        if not stack_text or not count.isdigit():
            continue
        frames = []
        for frame in stack_text.split(";"):
            function, _, where = frame.rpartition(" (")
            path = where.rstrip(")").rpartition(":")[0] or where.rstrip(")")
            frames.append((function or frame, module_path(path)))
        stacks[tuple(frames)] += int(count)
    return stacks


def _function_name(frame: Frame) -> str:
    if frame[1] == BUILTIN:
        return frame[0]
    return f"{frame[0]} ({frame[1].removeprefix('std:')})"


def breakdown_of_stacks(stacks: Mapping[tuple[Frame, ...], int], *, top: int = 15) -> Breakdown:
    """Layers and functions of sampled stacks (each stack root first, with its sample count)."""
    total = sum(stacks.values())
    layer_self: defaultdict[str, float] = defaultdict(float)
    layer_inclusive: defaultdict[str, float] = defaultdict(float)
    function_self: defaultdict[str, float] = defaultdict(float)
    function_inclusive: defaultdict[str, float] = defaultdict(float)
    for whole_stack, count in stacks.items():
        stack = _from_the_loop(whole_stack)
        layers = [layer_of(module) for _, module in stack]
        innermost = next((layer for layer in reversed(layers) if layer is not None), None)
        if innermost is None:
            innermost = _unseen(module for _, module in stack)
        layer_self[innermost] += count
        for layer in {layer for layer in layers if layer is not None} | {innermost}:
            layer_inclusive[layer] += count
        if stack:
            function_self[_function_name(stack[-1])] += count
        for name in {
            _function_name(frame) for frame, layer in zip(stack, layers, strict=True) if layer
        }:
            function_inclusive[name] += count
    return _breakdown(
        total,
        layer_self,
        layer_inclusive,
        function_self,
        function_inclusive,
        top=top,
        samples=total,
        unit="samples",
    )


# pstats' raw statistics: (file, line, function) -> (primitive calls, calls, own time,
# cumulative time, {caller: (primitive calls, calls, own time, cumulative time)})
Func = tuple[str, int, str]
PStats = Mapping[Func, tuple[int, int, float, float, Mapping[Func, tuple[int, int, float, float]]]]
_MAX_CALLER_DEPTH = 8


def breakdown_of_pstats(stats: PStats, *, top: int = 15) -> Breakdown:
    """Layers and functions of cProfile's statistics (``pstats.Stats(...).stats``).

    A function's own time is its layer's; a standard-library function's goes to its callers'
    layers in proportion to the time each call site accounts for (up the callers until a layer
    is found). A layer's inclusive time is the cumulative time of the calls that enter it from
    outside it (or from nowhere: the event loop's callbacks).
    """
    total = sum(entry[2] for entry in stats.values())
    modules = {func: module_path(func[0]) for func in stats}
    layer_self: defaultdict[str, float] = defaultdict(float)
    layer_inclusive: defaultdict[str, float] = defaultdict(float)
    function_self: defaultdict[str, float] = defaultdict(float)
    function_inclusive: defaultdict[str, float] = defaultdict(float)
    for func, (_, _calls, own, cumulative, callers) in stats.items():
        name = _function_name((func[2], modules[func]))
        function_self[name] += own
        if layer_of(modules[func]) is not None:
            function_inclusive[name] += cumulative
        for owner, part in _owners(func, own, stats, modules, depth=0):
            layer_self[owner] += part
        own_layer = layer_of(modules[func])
        if own_layer is None:
            continue
        entering = [
            entry[3]
            for caller, entry in callers.items()
            if layer_of(modules.get(caller, caller[0])) != own_layer
        ]
        layer_inclusive[own_layer] += sum(entering) if callers else cumulative
    layer_inclusive[EVENT_LOOP] = max(layer_inclusive[EVENT_LOOP], layer_self[EVENT_LOOP])
    return _breakdown(
        total,
        layer_self,
        layer_inclusive,
        function_self,
        function_inclusive,
        top=top,
        samples=sum(entry[1] for entry in stats.values()),
        unit="calls",
    )


def _owners(
    func: Func, own: float, stats: PStats, modules: Mapping[Func, str], *, depth: int
) -> Iterable[tuple[str, float]]:
    """The layers that ``own`` seconds of ``func``'s time belong to, and how much to each."""
    module = modules.get(func, func[0])
    layer = layer_of(module)
    if layer is not None:
        yield layer, own
        return
    callers = stats[func][4] if func in stats else {}
    weights = {caller: entry[3] for caller, entry in callers.items() if entry[3] > 0}
    if depth >= _MAX_CALLER_DEPTH or not weights:
        yield _unseen([module]), own
        return
    whole = sum(weights.values())
    for caller, weight in weights.items():
        if caller == func:
            continue
        yield from _owners(caller, own * weight / whole, stats, modules, depth=depth + 1)


def _from_the_loop(stack: tuple[Frame, ...]) -> tuple[Frame, ...]:
    """The stack from the event loop's ``_run_once`` on: what starts the process and the loop
    (the service's ``main``, the limit's, asyncio.run) is on every stack and no layer's cost."""
    at = [index for index, frame in enumerate(stack) if frame in _LOOP_FRAMES]
    return stack[at[-1] :] if at else stack


_LOOP_FRAMES = {
    ("BaseEventLoop._run_once", "std:asyncio/base_events.py"),
    ("_run_once", "std:asyncio/base_events.py"),
}


def _unseen(modules: Iterable[str]) -> str:
    """Whose time it is when no layer's frame is on the stack: the event loop's (running what
    the profiler cannot see) or another thread's."""
    seen = list(modules)
    if any(module.startswith("std:asyncio/") for module in seen):
        return EVENT_LOOP
    if any(module == "std:threading.py" for module in seen):
        return THREADS
    return OTHER


def _breakdown(
    total: float,
    layer_self: Mapping[str, float],
    layer_inclusive: Mapping[str, float],
    function_self: Mapping[str, float],
    function_inclusive: Mapping[str, float],
    *,
    top: int,
    samples: int,
    unit: str,
) -> Breakdown:
    def percent(value: float) -> float:
        return round(100 * value / total, 1) if total > 0 else 0.0

    def shares(by: Mapping[str, float]) -> list[Share]:
        names = sorted(by, key=lambda name: by[name], reverse=True)[:top]
        return [
            Share(
                name,
                percent(function_self.get(name, 0.0)),
                percent(function_inclusive.get(name, 0.0)),
            )
            for name in names
        ]

    return Breakdown(
        samples=samples,
        unit=unit,
        layers=[
            Share(name, percent(layer_self.get(name, 0.0)), percent(layer_inclusive.get(name, 0.0)))
            for name in LAYER_NAMES
        ],
        top_self=shares(function_self),
        top_inclusive=shares(function_inclusive),
    )
