"""Password hashes made by other systems: which format a stored hash is in, whether it can be
kept (well formed, and cheap enough to check at sign-in), and checking a password against it.

Formats, told apart by shape alone:

- ``argon2id`` / ``argon2``: the PHC strings argon2-cffi writes (``$argon2id$v=19$m=,t=,p=$``).
  ``identify`` calls every ``$argon2id$`` hash ARGON2ID and ``$argon2i$`` ARGON2; given today's
  parameters, an argon2id hash weaker than them is ARGON2 (argon2id "of other parameters").
- ``aspnet-identity-v2`` / ``-v3``: the base64 text AspNetUsers.PasswordHash holds. V2 is the
  marker byte 0x00, a 16-byte salt and a 32-byte PBKDF2-HMAC-SHA1 subkey (1,000 iterations);
  V3 is 0x01, then big-endian uint32 PRF (0 SHA-1, 1 SHA-256, 2 SHA-512), iteration count and
  salt length, the salt, and the subkey (the rest, at least 16 bytes).
- ``bcrypt``: ``$2a$``, ``$2b$``, ``$2y$`` with a two-digit cost.
- ``pbkdf2``: passlib's ``$pbkdf2-sha256$ROUNDS$SALT$HASH`` (and ``-sha512``; salt and hash in
  passlib's adapted base64, ``.`` for ``+``, no padding, the salt used as its decoded bytes),
  the PHC form ``$pbkdf2-sha256$i=ROUNDS[,l=LENGTH]$SALT$HASH`` (base64 without padding), and
  Django's ``pbkdf2_sha256$ROUNDS$SALT$HASH`` (the salt used as its text, the hash in base64).
- ``scrypt``: passlib's ``$scrypt$ln=LOG2N,r=R,p=P$SALT$HASH`` (base64 without padding).

Nothing here logs or keeps a password or a hash; messages name the format and the fault only.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import re
from dataclasses import dataclass
from typing import ClassVar

from argon2 import Parameters, Type, extract_parameters
from argon2.exceptions import InvalidHashError


class HashFormat(enum.StrEnum):
    ARGON2ID = "argon2id"
    ARGON2 = "argon2"
    ASPNET_V2 = "aspnet-identity-v2"
    ASPNET_V3 = "aspnet-identity-v3"
    BCRYPT = "bcrypt"
    PBKDF2 = "pbkdf2"
    SCRYPT = "scrypt"


class UnusableHash(ValueError):
    """A stored hash that cannot be kept: its message names the format and the fault (never
    the hash), fit for a line of an import report."""


# Ceilings that keep one verification under about a second on one core (measured figures in
# the README). A hash above them is refused at import and never checked at sign-in.
MAX_PBKDF2_ITERATIONS = 1_000_000
MAX_BCRYPT_COST = 14
MAX_SCRYPT_WORK = 2**21  # N * r * p, in 128-byte blocks mixed: ln=16,r=8,p=4 or ln=17,r=8,p=2
MAX_SCRYPT_MEMORY = 2**28  # 128 * N * r bytes: 256 MiB
MAX_ARGON2_MEMORY_KIB = 262_144  # 256 MiB
MAX_ARGON2_WORK_KIB = 1_048_576  # memory x passes: 256 MiB x 4 passes, 64 MiB x 16
MAX_ARGON2_PARALLELISM = 16

# Below these a hash is a fault (ASP.NET Identity refuses the same), not just weak.
MIN_SALT_BYTES = 8
MIN_SUBKEY_BYTES = 16
MAX_STORED_CHARS = 1024

_ASPNET_V2_ITERATIONS = 1000
_ASPNET_V2_SALT = 16
_ASPNET_V2_SUBKEY = 32
_ASPNET_V3_PRFS = {0: "sha1", 1: "sha256", 2: "sha512"}
_ASPNET_V3_MIN_SALT = 16  # ASP.NET Identity's own floor: 128 bits of salt and of subkey

_BCRYPT = re.compile(r"\$(2[aby])\$(\d\d)\$([./A-Za-z0-9]{53})")
_PBKDF2_PHC = re.compile(
    r"\$pbkdf2-(sha256|sha512)\$(?:(\d{1,10})|i=(\d{1,10})(?:,l=(\d{1,4}))?)"
    r"\$([./+A-Za-z0-9]*)\$([./+A-Za-z0-9]+)"
)
_DJANGO_PBKDF2 = re.compile(r"pbkdf2_sha256\$(\d{1,10})\$([^$]+)\$([+/A-Za-z0-9]+={0,2})")
_SCRYPT = re.compile(
    r"\$scrypt\$ln=(\d{1,2}),r=(\d{1,3}),p=(\d{1,3})\$([+/A-Za-z0-9]*)\$([+/A-Za-z0-9]+)"
)
_SCRYPT_HASH_BYTES = (32, 64)  # passlib writes 32
_BASE64_TEXT = re.compile(r"[+/A-Za-z0-9]+={0,2}")


@dataclass(frozen=True, repr=False)
class Pbkdf2:
    """PBKDF2 with its parameters, from any of the forms above (repr hides salt and subkey)."""

    format: HashFormat
    digest: str
    iterations: int
    salt: bytes
    subkey: bytes


@dataclass(frozen=True, repr=False)
class Scrypt:
    format: ClassVar[HashFormat] = HashFormat.SCRYPT
    n: int
    r: int
    p: int
    salt: bytes
    subkey: bytes


@dataclass(frozen=True, repr=False)
class Bcrypt:
    format: ClassVar[HashFormat] = HashFormat.BCRYPT
    cost: int
    encoded: bytes


@dataclass(frozen=True, repr=False)
class Argon2:
    format: HashFormat
    parameters: Parameters


Parsed = Pbkdf2 | Scrypt | Bcrypt | Argon2


def identify(stored: str, *, today: Parameters | None = None) -> HashFormat | None:
    """The format ``stored`` is in, by its shape alone (None: none of them).

    Only the shape: a hash identified may still be malformed (``check_importable`` says).
    ``today``: the argon2id parameters hashes are made with now; an argon2id hash weaker
    than them is then ARGON2 (to be rewritten at sign-in), else ARGON2ID.
    """
    if stored.startswith("$argon2id$"):
        if today is not None and _weaker(stored, today):
            return HashFormat.ARGON2
        return HashFormat.ARGON2ID
    if stored.startswith("$argon2i$"):
        return HashFormat.ARGON2
    if stored.startswith(("$2a$", "$2b$", "$2y$")):
        return HashFormat.BCRYPT
    if stored.startswith(("$pbkdf2-sha256$", "$pbkdf2-sha512$", "pbkdf2_sha256$")):
        return HashFormat.PBKDF2
    if stored.startswith("$scrypt$"):
        return HashFormat.SCRYPT
    if len(stored) <= MAX_STORED_CHARS and _BASE64_TEXT.fullmatch(stored):
        if stored.startswith("A"):  # the first six bits of a 0x00 or 0x01 marker byte
            marker = _b64decode_strict(stored[:4])
            if marker is not None and marker[0] == 0x00:
                return HashFormat.ASPNET_V2
            if marker is not None and marker[0] == 0x01:
                return HashFormat.ASPNET_V3
    return None


def check_importable(stored: str) -> HashFormat:
    """The format of ``stored``, when it is well formed and within the ceilings.

    Raises UnusableHash for an unknown format, a truncated, padded or tampered hash (lengths,
    encodings, headers), and parameters above the ceilings. argon2id of any parameters is
    ARGON2ID here: what is weaker than today's is decided at sign-in.
    """
    return parse(stored).format


def parse(stored: str) -> Parsed:
    """``stored`` read into its parameters; UnusableHash as ``check_importable`` says."""
    if len(stored) > MAX_STORED_CHARS:
        raise UnusableHash(f"longer than {MAX_STORED_CHARS} characters: no known format")
    found = identify(stored)
    if found is None:
        raise UnusableHash("not a recognised hash format")
    if found in (HashFormat.ARGON2ID, HashFormat.ARGON2):
        return _parse_argon2(stored, found)
    if found is HashFormat.ASPNET_V2:
        return _parse_aspnet_v2(stored)
    if found is HashFormat.ASPNET_V3:
        return _parse_aspnet_v3(stored)
    if found is HashFormat.BCRYPT:
        return _parse_bcrypt(stored)
    if found is HashFormat.SCRYPT:
        return _parse_scrypt(stored)
    return _parse_pbkdf2(stored)


def _parse_argon2(stored: str, found: HashFormat) -> Argon2:
    try:
        parameters = extract_parameters(stored)
    except (InvalidHashError, ValueError) as error:
        raise UnusableHash(f"{found}: malformed argon2 hash") from error
    parts = stored.split("$")
    salt = _b64decode_unpadded(parts[4]) if len(parts) == 6 else None
    if salt is None or len(salt) < MIN_SALT_BYTES:
        raise UnusableHash(f"{found}: salt malformed or shorter than {MIN_SALT_BYTES} bytes")
    digest = _b64decode_unpadded(parts[5])
    if digest is None or len(digest) != parameters.hash_len or len(digest) < MIN_SUBKEY_BYTES:
        raise UnusableHash(f"{found}: malformed or short hash")
    if parameters.type not in (Type.ID, Type.I):
        raise UnusableHash(f"{found}: argon2d is not read")
    if parameters.memory_cost > MAX_ARGON2_MEMORY_KIB:
        raise UnusableHash(f"{found}: memory above the ceiling of {MAX_ARGON2_MEMORY_KIB} KiB")
    if parameters.memory_cost * parameters.time_cost > MAX_ARGON2_WORK_KIB:
        raise UnusableHash(f"{found}: memory x passes above the ceiling of {MAX_ARGON2_WORK_KIB}")
    if parameters.parallelism > MAX_ARGON2_PARALLELISM:
        raise UnusableHash(f"{found}: parallelism above the ceiling of {MAX_ARGON2_PARALLELISM}")
    return Argon2(found, parameters)


def _parse_aspnet_v2(stored: str) -> Pbkdf2:
    raw = _b64decode_strict(stored)
    if raw is None:
        raise UnusableHash(f"{HashFormat.ASPNET_V2}: not canonical base64")
    if len(raw) != 1 + _ASPNET_V2_SALT + _ASPNET_V2_SUBKEY:
        raise UnusableHash(
            f"{HashFormat.ASPNET_V2}: {len(raw)} bytes, not 49 (truncated or padded)"
        )
    salt = raw[1 : 1 + _ASPNET_V2_SALT]
    return Pbkdf2(
        HashFormat.ASPNET_V2, "sha1", _ASPNET_V2_ITERATIONS, salt, raw[1 + _ASPNET_V2_SALT :]
    )


def _parse_aspnet_v3(stored: str) -> Pbkdf2:
    name = HashFormat.ASPNET_V3
    raw = _b64decode_strict(stored)
    if raw is None:
        raise UnusableHash(f"{name}: not canonical base64")
    if len(raw) < 13:
        raise UnusableHash(f"{name}: shorter than its header (truncated)")
    prf = int.from_bytes(raw[1:5], "big")
    iterations = int.from_bytes(raw[5:9], "big")
    salt_length = int.from_bytes(raw[9:13], "big")
    if prf not in _ASPNET_V3_PRFS:
        raise UnusableHash(f"{name}: unknown PRF {prf} in the header")
    if iterations < 1:
        raise UnusableHash(f"{name}: iteration count 0 in the header")
    if iterations > MAX_PBKDF2_ITERATIONS:
        raise UnusableHash(
            f"{name}: {iterations} iterations, above the ceiling of {MAX_PBKDF2_ITERATIONS}"
        )
    if salt_length < _ASPNET_V3_MIN_SALT:
        raise UnusableHash(f"{name}: salt of {salt_length} bytes, below 16")
    subkey = raw[13 + salt_length :]
    if len(raw) < 13 + salt_length or len(subkey) < MIN_SUBKEY_BYTES:
        raise UnusableHash(f"{name}: subkey missing or shorter than 16 bytes (truncated)")
    return Pbkdf2(name, _ASPNET_V3_PRFS[prf], iterations, raw[13 : 13 + salt_length], subkey)


def _parse_bcrypt(stored: str) -> Bcrypt:
    name = HashFormat.BCRYPT
    match = _BCRYPT.fullmatch(stored)
    if match is None:
        raise UnusableHash(f"{name}: malformed (expected $2a$/$2b$/$2y$, cost, 53 characters)")
    cost = int(match[2])
    if cost < 4:
        raise UnusableHash(f"{name}: cost {cost}, below bcrypt's minimum of 4")
    if cost > MAX_BCRYPT_COST:
        raise UnusableHash(f"{name}: cost {cost}, above the ceiling of {MAX_BCRYPT_COST}")
    return Bcrypt(cost, stored.encode("ascii"))


def _parse_pbkdf2(stored: str) -> Pbkdf2:
    name = HashFormat.PBKDF2
    if stored.startswith("pbkdf2_sha256$"):
        django = _DJANGO_PBKDF2.fullmatch(stored)
        if django is None:
            raise UnusableHash(f"{name}: malformed Django pbkdf2_sha256 hash")
        subkey = _b64decode_strict(django[3])
        if subkey is None or len(subkey) != 32:
            raise UnusableHash(f"{name}: Django hash is not 32 bytes of base64")
        iterations = _checked_iterations(int(django[1]))
        return Pbkdf2(name, "sha256", iterations, django[2].encode("utf-8"), subkey)
    phc = _PBKDF2_PHC.fullmatch(stored)
    if phc is None:
        raise UnusableHash(f"{name}: malformed $pbkdf2-sha256$/$pbkdf2-sha512$ hash")
    digest = phc[1]
    iterations = _checked_iterations(int(phc[2] or phc[3]))
    salt = _b64decode_unpadded(phc[5].replace(".", "+"))
    subkey = _b64decode_unpadded(phc[6].replace(".", "+"))
    if salt is None or len(salt) < MIN_SALT_BYTES:
        raise UnusableHash(f"{name}: salt malformed or shorter than {MIN_SALT_BYTES} bytes")
    if subkey is None or len(subkey) < MIN_SUBKEY_BYTES:
        raise UnusableHash(f"{name}: hash malformed or shorter than {MIN_SUBKEY_BYTES} bytes")
    if phc[2] is not None and len(subkey) != hashlib.new(digest).digest_size:
        raise UnusableHash(f"{name}: hash of {len(subkey)} bytes, not passlib's length")
    if phc[4] is not None and int(phc[4]) != len(subkey):
        raise UnusableHash(f"{name}: hash of {len(subkey)} bytes, not l={phc[4]}")
    return Pbkdf2(name, digest, iterations, salt, subkey)


def _parse_scrypt(stored: str) -> Scrypt:
    name = HashFormat.SCRYPT
    match = _SCRYPT.fullmatch(stored)
    if match is None:
        raise UnusableHash(f"{name}: malformed (expected $scrypt$ln=..,r=..,p=..$salt$hash)")
    log2_n, r, p = int(match[1]), int(match[2]), int(match[3])
    if not 1 <= log2_n <= 63 or r < 1 or p < 1:
        raise UnusableHash(f"{name}: parameters out of range")
    n = 2**log2_n
    if 128 * n * r > MAX_SCRYPT_MEMORY or n * r * p > MAX_SCRYPT_WORK:
        raise UnusableHash(f"{name}: ln={log2_n},r={r},p={p} above the ceiling")
    salt = _b64decode_unpadded(match[4])
    subkey = _b64decode_unpadded(match[5])
    if salt is None or len(salt) < MIN_SALT_BYTES:
        raise UnusableHash(f"{name}: salt malformed or shorter than {MIN_SALT_BYTES} bytes")
    if subkey is None or len(subkey) not in _SCRYPT_HASH_BYTES:
        raise UnusableHash(f"{name}: hash malformed or not 32 or 64 bytes (truncated or padded)")
    return Scrypt(n, r, p, salt, subkey)


def _checked_iterations(iterations: int) -> int:
    if iterations < 1:
        raise UnusableHash(f"{HashFormat.PBKDF2}: iteration count 0")
    if iterations > MAX_PBKDF2_ITERATIONS:
        raise UnusableHash(
            f"{HashFormat.PBKDF2}: {iterations} iterations, above the ceiling of "
            f"{MAX_PBKDF2_ITERATIONS}"
        )
    return iterations


def _weaker(stored: str, today: Parameters) -> bool:
    try:
        used = extract_parameters(stored)
    except (InvalidHashError, ValueError):
        return True
    return (
        used.type is not Type.ID
        or used.time_cost < today.time_cost
        or used.memory_cost < today.memory_cost
        or used.parallelism < today.parallelism
        or used.hash_len < today.hash_len
        or used.salt_len < today.salt_len
    )


def _b64decode_strict(text: str) -> bytes | None:
    """Padded base64 that decodes and encodes back to the same text (None otherwise): a
    character changed in the padding bits or an extra ``=`` is a tampered hash."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode("ascii") == text else None


def _b64decode_unpadded(text: str) -> bytes | None:
    """Base64 without padding (PHC strings), canonical as above."""
    if "=" in text:
        return None
    return _b64decode_strict(text + "=" * (-len(text) % 4))
