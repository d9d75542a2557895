"""Verifying hashes brought over from the old system: every published vector matches its
password and no other, through legacy_hashes.verify and through the service's hasher (off the
event loop, on its pool); each needs a rehash; a format not accepted, or a hash above the
ceilings, never matches and is refused without its own work."""

from __future__ import annotations

import base64
import hashlib
import os
import unicodedata
from collections.abc import Iterator

import pytest
from argon2 import extract_parameters
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from domain.values import Password
from server.crypto import legacy_hashes
from server.crypto.legacy_hashes import HashFormat, verify
from server.crypto.passwords import Argon2PasswordHasher
from server.settings import Settings
from tests.unit.server.crypto.test_legacy_hashes import VECTORS

ALL = [(v[0], v[1], v[2]) for v in VECTORS]


@pytest.fixture
def hasher() -> Iterator[Argon2PasswordHasher]:
    hasher = Argon2PasswordHasher(time_cost=2, memory_kib=19456, parallelism=1, workers=2)
    yield hasher
    hasher.shutdown()


@pytest.mark.parametrize(("found", "password", "stored"), ALL)
def test_each_vector_matches_its_password_and_no_other(
    found: HashFormat, password: str, stored: str
) -> None:
    assert verify(stored, password)
    assert not verify(stored, password + "x")
    assert not verify(stored, password[:-1])
    assert not verify(stored, "")


@pytest.mark.parametrize(("found", "password", "stored"), ALL)
async def test_the_hasher_verifies_each_format_and_asks_for_a_rehash(
    hasher: Argon2PasswordHasher, found: HashFormat, password: str, stored: str
) -> None:
    assert await hasher.verify(stored, Password.presented(password))
    assert not await hasher.verify(stored, Password.presented(password + "!"))
    # Every hash not argon2id at today's parameters is rewritten by the sign-in that proved it.
    assert hasher.needs_rehash(stored)
    assert not hasher.needs_rehash(await hasher.hash(Password.presented(password)))


# dotnet/aspnetcore PasswordHasherTest.cs VerifyHashedPassword_FailureCases, "incorrect
# password": well formed, a subkey that is not "my password"'s.
@pytest.mark.parametrize(
    "stored",
    [
        "AAABAgMEBQYHCAkKCwwNDg+uAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAALtH1uJg==",
        "AQAAAAAAAAD6AAAAEAhftMyfTJyAAAAAAAAAAAAAAAAAAAih5WsjXaR3PA9M",
    ],
)
def test_aspnet_failure_cases_do_not_match(stored: str) -> None:
    assert not verify(stored, "my password")


def _tampered(stored: str) -> list[str]:
    """The stored hash with one character changed at a few places, truncated, and padded."""
    out = [stored[:-2], stored + "A", stored + "=", stored[: len(stored) // 2]]
    for at in (len(stored) // 3, len(stored) - 6):
        swap = "B" if stored[at] != "B" else "C"
        out.append(stored[:at] + swap + stored[at + 1 :])
    return out


@pytest.mark.parametrize(("found", "password", "stored"), ALL)
def test_a_tampered_or_truncated_hash_never_matches_and_never_raises(
    found: HashFormat, password: str, stored: str
) -> None:
    for bad in _tampered(stored):
        assert not verify(bad, password), bad


@pytest.mark.parametrize("excluded", [f for f in HashFormat if f is not HashFormat.ARGON2ID])
async def test_a_format_not_accepted_never_matches(excluded: HashFormat) -> None:
    accepted = [f for f in HashFormat if f is not excluded]
    hasher = Argon2PasswordHasher(
        time_cost=2, memory_kib=19456, parallelism=1, workers=1, accepted_formats=accepted
    )
    try:
        today = extract_parameters(hasher.dummy_hash)
        for _, password, stored in ALL:
            # By shape and today's parameters: phc-winner-argon2's argon2id vector has an 8-byte
            # salt, weaker than today's 16, so it is argon2id "of other parameters" here.
            found = legacy_hashes.identify(stored, today=today)
            matched = await hasher.verify(stored, Password.presented(password))
            assert matched is (found is not excluded), (found, stored)
    finally:
        hasher.shutdown()


async def test_argon2id_of_weaker_parameters_is_the_argon2_format() -> None:
    weak = Argon2PasswordHasher(time_cost=2, memory_kib=19456, parallelism=1, workers=1)
    today = Argon2PasswordHasher(
        time_cost=3,
        memory_kib=19456,
        parallelism=1,
        workers=1,
        accepted_formats=[HashFormat.ARGON2ID, HashFormat.BCRYPT],
    )
    try:
        old = await weak.hash(Password.presented("an older password"))
        assert today.needs_rehash(old)
        assert not await today.verify(old, Password.presented("an older password"))
        assert await weak.verify(old, Password.presented("an older password"))
    finally:
        weak.shutdown()
        today.shutdown()


async def test_a_hash_above_the_ceiling_is_refused_without_its_work(
    hasher: Argon2PasswordHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ASP.NET Core V3 vector is 10,000 iterations of HMAC-SHA256: with a ceiling below
    # that, the right password is refused and PBKDF2 never runs (only the dummy argon2id).
    stored = VECTORS[2][2]
    monkeypatch.setattr(
        legacy_hashes, "MAX_PBKDF2_ITERATIONS", {"sha1": 9999, "sha256": 9999, "sha512": 9999}
    )

    def must_not_run(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("PBKDF2 ran for a hash above the ceiling")

    monkeypatch.setattr(hashlib, "pbkdf2_hmac", must_not_run)
    assert not await hasher.verify(stored, Password.presented("my password"))


async def test_a_refused_hash_costs_an_argon2id_verification_as_a_wrong_password_does(
    hasher: Argon2PasswordHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An account whose hash is unusable must not answer faster than one whose hash is fine: the
    # refusal does the same argon2id work, against the dummy hash (shown by what is verified,
    # not by a clock, which a loaded machine makes meaningless).
    verified: list[str] = []
    real_verify = hasher._verify_argon2id

    def recording_verify(password_hash: str, clear_text: str) -> bool:
        verified.append(password_hash)
        return real_verify(password_hash, clear_text)

    monkeypatch.setattr(hasher, "_verify_argon2id", recording_verify)
    wrong = Password.presented("not the password")
    assert not await hasher.verify("$2b$31$" + "a" * 53, wrong)
    assert not await hasher.verify("not a hash at all", wrong)
    assert verified == [hasher.dummy_hash, hasher.dummy_hash]
    assert extract_parameters(hasher.dummy_hash).time_cost == 2  # today's parameters


async def test_a_password_is_checked_as_typed_against_a_hash_the_old_system_made() -> None:
    # The old system hashed the text as typed; the service normalises (NFKC) what it hashes.
    typed = "ﬁnally, my password²"  # a ligature and a superscript: NFKC changes both
    assert unicodedata.normalize("NFKC", typed) != typed
    salt = b"saltsaltsaltsalt"
    subkey = hashlib.pbkdf2_hmac("sha256", typed.encode(), salt, 1000, dklen=32)
    raw = b"\x01" + (1).to_bytes(4, "big") + (1000).to_bytes(4, "big") + (16).to_bytes(4, "big")
    stored = base64.b64encode(raw + salt + subkey).decode()
    hasher = Argon2PasswordHasher(time_cost=2, memory_kib=19456, parallelism=1, workers=1)
    try:
        presented = Password.presented(typed)
        assert await hasher.verify(stored, presented)
        assert not await hasher.verify(stored, Password.presented("finally, my password2"))
        # The rewrite is made from the normalised text, as every hash the service makes.
        assert await hasher.verify(await hasher.hash(presented), Password.presented(typed))
    finally:
        hasher.shutdown()


def test_the_accepted_formats_come_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("USER_SERVICE_"):
            monkeypatch.delenv(name)
    assert Settings().legacy_hash_formats == frozenset(HashFormat)
    monkeypatch.setenv("USER_SERVICE_LEGACY_HASH_FORMATS", "argon2id, bcrypt,aspnet-identity-v3")
    assert Settings().legacy_hash_formats == {
        HashFormat.ARGON2ID,
        HashFormat.BCRYPT,
        HashFormat.ASPNET_V3,
    }
    monkeypatch.setenv("USER_SERVICE_LEGACY_HASH_FORMATS", "argon2id,md5")
    with pytest.raises(ValidationError, match="unknown hash format"):
        Settings()
    monkeypatch.setenv("USER_SERVICE_LEGACY_HASH_FORMATS", "bcrypt")
    with pytest.raises(ValidationError, match="must include argon2id"):
        Settings()


_STORED = st.one_of(
    st.text(max_size=200),
    st.sampled_from([v[2] for v in VECTORS]).flatmap(
        lambda stored: st.tuples(
            st.just(stored),
            st.integers(0, len(stored)),
            st.integers(0, len(stored)),
            st.text(alphabet="$=.,/+0123456789ABCabcimlnrp", max_size=6),
        ).map(lambda t: t[0][: min(t[1], t[2])] + t[3] + t[0][max(t[1], t[2]) :])
    ),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stored=_STORED)
def test_any_stored_text_is_refused_or_read_and_never_raises_anything_else(stored: str) -> None:
    # Sign-in must never fail with INTERNAL over what a stored hash holds.
    legacy_hashes.identify(stored)
    try:
        legacy_hashes.check_importable(stored)
    except legacy_hashes.UnusableHash:
        pass
    assert verify(stored, "my password") in (True, False)
