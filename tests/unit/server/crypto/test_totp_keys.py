"""The TOTP key ring: the first key seals, every key opens, the key id travels with the
ciphertext; a damaged ciphertext or an unknown key id never opens. And the codes built on it."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from domain.second_factors import SealedSecret
from server.crypto.totp_keys import SealedTotpCodes, TotpKeyError, TotpKeyRing, qr_code_svg

NOW = datetime(2026, 12, 7, 1, 0, 0, tzinfo=UTC)
STEP = timedelta(seconds=30)


def key_text(key_id: str, key: bytes | None = None) -> str:
    return f"{key_id}:{base64.b64encode(key or os.urandom(32)).decode()}"


def test_the_first_key_seals_and_a_ring_with_it_anywhere_opens() -> None:
    old, new = key_text("old"), key_text("new")
    before = TotpKeyRing.parse(old)
    sealed = before.seal(b"secret bytes")

    rotated = TotpKeyRing.parse(f"{new}, {old}")

    assert sealed.value.startswith("old:")
    assert rotated.unseal(sealed) == b"secret bytes"
    assert rotated.seal(b"x").value.startswith("new:")
    assert rotated.sealing_id == "new"


def test_a_secret_sealed_with_a_key_that_was_dropped_does_not_open() -> None:
    sealed = TotpKeyRing.parse(key_text("old")).seal(b"secret")
    with pytest.raises(TotpKeyError, match="no TOTP encryption key with the id 'old'"):
        TotpKeyRing.parse(key_text("new")).unseal(sealed)


def test_another_key_under_the_same_id_does_not_open() -> None:
    sealed = TotpKeyRing.parse(key_text("k1")).seal(b"secret")
    with pytest.raises(TotpKeyError, match="does not open"):
        TotpKeyRing.parse(key_text("k1")).unseal(sealed)


@pytest.mark.parametrize("position", [3, 10, 20, -2])  # the nonce, the ciphertext, the tag
def test_a_tampered_ciphertext_does_not_open(position: int) -> None:
    ring = TotpKeyRing.parse(key_text("k1"))
    text = ring.seal(b"secret").value
    chars = list(text)
    chars[position] = "A" if chars[position] != "A" else "w"  # differ in the high bits
    damaged = SealedSecret("".join(chars))

    with pytest.raises(TotpKeyError):
        ring.unseal(damaged)


def test_a_ciphertext_moved_under_another_key_id_does_not_open() -> None:
    key = os.urandom(32)
    ring = TotpKeyRing.parse(f"{key_text('a', key)},{key_text('b', key)}")
    sealed = ring.seal(b"secret")
    with pytest.raises(TotpKeyError):
        ring.unseal(SealedSecret("b:" + sealed.value.removeprefix("a:")))


def test_each_seal_uses_a_fresh_nonce() -> None:
    ring = TotpKeyRing.parse(key_text("k1"))
    assert ring.seal(b"same").value != ring.seal(b"same").value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no TOTP encryption key"),
        ("k1", "is not <id>:<base64 key>"),
        ("k1:not base64!", "not valid base64"),
        ("k1:" + base64.b64encode(b"short").decode(), "is not 32 bytes"),
        (f"{key_text('k1')},{key_text('k1')}", "same id"),
        (key_text("bad id"), "key id must be"),
    ],
)
def test_malformed_keys_are_refused_without_showing_them(text: str, message: str) -> None:
    with pytest.raises(TotpKeyError, match=message) as raised:
        TotpKeyRing.parse(text)
    secret_part = text.partition(":")[2]
    assert not secret_part or secret_part not in str(raised.value)


def test_url_safe_base64_keys_are_accepted_and_the_ring_repr_shows_ids_only() -> None:
    key = bytes(range(250, 256)) * 5 + b"\xff\xfe"
    ring = TotpKeyRing.parse("k1:" + base64.urlsafe_b64encode(key).decode().rstrip("="))
    assert ring.keys == (("k1", key),)
    assert repr(ring) == "TotpKeyRing(ids=['k1'])"


def codes() -> SealedTotpCodes:
    return SealedTotpCodes(TotpKeyRing.parse(key_text("k1")), "Biome")


def test_a_new_secret_is_160_bits_sealed_and_its_uri_names_the_issuer() -> None:
    totp = codes()
    secret = totp.new_secret()

    assert len(base64.b32decode(secret.secret)) == 20
    assert secret.secret not in secret.sealed.value
    uri = totp.provisioning_uri(secret, "ada@example.com")
    assert uri.startswith("otpauth://totp/Biome:ada%40example.com?")
    assert f"secret={secret.secret}" in uri and "issuer=Biome" in uri


def test_codes_within_one_step_match_at_their_step_and_later_steps_only_once() -> None:
    totp = codes()
    secret = totp.new_secret()
    app = pyotp.TOTP(secret.secret)
    current = app.timecode(NOW)

    for drift in (-1, 0, 1):
        code = app.at(NOW + drift * STEP)
        assert totp.matching_step(secret.sealed, code, NOW, after_step=None) == current + drift
        assert totp.matching_step(secret.sealed, code, NOW, after_step=current + drift) is None
    far = app.at(NOW + 2 * STEP)
    if far not in {app.at(NOW + d * STEP) for d in (-1, 0, 1)}:
        assert totp.matching_step(secret.sealed, far, NOW, after_step=None) is None


def test_the_qr_code_is_an_svg_image() -> None:
    svg = qr_code_svg("otpauth://totp/Biome:a%40b.c?secret=ABC&issuer=Biome")
    assert svg.startswith(b"<svg") and svg.rstrip().endswith(b"</svg>")
