"""The real grpcurl binary signing users in, and calling a service that checks its callers."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Service
from tests.e2e.secured_service import CallerKeys, SecuredService, secured_service, tls_settings
from tests.smtp_server import reset_token_from
from tests.tls_material import TlsMaterial

GRPCURL = Path(sys.executable).parent / "grpcurl"
SERVICE = "biome.user.v1.UserService"
PASSWORD = "correct horse battery"
NEW_PASSWORD = "a brand new passphrase"

pytestmark = pytest.mark.skipif(
    not GRPCURL.exists(), reason=f"grpcurl is not installed next to {sys.executable}"
)


@dataclass(frozen=True)
class Outcome:
    """How a grpcurl run ended: its exit code and what it printed."""

    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.returncode == 0, self.stderr
        return json.loads(self.stdout)


async def grpcurl(*arguments: str, data: str | None = None) -> Outcome:
    """Runs grpcurl without blocking the event loop that the server runs on; bounded in time."""
    process = await asyncio.create_subprocess_exec(
        str(GRPCURL),
        "-connect-timeout",
        "5",
        "-max-time",
        "20",
        *(["-d", data] if data is not None else []),
        *arguments,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Outcome(process.returncode, stdout.decode(), stderr.decode())


# --- (a) the development service, in plaintext ----------------------------------------------------


async def call(service: Service, method: str, request: dict[str, Any]) -> Outcome:
    return await grpcurl(
        "-plaintext", service.target, f"{SERVICE}/{method}", data=json.dumps(request)
    )


async def register(service: Service, email: str) -> dict[str, Any]:
    # A vouched-for address (every caller is an admin in development): no verification mail to
    # wait past, and none that holds a reset mail back under the security mail cool-down.
    request = {
        "email": email,
        "password": PASSWORD,
        "first_name": "Alan",
        "last_name": "Turing",
        "email_verified": True,
    }
    user: dict[str, Any] = (await call(service, "RegisterUser", request)).json()
    return user


def jwt_header(token: str) -> dict[str, Any]:
    encoded = token.split(".")[0]
    header: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    )
    return header


async def test_grpcurl_signs_in_refreshes_and_logs_out(service: Service) -> None:
    user = await register(service, "alan.turing@example.com")

    signed_in = (
        await call(service, "Authenticate", {"email": user["email"], "password": PASSWORD})
    ).json()
    refreshed = (
        await call(service, "RefreshSession", {"refresh_token": signed_in["refresh_token"]})
    ).json()
    jwks = (await call(service, "GetJwks", {})).json()
    logged_out = (
        await call(service, "Logout", {"refresh_token": refreshed["refresh_token"]})
    ).json()
    after_logout = await call(
        service, "RefreshSession", {"refresh_token": refreshed["refresh_token"]}
    )

    assert signed_in["user"]["id"] == user["id"]
    assert signed_in["session_id"] and signed_in["expires_in"] == "900"  # int64: a JSON string
    assert refreshed["refresh_token"] != signed_in["refresh_token"]
    assert refreshed["expires_in"] == "900"
    [key] = jwks["keys"]
    assert (key["kty"], key["crv"], key["alg"]) == ("OKP", "Ed25519", "EdDSA")
    assert jwt_header(signed_in["access_token"])["kid"] == key["kid"]
    assert jwt_header(refreshed["access_token"])["kid"] == key["kid"]
    assert logged_out == {}
    assert after_logout.returncode != 0
    assert "Code: Unauthenticated" in after_logout.stderr


async def test_grpcurl_resets_a_forgotten_password_with_the_mailed_token(
    service: Service,
) -> None:
    email = "joan.clarke@example.com"
    await register(service, email)

    requested = (await call(service, "RequestPasswordReset", {"email": email})).json()
    token = reset_token_from(await service.smtp.wait_for_message(to=email, timeout=10))
    reset = (
        await call(service, "ResetPassword", {"reset_token": token, "new_password": NEW_PASSWORD})
    ).json()
    with_new = await call(service, "Authenticate", {"email": email, "password": NEW_PASSWORD})
    with_old = await call(service, "Authenticate", {"email": email, "password": PASSWORD})

    assert requested == {} and reset == {}
    assert with_new.json()["user"]["email"] == email
    assert with_old.returncode != 0 and "Code: Unauthenticated" in with_old.stderr


async def test_grpcurl_reports_a_wrong_password_as_unauthenticated(service: Service) -> None:
    user = await register(service, "tommy.flowers@example.com")

    outcome = await call(
        service, "Authenticate", {"email": user["email"], "password": "not the password"}
    )

    assert outcome.returncode != 0
    assert "Code: Unauthenticated" in outcome.stderr
    assert outcome.stdout == ""


# --- (b) the service behind TLS, taking API keys or client certificates ---------------------------


async def tls_call(
    secured: SecuredService, *options: str, method: str = "ListUsers", data: str = "{}"
) -> Outcome:
    """grpcurl over TLS trusting the test CA, with ``options``, calling ``method``."""
    return await grpcurl(
        "-cacert",
        str(secured.tls.ca_cert),
        *options,
        secured.target,
        f"{SERVICE}/{method}",
        data=data,
    )


def authorization(key: str) -> tuple[str, str]:
    return "-H", f"authorization: Bearer {key}"


async def test_grpcurl_lists_users_over_tls_with_the_admin_key(
    secured: SecuredService, keys: CallerKeys
) -> None:
    request = {
        "email": "hedy@example.com",
        "password": PASSWORD,
        "firstName": "Hedy",
        "lastName": "Lamarr",
    }
    registered = await tls_call(
        secured, *authorization(keys.plain), method="RegisterUser", data=json.dumps(request)
    )

    listed = await tls_call(secured, *authorization(keys.admin))

    assert [user["id"] for user in listed.json()["users"]] == [registered.json()["id"]]


async def test_grpcurl_without_a_key_is_unauthenticated(secured: SecuredService) -> None:
    outcome = await tls_call(secured)

    assert outcome.returncode != 0
    assert "Code: Unauthenticated" in outcome.stderr


async def test_grpcurl_with_a_key_without_the_admin_role_is_permission_denied(
    secured: SecuredService, keys: CallerKeys
) -> None:
    outcome = await tls_call(secured, *authorization(keys.plain))

    assert outcome.returncode != 0
    assert "Code: PermissionDenied" in outcome.stderr


async def test_grpcurl_lists_the_services_over_tls_without_a_key(secured: SecuredService) -> None:
    outcome = await grpcurl("-cacert", str(secured.tls.ca_cert), secured.target, "list")

    assert outcome.returncode == 0, outcome.stderr
    assert {SERVICE, "grpc.health.v1.Health"} <= set(outcome.stdout.split())


async def test_grpcurl_lists_users_with_an_admin_client_certificate(
    moto_endpoint: str, tls: TlsMaterial
) -> None:
    settings = tls_settings(
        moto_endpoint,
        tls,
        keys=None,
        tls_client_ca_file=tls.ca_cert,
        client_cert_roles={"ops-console": ["admin"]},
    )
    cert, key = tls.client_cert("ops-console")
    other_cert, other_key = tls.client_cert("billing")

    async with secured_service(settings, tls) as running:
        admin = await tls_call(running, "-cert", str(cert), "-key", str(key))
        other = await tls_call(running, "-cert", str(other_cert), "-key", str(other_key))

    assert admin.json() == {}
    assert "Code: PermissionDenied" in other.stderr
