"""The cached documents: a strong ETag that follows the body, If-None-Match as RFC 9110 reads
it, and a discovery document holding what a verifier needs and no more."""

from __future__ import annotations

import json

import pytest

from server.crypto.access_tokens import JwtAccessTokenIssuer, generate_signing_keys
from server.http.discovery import discovery_document
from server.http.documents import CachedDocument, none_match_names
from server.http.jwks import jwks_document


def key_set() -> list[dict[str, str]]:
    issuer = JwtAccessTokenIssuer(
        generate_signing_keys(), issuer="urn:test", audience="urn:aud", lifetime_seconds=60
    )
    return issuer.jwks()


def test_the_jwks_body_is_the_key_list_under_keys() -> None:
    keys = key_set()
    assert json.loads(jwks_document(keys).body) == {"keys": keys}


def test_the_etag_is_strong_stable_and_changes_with_the_key_set() -> None:
    keys = key_set()
    first = jwks_document(keys)

    assert first.etag.startswith('"') and first.etag.endswith('"')
    assert jwks_document([dict(key) for key in keys]).etag == first.etag
    assert jwks_document(keys + key_set()).etag != first.etag
    assert jwks_document(key_set()).etag != first.etag


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        (['"abc"'], True),
        (['W/"abc"'], True),  # If-None-Match compares weakly
        (['"x", "abc"'], True),
        (['"x"', '"abc"'], True),
        (["*"], True),
        (['"abcd"'], False),
        (["abc"], False),  # unquoted: not this entity tag
        ([], False),
    ],
)
def test_if_none_match(header: list[str], matches: bool) -> None:
    assert none_match_names(header, '"abc"') is matches


def test_the_discovery_document_names_the_issuer_the_jwks_url_and_the_algorithms() -> None:
    document = discovery_document(
        issuer="urn:biome:user-service", public_url="https://users.example.com/", keys=key_set()
    )

    assert json.loads(document.body) == {
        "issuer": "urn:biome:user-service",
        "jwks_uri": "https://users.example.com/.well-known/jwks.json",
        "id_token_signing_alg_values_supported": ["EdDSA"],
    }


def test_a_document_of_the_same_content_has_the_same_etag() -> None:
    assert CachedDocument.of({"a": 1}).etag == CachedDocument.of({"a": 1}).etag
    assert CachedDocument.of({"a": 1}).etag != CachedDocument.of({"a": 2}).etag
