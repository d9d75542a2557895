"""Real verifiers fetching the keys over HTTP, as calling teams would: PyJWT's PyJWKClient and
Node.js jose (createRemoteJWKSet + jwtVerify) verify an access token from Authenticate, refuse a
forged one, and follow a key rotation with the key set they had cached."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server.settings import Settings
from tests.conftest import free_port
from tests.e2e.auth_helpers import AUDIENCE, ISSUER, register, sign_in
from tests.e2e.conftest import serving
from tests.e2e.harness import Service, service_settings
from tests.e2e.http_kit import JWKS, fetch, new_signing_key, signing_keys_setting
from tests.node_kit import NODE_DIR, ensure_node_modules, run_node
from tests.smtp_server import CapturingSmtpServer

VERIFIER = NODE_DIR / "jwks_verifier.mjs"
# jose's wait after a fetch before an unknown kid may fetch again (30 s by default).
COOLDOWN_MS = 500


def py_verify(client: jwt.PyJWKClient, token: str) -> dict[str, Any]:
    """PyJWT as its documentation shows: the key named by the token's kid, from the JWKS URL."""
    key = client.get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token, key, algorithms=["EdDSA"], audience=AUDIENCE, issuer=ISSUER
    )
    return claims


async def access_token(service: Service, email: str, password: str) -> str:
    return (await sign_in(service, email, password)).access_token


class NodeVerifier:
    """One long-lived `node jwks_verifier.mjs` process: its jose key cache lives across calls."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    async def verify(self, token: str) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps(token).encode() + b"\n")
        await self._process.stdin.drain()
        line = await asyncio.wait_for(self._process.stdout.readline(), 30)
        assert line, "the Node verifier exited"
        result: dict[str, Any] = json.loads(line)
        return result


@asynccontextmanager
async def node_verifier(jwks_url: str) -> AsyncIterator[NodeVerifier]:
    await asyncio.to_thread(ensure_node_modules)
    process = await asyncio.create_subprocess_exec(
        "node",
        str(VERIFIER),
        jwks_url,
        ISSUER,
        AUDIENCE,
        str(COOLDOWN_MS),
        cwd=NODE_DIR,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        yield NodeVerifier(process)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


def settings_with_keys(
    base: Settings, signer: Ed25519PrivateKey, *older: Ed25519PrivateKey
) -> Settings:
    return base.model_copy(update={"jwt_signing_keys": signing_keys_setting(signer, *older)})


async def test_pyjwt_and_jose_verify_a_token_from_authenticate_and_refuse_a_forged_one(
    moto_endpoint: str, smtp_server: CapturingSmtpServer
) -> None:
    settings = service_settings(moto_endpoint, smtp_server, http_port=0)
    async with serving(settings, smtp_server) as service:
        account = await register(service)
        token = await access_token(service, account.email, account.password)
        jwks_url = service.http_url + JWKS
        claims = await asyncio.to_thread(py_verify, jwt.PyJWKClient(jwks_url), token)
        node = json.loads(
            await asyncio.to_thread(
                run_node, VERIFIER, jwks_url, ISSUER, AUDIENCE, input_json=token
            )
        )
        # The same claims and kid, signed by a key the service does not publish.
        forged = jwt.encode(
            jwt.decode(token, options={"verify_signature": False}),
            new_signing_key(),
            algorithm="EdDSA",
            headers={"kid": jwt.get_unverified_header(token)["kid"]},
        )
        forged_node = json.loads(
            await asyncio.to_thread(
                run_node, VERIFIER, jwks_url, ISSUER, AUDIENCE, input_json=forged
            )
        )
        try:
            await asyncio.to_thread(py_verify, jwt.PyJWKClient(jwks_url), forged)
            forged_py: str = "accepted"
        except jwt.InvalidSignatureError:
            forged_py = "refused"

    assert claims["sub"] == account.id
    assert node == {"ok": True, "sub": account.id, "kid": service.jwks[0]["kid"]}
    assert forged_node["ok"] is False
    assert forged_node["code"] == "ERR_JWS_SIGNATURE_VERIFICATION_FAILED"
    assert forged_py == "refused"


async def test_a_key_rotation_is_followed_by_verifiers_that_cached_the_old_set(
    moto_endpoint: str, smtp_server: CapturingSmtpServer
) -> None:
    k1, k2 = new_signing_key(), new_signing_key()
    # One HTTP port for both runs: the verifiers were given one URL.
    base = service_settings(moto_endpoint, smtp_server, http_port=free_port())
    jwks_url = f"http://127.0.0.1:{base.http_port}{JWKS}"
    # Caches the set (300 s) and fetches it again for an unknown kid, 30 s after a fetch at the
    # soonest by default: the rotation below comes sooner.
    py_client = jwt.PyJWKClient(jwks_url, cooldown_duration=COOLDOWN_MS / 1000)

    async with node_verifier(jwks_url) as node:
        # 1. {K1}: K1 signs. Both verifiers fetch the set and cache it.
        async with serving(settings_with_keys(base, k1), smtp_server) as service:
            account = await register(service)
            old_token = await access_token(service, account.email, account.password)
            old_etag = (await fetch(jwks_url)).headers["ETag"]
            assert (await asyncio.to_thread(py_verify, py_client, old_token))["sub"] == account.id
            assert (await node.verify(old_token))["ok"] is True
            k1_kid = service.jwks[0]["kid"]

        # The service is down: both verify from their caches, nothing fetched.
        assert (await asyncio.to_thread(py_verify, py_client, old_token))["sub"] == account.id
        assert (await node.verify(old_token))["ok"] is True
        await asyncio.sleep(COOLDOWN_MS / 1000)

        # 2. {K2 signing, K1 still published}, on the same tables and port.
        async with serving(settings_with_keys(base, k2, k1), smtp_server) as service:
            new_token = await access_token(service, account.email, account.password)
            reply = await fetch(jwks_url)
            not_modified = await fetch(jwks_url, headers={"If-None-Match": old_etag})
            new_kid = jwt.get_unverified_header(new_token)["kid"]

            # The same verifier objects: an unknown kid makes each fetch the set again.
            py_new = await asyncio.to_thread(py_verify, py_client, new_token)
            py_old = await asyncio.to_thread(py_verify, py_client, old_token)
            node_new = await node.verify(new_token)
            node_old = await node.verify(old_token)

    assert [key["kid"] for key in reply.json()["keys"]] == [new_kid, k1_kid]
    assert new_kid != k1_kid
    assert reply.headers["ETag"] != old_etag  # the ETag follows the key set
    assert not_modified.status == 200  # an old copy is not confirmed
    assert py_new["sub"] == py_old["sub"] == account.id
    assert node_new == {"ok": True, "sub": account.id, "kid": new_kid}
    assert node_old == {"ok": True, "sub": account.id, "kid": k1_kid}
