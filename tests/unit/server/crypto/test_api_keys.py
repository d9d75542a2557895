"""New API keys are long, random and recognisable; the server stores only their SHA-256."""

from __future__ import annotations

import hashlib
import re

from server.crypto.api_keys import api_key_sha256, new_api_key
from server.settings import ApiKey


def test_a_new_api_key_is_usk_and_43_url_safe_characters() -> None:
    assert re.fullmatch(r"usk_[A-Za-z0-9_-]{43}", new_api_key())


def test_new_api_keys_differ() -> None:
    assert len({new_api_key() for _ in range(100)}) == 100


def test_api_key_sha256_is_the_hex_sha256_of_the_utf8_key() -> None:
    assert api_key_sha256("abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert api_key_sha256("usk_é") == hashlib.sha256("usk_é".encode()).hexdigest()


def test_the_hash_of_a_new_key_is_accepted_by_the_api_key_setting() -> None:
    key = new_api_key()
    setting = ApiKey(name="billing", sha256=api_key_sha256(key))
    assert key not in setting.model_dump_json()
