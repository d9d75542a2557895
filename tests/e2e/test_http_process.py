"""`user-service serve` as a process: its HTTP listener over HTTPS answers probes as the kubelet
asks them (no certificate check, none presented) and the keys as a verifier fetches them; the
production profile refuses the listener without an https public URL, in one line."""

from __future__ import annotations

import asyncio
import signal
import ssl
import time
from pathlib import Path

import jwt

from tests.conftest import free_port
from tests.e2e.http_kit import JWKS, fetch
from tests.e2e.test_cli import cli_environment, run_cli, start_cli
from tests.tls_material import make_tls_material
from tests.unit.server.test_settings import API_KEY_ENTRY, TOTP_KEYS

GRACE_SECONDS = 3.0


def like_the_kubelet() -> ssl.SSLContext:
    """An httpGet probe with scheme HTTPS: TLS, but no certificate checked."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def test_serve_answers_probes_and_keys_over_https(tmp_path: Path) -> None:
    material = make_tls_material(tmp_path)
    port, http_port = free_port(), free_port()
    environment = cli_environment(
        USER_SERVICE_PORT=str(port),
        USER_SERVICE_HTTP_PORT=str(http_port),
        USER_SERVICE_TLS_CERT_FILE=str(material.server_cert),
        USER_SERVICE_TLS_KEY_FILE=str(material.server_key),
        USER_SERVICE_TLS_CLIENT_CA_FILE=str(material.ca_cert),
        USER_SERVICE_SHUTDOWN_GRACE_SECONDS=str(GRACE_SECONDS),
    )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        environment.pop(name, None)  # a local endpoint in development needs no credentials
    base = f"https://127.0.0.1:{http_port}"
    process = await start_cli("serve", environment=environment)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.returncode is None, "the server exited early"
            assert time.monotonic() < deadline, "/readyz did not answer 200 within 30 s"
            try:
                if (await fetch(base + "/readyz", ssl_context=like_the_kubelet())).status == 200:
                    break
            except OSError:  # not listening yet (aiohttp's connection errors are OSErrors)
                pass
            await asyncio.sleep(0.1)
        alive = await fetch(base + "/healthz", ssl_context=like_the_kubelet())
        trusting = ssl.create_default_context(cafile=str(material.ca_cert))
        client = jwt.PyJWKClient(f"https://localhost:{http_port}{JWKS}", ssl_context=trusting)
        keys = await asyncio.to_thread(client.get_signing_keys)
    finally:
        process.send_signal(signal.SIGTERM)
        output, errors = await asyncio.wait_for(process.communicate(), GRACE_SECONDS + 10)

    assert process.returncode == 0, output.decode() + errors.decode()
    assert alive.status == 200
    assert len(keys) == 1 and keys[0].algorithm_name == "EdDSA"
    assert f"HTTP (TLS) on 127.0.0.1:{http_port}" in output.decode()


async def test_production_refuses_the_listener_without_an_https_public_url() -> None:
    environment = cli_environment(
        USER_SERVICE_PROFILE="production",
        AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:9",
        USER_SERVICE_ALLOW_PLAINTEXT="true",
        USER_SERVICE_API_KEYS=API_KEY_ENTRY,
        USER_SERVICE_JWT_SIGNING_KEYS_FILE="/run/secrets/jwt-signing-keys.pem",
        USER_SERVICE_TOTP_ENCRYPTION_KEYS=TOTP_KEYS,
        USER_SERVICE_HTTP_PORT="8443",
        USER_SERVICE_HTTP_PUBLIC_URL="http://user-service.internal:8443",
    )

    code, _, stderr = await run_cli("serve", environment=environment)

    assert code == 2
    [line] = stderr.strip().splitlines()
    assert line.startswith(
        "user-service: invalid settings: production needs USER_SERVICE_HTTP_PUBLIC_URL"
    )
