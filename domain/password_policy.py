"""NIST SP 800-63B checks on a new password: length (in Password.parse), no common or context words.

The bundled list is Django's 20,000 most common passwords (BSD-3-Clause, from Royce
Williams' list); it is read once, on first use.
"""

from __future__ import annotations

import functools
import gzip
from importlib import resources

from domain.errors import InvalidValue
from domain.values import Email, Password

_LIST = "common_passwords.txt.gz"


@functools.cache
def common_passwords() -> frozenset[str]:
    data = resources.files("domain").joinpath(_LIST).read_bytes()
    lines = gzip.decompress(data).decode().splitlines()
    return frozenset(line.strip().casefold() for line in lines if line.strip())


def check_new_password(password: Password, *, email: Email) -> None:
    """Refuse a password attackers try first: a common one, or the account's own address."""
    folded = password.value.casefold()
    if folded in common_passwords():
        raise InvalidValue("is too common; choose a password that is not on lists of common ones")
    local_part = email.normalized.rpartition("@")[0]
    if folded in {email.normalized, local_part}:
        raise InvalidValue("must not be your email address")
