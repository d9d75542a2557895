"""The workload's mix: a weight per RPC, read from ``Name=weight,...`` over the defaults."""

from __future__ import annotations

import random
from dataclasses import dataclass

METHODS = (
    "RegisterUser",
    "Authenticate",
    "RefreshSession",
    "GetUser",
    "GetUserByEmail",
    "UpdateProfile",
    "ListUsers",
    "ChangePassword",
    "Logout",
)

# Percentages. Reads weigh most: RegisterUser, Authenticate and ChangePassword each spend an
# argon2id hash (tens of ms of one core at the service's defaults), and every write is a
# DynamoDB transaction, both of which would otherwise dominate a small machine.
DEFAULT_WEIGHTS: dict[str, int] = {
    "RegisterUser": 5,
    "Authenticate": 4,
    "RefreshSession": 10,
    "GetUser": 35,
    "GetUserByEmail": 26,
    "UpdateProfile": 12,
    "ListUsers": 3,
    "ChangePassword": 1,
    "Logout": 4,
}


@dataclass(frozen=True)
class Mix:
    """How often each RPC is chosen, relative to the others (0: never)."""

    weights: dict[str, int]

    def pick(self, rng: random.Random) -> str:
        names = [name for name in METHODS if self.weights.get(name, 0) > 0]
        return rng.choices(names, weights=[self.weights[name] for name in names])[0]

    def describe(self) -> str:
        return ",".join(f"{name}={self.weights[name]}" for name in METHODS)


def parse_mix(text: str) -> Mix:
    """The default weights, with the comma-separated ``Name=weight`` pairs in ``text`` instead."""
    weights = dict(DEFAULT_WEIGHTS)
    for pair in filter(None, (part.strip() for part in text.split(","))):
        name, equals, value = pair.partition("=")
        if name not in weights:
            raise ValueError(f"unknown RPC {name!r} in the mix; known: {', '.join(METHODS)}")
        if not equals or not value.strip().isdigit():
            raise ValueError(f"{pair!r}: expected {name}=WEIGHT with WEIGHT a whole number >= 0")
        weights[name] = int(value)
    if weights["RegisterUser"] == 0:
        raise ValueError("RegisterUser must keep a weight above 0: every other RPC needs users")
    return Mix(weights)
