"""legacy_hashes: which format a stored hash is in, and whether an import may keep it.

The vectors are published ones, each with where it comes from (see VECTORS)."""

from __future__ import annotations

import base64

import pytest
from argon2 import PasswordHasher, Type, extract_parameters

from server.crypto.legacy_hashes import (
    MAX_BCRYPT_COST,
    MAX_PBKDF2_ITERATIONS,
    HashFormat,
    UnusableHash,
    check_importable,
    identify,
)

# (format, password, stored hash, where it comes from)
VECTORS: list[tuple[HashFormat, str, str, str]] = [
    (
        HashFormat.ASPNET_V2,
        "my password",
        "AAABAgMEBQYHCAkKCwwNDg+ukCEMDf0yyQ29NYubggHIVY0sdEUfdyeM+E1LtH1uJg==",
        "dotnet/aspnetcore src/Identity/test/Identity.Test/PasswordHasherTest.cs, "
        "HashPassword_Version2 (PasswordHasher<T> in IdentityV2 mode, salt 00..0f)",
    ),
    (
        HashFormat.ASPNET_V2,
        "my password",
        "ANXrDknc7fGPpigibZXXZFMX4aoqz44JveK6jQuwY3eH/UyPhvr5xTPeGYEckLxz9A==",
        "dotnet/aspnetcore PasswordHasherTest.cs, VerifyHashedPassword_Version2CompatMode_"
        "SuccessCases (SHA1, 1000 iterations, 128-bit salt, 256-bit subkey)",
    ),
    (
        HashFormat.ASPNET_V3,
        "my password",
        "AQAAAAEAACcQAAAAEAABAgMEBQYHCAkKCwwNDg+yWU7rLgUwPZb1Itsmra7cbxw2EFpwpVFIEtP+JIuUEw==",
        "dotnet/aspnetcore PasswordHasherTest.cs, HashPassword_Version3 "
        "(HMACSHA256, 10,000 iterations, salt 00..0f)",
    ),
    (
        HashFormat.ASPNET_V3,
        "my password",
        "AQAAAAIAAAAyAAAAEOMwvh3+FZxqkdMBz2ekgGhwQ4B6pZWND6zgESBuWiHw",
        "dotnet/aspnetcore PasswordHasherTest.cs, VerifyHashedPassword_Version3CompatMode_"
        "SuccessCases (SHA512, 50 iterations, 128-bit salt, 128-bit subkey)",
    ),
    (
        HashFormat.ASPNET_V3,
        "my password",
        "AQAAAAIAAAD6AAAAIJbVi5wbMR+htSfFp8fTw8N8GOS/Sje+S/4YZcgBfU7EQuqv4OkVYmc4VJl9AGZzmRTxSkP7"
        "LtVi9IWyUxX8IAAfZ8v+ZfhjCcudtC1YERSqE1OEdXLW9VukPuJWBBjLuw==",
        "dotnet/aspnetcore PasswordHasherTest.cs (SHA512, 250 iterations, 256-bit salt, "
        "512-bit subkey)",
    ),
    (
        HashFormat.ASPNET_V3,
        "my password",
        "AQAAAAAAAAD6AAAAEAhftMyfTJylOlZT+eEotFXd1elee8ih5WsjXaR3PA9M",
        "dotnet/aspnetcore PasswordHasherTest.cs (SHA1, 250 iterations, 128-bit salt, "
        "128-bit subkey)",
    ),
    (
        HashFormat.ASPNET_V3,
        "my password",
        "AQAAAAEAA9CQAAAAIESkQuj2Du8Y+kbc5lcN/W/3NiAZFEm11P27nrSN5/tId+bR1SwV8CO1Jd72r4C08OLvplNl"
        "CDc3oQZ8efcW+jQ=",
        "dotnet/aspnetcore PasswordHasherTest.cs (SHA256, 250000 iterations, 256-bit salt, "
        "256-bit subkey)",
    ),
    (
        HashFormat.PBKDF2,
        "lètmein",
        "pbkdf2_sha256$20000$seasalt$oBSd886ysm3AqYun62DOdin8YcfbU1z9cksZSuLP9r0=",
        "django/django tests/auth_tests/test_hashers.py, test_pbkdf2 (Django 1.8's "
        "make_password('lètmein', 'seasalt', 'pbkdf2_sha256'))",
    ),
    (
        HashFormat.PBKDF2,
        "password",
        "$pbkdf2-sha256$1212$4vjV83LKPjQzk31VI4E0Vw$hsYF68OiOUPdDZ1Fg.fJPeq1h/gXXY7acBp9/6c.tmQ",
        "passlib passlib/tests/test_handlers_pbkdf2.py, pbkdf2_sha256_test.known_correct_hashes",
    ),
    (
        HashFormat.PBKDF2,
        "password",
        "$pbkdf2-sha512$1212$RHY0Fr3IDMSVO/RSZyb5ow$eNLfBK.eVozomMr.1gYa17k9B7KIK25NOEshvhrSX.esqY3s"
        ".FvWZViXz4KoLlQI.BzY/YTNJOiKc5gBYFYGww",
        "passlib passlib/tests/test_handlers_pbkdf2.py, pbkdf2_sha512_test.known_correct_hashes",
    ),
    (
        HashFormat.SCRYPT,
        "password",
        "$scrypt$ln=8,r=8,p=1$WKs1xljLudd6z9kbY0wpJQ$yCR4iDZYDKv+iEJj6yHY0lv/epnfB6f/w1EbXrsJOuQ",
        "passlib docs/lib/passlib.hash.scrypt.rst, scrypt.using(rounds=8).hash('password')",
    ),
    (
        HashFormat.BCRYPT,
        "U*U",
        "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
        "OpenBSD's bcrypt vectors, as in pyca/bcrypt tests/test_bcrypt.py _test_vectors",
    ),
    (
        HashFormat.BCRYPT,
        "Kk4DQuMMfZL9o",
        "$2b$04$cVWp4XaNU8a4v1uMRum2SO026BWLIoQMD/TXg5uZV.0P.uO8m3YEm",
        "pyca/bcrypt tests/test_bcrypt.py _test_vectors (first entry)",
    ),
    (
        HashFormat.BCRYPT,
        "rasmuslerdorf",
        "$2y$10$.vGA1O9wmRjrwAVXD98HNOgsNpDczlqm3Jq7KnEd1rVAGv3Fykk1a",
        "PHP manual, password_verify() example (https://www.php.net/manual/en/function."
        "password-verify.php), made by PHP's crypt_blowfish",
    ),
    (
        HashFormat.ARGON2,
        "password",
        "$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA",
        "P-H-C/phc-winner-argon2 src/test.c (the reference implementation's own test: "
        "argon2i, t=2, m=2^16, p=1, 'password', 'somesalt')",
    ),
    (
        HashFormat.ARGON2ID,
        "password",
        "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
        "P-H-C/phc-winner-argon2 src/test.c (argon2id, t=2, m=2^16, p=1, 'password', 'somesalt')",
    ),
]


@pytest.mark.parametrize(("expected", "stored"), [(v[0], v[2]) for v in VECTORS])
def test_each_published_vector_is_identified_and_importable(
    expected: HashFormat, stored: str
) -> None:
    assert identify(stored) is expected
    assert check_importable(stored) is expected


def test_an_argon2id_hash_weaker_than_today_is_argon2_of_other_parameters() -> None:
    today = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=1, type=Type.ID)
    weaker = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=Type.ID)
    params = extract_parameters(today.hash("x"))
    assert identify(weaker.hash("x"), today=params) is HashFormat.ARGON2
    assert identify(today.hash("x"), today=params) is HashFormat.ARGON2ID


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "password",
        "plain text with spaces",
        "$1$saltsalt$abcdefghijklmnopqrstuv",  # md5-crypt
        "$6$rounds=5000$salt$hash",  # sha512-crypt
        "sha1$seasalt$cff36ea83f5706ce9aa7454e63e431fc726b2dc8",  # Django sha1
        "AgAAAAEAACcQAAAAEAABAgMEBQYHCAkKCwwNDg+yWU7rLgUwPZb1Itsmra7cbxw2EFpwpVFIEtP+JIuUEw==",
        "$argon2d$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$Hl6uH5u2Bx9QA6LiWdqzkzCZD0dw6Y9V6nhuB1z0zgs",
    ],
)
def test_an_unknown_format_is_refused(stored: str) -> None:
    with pytest.raises(UnusableHash) as refused:
        check_importable(stored)
    if stored:
        assert stored not in str(refused.value)


# dotnet/aspnetcore PasswordHasherTest.cs, VerifyHashedPassword_FailureCases: "too short" and
# "extra data at end" for each version (the "incorrect password" ones are well formed).
ASPNET_MALFORMED = [
    "AAABAgMEBQYHCAkKCwwNDg+ukCEMDf0yyQ29NYubggE=",
    "AAABAgMEBQYHCAkKCwwNDg+ukCEMDf0yyQ29NYubggHIVY0sdEUfdyeM+E1LtH1uJgAAAAAAAAAAAAA=",
    "AQAAAAIAAAAyAAAAEOMwvh3+FZxqkdMBz2ekgGhwQ4A=",
]
V2 = VECTORS[0][2]
V3 = VECTORS[2][2]


def _v3_with(prf: int = 1, iterations: int = 10_000, salt_length: int = 16) -> str:
    raw = bytearray(base64.b64decode(V3))
    raw[1:5] = prf.to_bytes(4, "big")
    raw[5:9] = iterations.to_bytes(4, "big")
    raw[9:13] = salt_length.to_bytes(4, "big")
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    "stored",
    [
        *ASPNET_MALFORMED,
        V2[:-4],  # truncated
        V2 + "=",  # padded
        V2[:-3] + "J==",  # not canonical: bits set in the padding
        V2.replace("+", "-"),  # base64url is not what AspNetUsers holds
        V3[:20],  # header only
        _v3_with(prf=3),  # unknown PRF
        _v3_with(iterations=0),
        _v3_with(iterations=MAX_PBKDF2_ITERATIONS + 1),  # absurd iteration count
        _v3_with(iterations=2**32 - 1),
        _v3_with(salt_length=8),  # below ASP.NET's own floor
        _v3_with(salt_length=40),  # longer than what follows: no subkey left
        _v3_with(salt_length=2**31),
    ],
)
def test_a_truncated_padded_or_tampered_aspnet_hash_is_refused(stored: str) -> None:
    with pytest.raises(UnusableHash):
        check_importable(stored)


BCRYPT = VECTORS[11][2]
DJANGO = VECTORS[7][2]
PASSLIB = VECTORS[8][2]
SCRYPT = VECTORS[10][2]
ARGON2I = VECTORS[14][2]


@pytest.mark.parametrize(
    "stored",
    [
        BCRYPT[:-1],
        BCRYPT + "x",
        BCRYPT.replace("$05$", "$5$"),
        BCRYPT.replace("$05$", "$03$"),
        BCRYPT.replace("$05$", f"${MAX_BCRYPT_COST + 1}$"),
        BCRYPT.replace("$05$", "$31$"),
        BCRYPT.replace("$2a$", "$2x$"),
        DJANGO[:-2],
        DJANGO + "AA",
        DJANGO.replace("$20000$", "$0$"),
        DJANGO.replace("$20000$", f"${MAX_PBKDF2_ITERATIONS + 1}$"),
        DJANGO.replace("$20000$", "$99999999999$"),
        PASSLIB[:-5],
        PASSLIB + "=",
        PASSLIB.replace("$1212$", "$01212x$"),
        PASSLIB.replace("$1212$", f"${MAX_PBKDF2_ITERATIONS + 1}$"),
        PASSLIB.replace("$1212$", "$$"),
        PASSLIB + "$",
        PASSLIB.replace("$1212$", "$i=1212,l=16$"),
        "$pbkdf2-sha1$1212$OB.dtnSEXZK8U5cgxU/GYQ$y5LKPOplRmok7CZp/aqVDVg8zGI",
        SCRYPT[:-4],
        SCRYPT.replace("ln=8", "ln=30"),  # 128 GiB of memory
        SCRYPT.replace("ln=8", "ln=16").replace("p=1", "p=999"),
        SCRYPT.replace("ln=8", "ln=0"),
        SCRYPT.replace("WKs1xljLudd6z9kbY0wpJQ", ""),
        SCRYPT + "AAAA",
        ARGON2I[:-30],
        ARGON2I.replace("m=65536", "m=4194304"),  # 4 GiB
        ARGON2I.replace("t=2", "t=1000"),
        ARGON2I.replace("p=1", "p=255"),
        ARGON2I.replace("c29tZXNhbHQ", ""),
    ],
)
def test_a_malformed_or_too_costly_hash_of_the_other_formats_is_refused(stored: str) -> None:
    with pytest.raises(UnusableHash):
        check_importable(stored)


def test_the_phc_form_with_i_and_l_is_read() -> None:
    stored = (
        "$pbkdf2-sha256$i=1212,l=32$4vjV83LKPjQzk31VI4E0Vw"
        "$hsYF68OiOUPdDZ1Fg+fJPeq1h/gXXY7acBp9/6c+tmQ"
    )
    assert check_importable(stored) is HashFormat.PBKDF2


def test_a_refusal_names_the_fault_not_the_hash() -> None:
    stored = _v3_with(iterations=50_000_000)
    with pytest.raises(UnusableHash) as refused:
        check_importable(stored)
    message = str(refused.value)
    assert "50000000 iterations" in message
    assert "aspnet-identity-v3" in message
    assert stored not in message


def test_a_very_long_input_is_refused_without_reading_it() -> None:
    with pytest.raises(UnusableHash):
        check_importable("A" * 10_000_000)
