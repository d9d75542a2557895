"""The README stays true: its grpcurl sessions work as pasted, its settings table is complete."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from pathlib import Path

import grpc
from biome.user.v1 import user_service_pb2 as pb
from biome.user.v1.user_service_pb2_grpc import UserServiceStub

from server.app import running_service
from server.crypto.api_keys import api_key_sha256, new_api_key
from server.settings import ApiKey, Settings
from tests.e2e.harness import Service, rpc_error, service_settings
from tests.tls_material import make_tls_material

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_block_after(heading: str) -> str:
    text = README.read_text()
    section = text.split(f"## {heading}\n", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match, f"no bash block under '## {heading}'"
    return match.group(1)


async def run_block(script: str, *, cwd: Path = README.parent, **variables: str) -> str:
    """Runs a README bash block with bash -euo pipefail; its standard output."""
    code, output, errors = await run_bash(script, cwd=cwd, **variables)
    assert code == 0, errors + output
    return output


async def run_bash(script: str, *, cwd: Path, **variables: str) -> tuple[int, str, str]:
    """Runs a script with bash -euo pipefail: its exit code, standard output and error."""
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        **variables,
    )
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-euo",
        "pipefail",
        "-c",
        script,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_readme_grpcurl_session_works_as_pasted(service: Service) -> None:
    script = readme_block_after("A grpcurl session").replace("localhost:50051", service.target)

    output = await run_block(script)

    assert "biome.user.v1.UserService" in output and "grpc.health.v1.Health" in output
    assert '"status": "SERVING"' in output
    assert '"first_name": "Augusta Ada"' in output
    assert '"email": "Ada@Example.com"' in output
    gone = await rpc_error(
        service.stub.GetUserByEmail(pb.GetUserByEmailRequest(email="ada@example.com"))
    )
    assert gone.code() is grpc.StatusCode.NOT_FOUND


def test_readme_configuration_table_names_every_setting() -> None:
    text = README.read_text()
    missing = [name for name in Settings.model_fields if f"USER_SERVICE_{name.upper()}" not in text]
    assert missing == []


async def test_readme_sign_in_session_works_as_pasted(moto_endpoint: str, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    settings = service_settings(moto_endpoint, notifier="outbox", outbox_dir=outbox)
    async with running_service(settings, address="127.0.0.1:0") as running:
        target = f"127.0.0.1:{running.port}"
        script = readme_block_after("Sign-in, sessions and password reset with grpcurl")
        script = script.replace("localhost:50051", target).replace("outbox/", f"{outbox}/")

        output = await run_block(script)

        async with grpc.aio.insecure_channel(target) as channel:
            stub = UserServiceStub(channel)
            gone = await rpc_error(
                stub.GetUserByEmail(pb.GetUserByEmailRequest(email="grace@example.com"))
            )
    assert '"kty": "OKP"' in output and '"crv": "Ed25519"' in output
    assert '"device_label": "Work phone"' in output
    assert '2001:db8::42"' in output  # stored in canonical form
    assert "the phone's refresh token is refused" in output
    assert '"sessions_ended": 1' in output  # the one opened with the reset password
    assert '"status": "USER_STATUS_DISABLED"' in output
    assert len(list(outbox.glob("*.eml"))) == 1
    assert gone.code() is grpc.StatusCode.NOT_FOUND


async def test_readme_email_change_session_works_as_pasted(
    moto_endpoint: str, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    settings = service_settings(moto_endpoint, notifier="outbox", outbox_dir=outbox)
    async with running_service(settings, address="127.0.0.1:0") as running:
        target = f"127.0.0.1:{running.port}"
        script = readme_block_after("Email change with grpcurl")
        script = script.replace("localhost:50051", target).replace("outbox/", f"{outbox}/")

        output = await run_block(script)

        async with grpc.aio.insecure_channel(target) as channel:
            stub = UserServiceStub(channel)
            gone = [
                await rpc_error(stub.GetUserByEmail(pb.GetUserByEmailRequest(email=email)))
                for email in ("lin.chen@example.org", "max.roth@example.net", "lin@example.com")
            ]
    assert '"expires_at"' in output
    assert '"email": "lin.chen@example.org"' in output
    assert '"email": "max.roth@example.net"' in output
    assert output.count('"email_verified": true') == 2
    assert output.count("{\n  \n}") == 3  # the empty replies of the cancel and the two deletes
    assert len(list(outbox.glob("*.eml"))) == 4  # two for each request
    assert {error.code() for error in gone} == {grpc.StatusCode.NOT_FOUND}


async def test_readme_totp_enrollment_session_works_as_pasted(
    moto_endpoint: str, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    settings = service_settings(moto_endpoint, notifier="outbox", outbox_dir=outbox)
    async with running_service(settings, address="127.0.0.1:0") as running:
        target = f"127.0.0.1:{running.port}"
        script = readme_block_after("TOTP enrollment with grpcurl").replace(
            "localhost:50051", target
        )

        output = await run_block(script)

        async with grpc.aio.insecure_channel(target) as channel:
            gone = await rpc_error(
                UserServiceStub(channel).GetUserByEmail(
                    pb.GetUserByEmailRequest(email="kim@example.com")
                )
            )
    assert "otpauth://totp/Biome:kim%40example.com?secret=" in output
    assert '"totp_enabled": true' in output and '"recovery_codes_remaining": 10' in output
    # Once: DisableTotp's reply has it false, a default grpcurl does not show.
    assert output.count('"totp_enabled": true') == 1
    assert '"version": "3"' in output
    assert output.count("{\n  \n}") == 1  # the empty reply of the delete
    assert len(list(outbox.glob("*.eml"))) == 2  # the notices: added, then removed
    assert gone.code() == grpc.StatusCode.NOT_FOUND


async def test_readme_email_verification_session_works_as_pasted(
    moto_endpoint: str, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    settings = service_settings(moto_endpoint, notifier="outbox", outbox_dir=outbox)
    async with running_service(settings, address="127.0.0.1:0") as running:
        target = f"127.0.0.1:{running.port}"
        script = readme_block_after("Email verification with grpcurl")
        script = script.replace("localhost:50051", target).replace("outbox/", f"{outbox}/")

        output = await run_block(script)

        async with grpc.aio.insecure_channel(target) as channel:
            stub = UserServiceStub(channel)
            gone = [
                await rpc_error(stub.GetUserByEmail(pb.GetUserByEmailRequest(email=email)))
                for email in ("katherine@example.com", "dorothy@example.com")
            ]
    assert output.count('"email_verified": true') == 2  # both VerifyEmail replies
    assert "\nTrue\n" in output  # GetUser's email_verified, through field
    assert len(list(outbox.glob("*.eml"))) == 2  # the resend within the minute mailed nothing
    assert {error.code() for error in gone} == {grpc.StatusCode.NOT_FOUND}


async def test_readme_second_factor_session_works_as_pasted(
    moto_endpoint: str, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox"
    settings = service_settings(moto_endpoint, notifier="outbox", outbox_dir=outbox)
    async with running_service(settings, address="127.0.0.1:0") as running:
        target = f"127.0.0.1:{running.port}"
        script = readme_block_after("Sign-in with a second factor (TOTP) with grpcurl")
        script = script.replace("localhost:50051", target)

        output = await run_block(script)

        async with grpc.aio.insecure_channel(target) as channel:
            stub = UserServiceStub(channel)
            gone = await rpc_error(
                stub.GetUserByEmail(pb.GetUserByEmailRequest(email="mary@example.com"))
            )
    lines = output.splitlines()
    assert "['SIGN_IN_FACTOR_TOTP', 'SIGN_IN_FACTOR_RECOVERY_CODE']" in lines
    assert lines.count("['pwd', 'otp']") == 2  # the TOTP sign-in's token and the recovery code's
    assert "the used code is refused" in lines
    assert "9" in lines  # recovery codes remaining
    assert gone.code() is grpc.StatusCode.NOT_FOUND


async def test_readme_tls_and_api_key_block_works_as_pasted(
    moto_endpoint: str, tmp_path: Path
) -> None:
    material = make_tls_material(tmp_path)
    shutil.copy(material.ca_cert, tmp_path / "ca.pem")
    key = new_api_key()
    settings = service_settings(
        moto_endpoint,
        tls_cert_file=material.server_cert,
        tls_key_file=material.server_key,
        api_keys=[ApiKey(name="billing", sha256=api_key_sha256(key), roles=("admin",))],
    )
    async with running_service(settings, address="127.0.0.1:0") as running:
        script = readme_block_after("Calling a server with TLS and API keys")
        script = script.replace("localhost:50051", f"localhost:{running.port}")

        output = await run_block(script, cwd=tmp_path, API_KEY=key)
        code, before_failure, errors = await run_bash(
            script, cwd=tmp_path, API_KEY="usk_not-a-valid-key"
        )

    assert output.startswith('{\n  "status": "SERVING"\n}\n{')  # then an empty page: no users
    # Health needs no key; ListUsers with a wrong one is refused.
    assert code != 0 and '"status": "SERVING"' in before_failure
    assert "Code: Unauthenticated" in errors
