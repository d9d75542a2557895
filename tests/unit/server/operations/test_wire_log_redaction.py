"""Every log record loses its secrets when it is made, whoever logs it and at whatever level."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import secrets
from collections.abc import Iterator
from uuid import uuid4

import pytest

from domain.secret_tokens import issue_token
from domain.values import UserId
from server.crypto.access_tokens import generate_signing_keys, signing_key_pem
from server.crypto.api_keys import new_api_key
from server.operations.logging_config import configure_logging
from server.operations.wire_log_redaction import (
    REDACTED,
    RedactingRecordFactory,
    install_record_redaction,
    redact,
)

ARGON2_HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g"
SIGV4 = (
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261206/us-east-1/dynamodb/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + "5d" * 32
)


@pytest.fixture(autouse=True)
def restored_logging() -> Iterator[None]:
    """The record factory and the root's handlers are process-wide: put them back."""
    factory = logging.getLogRecordFactory()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    logging.setLogRecordFactory(factory)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


class KeepingHandler(logging.Handler):
    """Keeps every record it is handed, as it was handed."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def a_token() -> str:
    return issue_token(UserId.parse(str(uuid4()))).value


def test_botocore_request_repr_loses_the_authorization_header_and_security_token() -> None:
    line = (
        "Sending http request: <AWSPreparedRequest stream_output=False, method=POST, "
        "url=https://dynamodb.us-east-1.amazonaws.com/, headers={'X-Amz-Target': "
        "b'DynamoDB_20120810.GetItem', 'Authorization': b'" + SIGV4 + "', "
        "'X-Amz-Security-Token': b'IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ', "
        "'Content-Length': '93'}>"
    )

    clean = redact(line)

    assert "Credential=" not in clean and "Signature=" not in clean
    assert "IQoJb3JpZ2lu" not in clean
    assert f"'Authorization': b'{REDACTED}'" in clean
    assert "'X-Amz-Target': b'DynamoDB_20120810.GetItem'" in clean  # the rest stays readable
    assert "'Content-Length': '93'" in clean


def test_dynamodb_bodies_lose_password_hashes_and_token_hashes_but_keep_the_rest() -> None:
    token_hash = hashlib.sha256(a_token().encode()).hexdigest()
    body = json.dumps(
        {
            "Item": {
                "Id": {"S": "0b6f0c3e-8a4e-4d8e-9a55-2f1d4d2d7e11"},
                "PasswordHash": {"S": ARGON2_HASH},
                "Sessions": {"L": [{"M": {"TokenHash": {"S": token_hash}}}]},
                "FirstName": {"S": "Ada"},
            }
        }
    )

    clean = redact(f"Response body:\n{body.encode()!r}")

    assert ARGON2_HASH not in clean and "$argon2" not in clean
    assert token_hash not in clean
    assert '"Id": {"S": "0b6f0c3e-8a4e-4d8e-9a55-2f1d4d2d7e11"}' in clean
    assert '"FirstName": {"S": "Ada"}' in clean


def test_sigv4_signature_and_canonical_request_hashes_are_redacted() -> None:
    signature = secrets.token_hex(32)

    assert redact(f"Signature:\n{signature}") == f"Signature:\n{REDACTED}"


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param(a_token(), id="refresh or reset token"),
        pytest.param(new_api_key(), id="API key"),
        pytest.param("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", id="JWT"),
        pytest.param(secrets.token_hex(32), id="hex digest"),
    ],
)
def test_tokens_keys_and_digests_are_redacted_wherever_they_appear(secret: str) -> None:
    for text in (secret, f"token={secret}&x=1", f"'{secret}'", f"link https://x/r?t={secret}\n"):
        assert secret not in redact(text), text


def test_a_token_keeps_its_user_id_and_a_reset_link_its_shape() -> None:
    token = a_token()
    user_id = token.partition(".")[0]

    clean = redact(f"https://accounts.example.com/reset-password?token={token}")

    assert clean == f"https://accounts.example.com/reset-password?token={user_id}.{REDACTED}"


def test_bearer_credentials_and_pem_private_keys_are_redacted() -> None:
    key = new_api_key()
    pem = signing_key_pem(generate_signing_keys())

    assert redact(f"authorization: Bearer {key}") == f"authorization: {REDACTED}"
    assert redact(f"got Bearer {key}, retrying") == f"got Bearer {REDACTED}, retrying"
    clean = redact(f"loaded\n{pem}done")
    assert "PRIVATE KEY-----" + REDACTED in clean and clean.endswith("done")
    assert pem.splitlines()[1] not in clean


SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDexample+abc/def=="


@pytest.mark.parametrize(
    "line",
    [
        # STS AssumeRoleWithWebIdentity (IRSA), as botocore logs the response body at DEBUG
        "Response body:\nb'<Credentials><AccessKeyId>ASIAEXAMPLE</AccessKeyId>"
        f"<SecretAccessKey>{SECRET_KEY}</SecretAccessKey>"
        f"<SessionToken>{SESSION_TOKEN}</SessionToken></Credentials>'",
        # the container / instance metadata credentials document
        f'Response body: {{"AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"{SECRET_KEY}",'
        f'"Token":"{SESSION_TOKEN}","Expiration":"2026-12-06T22:00:00Z"}}',
        # a shared credentials file's lines
        f"aws_secret_access_key = {SECRET_KEY}\naws_session_token={SESSION_TOKEN}",
    ],
)
def test_temporary_aws_credentials_are_redacted_and_the_key_id_kept(line: str) -> None:
    clean = redact(line)
    assert SECRET_KEY not in clean and SESSION_TOKEN not in clean
    assert "ASIAEXAMPLE" in clean or "aws_secret_access_key" in clean


def test_smtp_auth_arguments_are_redacted() -> None:
    assert redact("send: 'AUTH PLAIN AHVzZXIAc2VjcmV0cGFzc3dvcmQ='") == (
        f"send: 'AUTH PLAIN {REDACTED}"
    )


@pytest.mark.parametrize(
    "line",
    [
        "/biome.user.v1.UserService/GetUser NOT_FOUND 4.5 ms from ipv4:127.0.0.1:58378 "
        "request_id=4bf92f3577b34da6a1b2c3d4e5f60718",
        "DynamoDB TransactWriteItems needed 2 retries: ok (ClientRequestToken "
        "0b6f0c3e-8a4e-4d8e-9a55-2f1d4d2d7e11)",
        "Event before-send.dynamodb.GetItem: calling handler <function "
        "test_no_log_record_at_any_level_holds_a_password>",
        "x-amzn-requestid: ZKRUBD3T5VQ0J4JDDKA3SCNT0LVV4KQNSO5AEMVJF66Q9ASUAAJG",
        # A signing key's public thumbprint: operators match it with GetJwks.
        f"generated one for this run (kid {generate_signing_keys().kid}); set a key file",
    ],
)
def test_ordinary_lines_pass_unchanged(line: str) -> None:
    assert redact(line) == line


def test_installed_every_record_is_clean_for_every_handler_and_level() -> None:
    token = a_token()
    install_record_redaction()
    install_record_redaction()  # idempotent: one wrapper, not two
    factory = logging.getLogRecordFactory()
    assert isinstance(factory, RedactingRecordFactory)
    assert not isinstance(factory.inner, RedactingRecordFactory)
    handler = KeepingHandler()
    seen = handler.records
    logger = logging.getLogger("botocore.test_wire_log_redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug("Response body:\n%r", f'{{"PasswordHash": {{"S": "{ARGON2_HASH}"}}}}')
        try:
            raise RuntimeError(f"refresh with {token} failed")
        except RuntimeError:
            logger.exception("refresh failed")
        logger.debug("with %s", token, stack_info=True)
    finally:
        logger.removeHandler(handler)

    texts = ["\n".join([r.getMessage(), r.exc_text or "", r.stack_info or ""]) for r in seen]
    assert len(texts) == 3
    assert not [text for text in texts if ARGON2_HASH in text or token in text]
    assert "RuntimeError" in texts[1]  # the trace is there, its secret is not


def test_configure_logging_installs_it_and_json_lines_use_the_redacted_trace() -> None:
    token = a_token()
    stream = io.StringIO()
    configure_logging("DEBUG", log_format="json", stream=stream)

    try:
        raise ValueError(f"bad token {token}")
    except ValueError:
        logging.getLogger("aiobotocore.endpoint").exception("failed %s", token)

    [entry] = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert token not in json.dumps(entry)
    assert "ValueError" in entry["exception"] and REDACTED in entry["message"]


def test_arguments_that_do_not_fit_the_format_are_withheld_not_printed() -> None:
    token = a_token()
    install_record_redaction()
    record = logging.getLogger("app").makeRecord(
        "app", logging.INFO, __file__, 1, "two %s %s", (token,), None
    )

    assert token not in record.getMessage()
    assert "withheld" in record.getMessage()


def test_a_sealed_totp_secret_and_recovery_code_hashes_in_a_dynamodb_body_are_redacted() -> None:
    sealed = "k1:" + secrets.token_urlsafe(46)
    packed = secrets.token_bytes(80)
    hashes = [base64.b64encode(packed).decode()]  # botocore's JSON holds binary as base64
    item = {
        "Totp": {"M": {"Secret": {"S": sealed}, "LastStep": {"N": "5"}}},
        "RecoveryCodes": {"B": hashes[0]},
        "FirstName": {"S": "Ada"},
    }
    body = json.dumps({"Item": item}).encode()
    for line in (f"Response body: {body!r}", f"Request body: {json.dumps(item, indent=1)}"):
        clean = redact(line)
        assert sealed not in clean and sealed.partition(":")[2] not in clean
        assert not any(h in clean for h in hashes), clean
        assert "Ada" in clean and REDACTED in clean


def test_a_sign_in_challenges_binary_token_hash_in_a_dynamodb_body_is_redacted() -> None:
    digest = base64.b64encode(secrets.token_bytes(32)).decode()  # as botocore's JSON holds it
    challenge = {"M": {"TokenHash": {"B": digest}, "ExpiresAt": {"N": "1796605388"}}}
    item = {"SignInChallenges": {"L": [challenge]}, "FirstName": {"S": "Ada"}}
    body = json.dumps({"Item": item}).encode()
    for line in (f"Response body: {body!r}", f"Request body: {json.dumps(item, indent=1)}"):
        clean = redact(line)
        assert digest not in clean and "1796605388" in clean, clean
        assert "Ada" in clean and REDACTED in clean
