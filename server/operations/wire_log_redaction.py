"""Secrets out of every log record, whoever logs it: installed as logging's record factory.

At DEBUG, botocore and aiobotocore write whole DynamoDB requests and responses (argon2id hashes,
token hashes), the SigV4 ``Authorization`` header, the canonical request and its signature. Levels
are no defence (an operator may turn any logger up), so every record is cleaned when it is made,
before any handler, filter or formatter sees it: its message, its exception's text and its stack.

What is recognised by its form, wherever it appears: header values of ``Authorization``,
``Proxy-Authorization`` and ``X-Amz-Security-Token``, ``Bearer`` and ``Basic`` credentials, argon2
hashes (PHC strings), hex digests of 64 digits or more (token hashes, API-key digests, signatures),
JWTs, this service's refresh and reset tokens (the user id is kept, the secret part is not), API
keys (``usk_...``), PEM private keys, temporary AWS credentials as STS, the instance metadata
service or a credentials file hand them to botocore (``SecretAccessKey``, ``SessionToken``,
``Token``, in XML, JSON or ini form), and SMTP ``AUTH`` arguments. Second factors' stored forms
are recognised by their attributes in a DynamoDB body: a ``Secret`` (the sealed TOTP secret),
the hashes in ``RecoveryCodes``, and a binary ``TokenHash`` (a sign-in challenge's). A JWK
thumbprint (``kid``) is public and stays. Passwords have no form: they are kept out of logs by
never logging a request (server.interceptors.observed_calls).
"""

from __future__ import annotations

import logging
import re
from typing import Any

REDACTED = "[REDACTED]"

_B64URL = "A-Za-z0-9_-"
_UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


# (pattern, replacement), applied in this order: headers first, so their whole value goes.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # 'Authorization': b'AWS4-HMAC-SHA256 Credential=...', authorization: Bearer ..., x-amz-...:
    (
        re.compile(
            r"(?i:\b((?:proxy-)?authorization|x-amz-security-token))"
            r"""(['"]?\s*[:=]\s*(?:b?['"])?)[^'"\r\n]*"""
        ),
        rf"\1\2{REDACTED}",
    ),
    (re.compile(r"(?i:\b(bearer|basic)(\s+))[^\s'\",;]+"), rf"\1\2{REDACTED}"),
    # STS replies (XML) and credential documents (JSON, ini) that botocore logs at DEBUG.
    (re.compile(r"(?i)(<(SecretAccessKey|SessionToken|Token)>)[^<]*"), rf"\1{REDACTED}"),
    (
        re.compile(
            r"""(["']?\b(?:(?i:(?:aws_)?secret_access_key|(?:aws_)?session_token)|"""
            r"""SecretAccessKey|SessionToken)\b["']?\s*[:=]\s*["']?|["']Token["']\s*:\s*["'])"""
            r"""[^"'\s,}]+"""
        ),
        rf"\1{REDACTED}",
    ),
    (re.compile(r"(?i)\b(AUTH\s+(?:PLAIN|LOGIN|XOAUTH2|CRAM-MD5)\s+)\S+"), rf"\1{REDACTED}"),
    (
        re.compile(
            r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
            re.DOTALL,
        ),
        rf"-----BEGIN \1PRIVATE KEY-----{REDACTED}-----END \1PRIVATE KEY-----",
    ),
    (re.compile(r"\$argon2(?:id|i|d)\$[A-Za-z0-9+/=,$.-]*"), REDACTED),
    (re.compile(rf"\beyJ[{_B64URL}]*\.[{_B64URL}]+\.[{_B64URL}]*"), REDACTED),
    (re.compile(rf"({_UUID})\.[{_B64URL}]+"), rf"\1.{REDACTED}"),
    (re.compile(rf"\busk_[{_B64URL}]+"), REDACTED),
    (re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{64,}(?![0-9a-fA-F])"), REDACTED),
    # DynamoDB JSON: "Secret": {"S": "<key id>:<sealed>"}, "RecoveryCodes": {"B": "<base64>"}.
    (re.compile(r"""(["']Secret["']\s*:\s*\{\s*["']S["']\s*:\s*["'])[^"']*"""), rf"\1{REDACTED}"),
    (
        re.compile(r"""(["']RecoveryCodes["']\s*:\s*\{\s*["']B["']\s*:\s*["'])[^"']*"""),
        rf"\1{REDACTED}",
    ),
    # A sign-in challenge's token hash, held as its 32 bytes: "TokenHash": {"B": "<base64>"}.
    (
        re.compile(r"""(["']TokenHash["']\s*:\s*\{\s*["']B["']\s*:\s*["'])[^"']*"""),
        rf"\1{REDACTED}",
    ),
)
# Every secret above holds a keyword (a JWT: "eyJ") or a run of 40 token characters or more; a line
# with neither (an access line, most library lines) is passed over after these cheap checks.
_LONG_RUN = re.compile(rf"(?<![{_B64URL}])[{_B64URL}]{{40}}")
_KEYWORDS = (
    "authorization",
    "security-token",
    "bearer",
    "basic",
    "private key",
    "$argon2",
    "eyj",
    "secretaccesskey",
    "secret_access_key",
    "token",
    "auth ",
    "secret",
    "recoverycodes",
)
_EXCEPTION_FORMATTER = logging.Formatter()


def redact(text: str) -> str:
    """``text`` with every secret it holds replaced by ``[REDACTED]``."""
    if not _LONG_RUN.search(text):
        lower = text.lower()
        for keyword in _KEYWORDS:  # a loop, not any(...): no generator on every record
            if keyword in lower:
                break
        else:
            return text
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


def redact_record(record: logging.LogRecord) -> None:
    """Cleans ``record`` in place: its message (arguments merged in), exception text and stack."""
    try:
        message = record.getMessage()
    except Exception:  # arguments that do not fit the format: logging would print them raw
        message = f"{record.msg} (its arguments are withheld: they did not fit the format)"
        record.args = ()
        record.msg = message
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, ()
    if record.exc_info and record.exc_info[0] is not None:
        # Formatters use exc_text once it is set (ours, and logging.Formatter).
        record.exc_text = redact(_EXCEPTION_FORMATTER.formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class RedactingRecordFactory:
    """A log-record factory: the one it wraps makes the record, then it is redacted."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = self.inner(*args, **kwargs)
        redact_record(record)
        return record


def install_record_redaction() -> None:
    """Makes every log record of the process redacted when it is made (once; idempotent)."""
    current = logging.getLogRecordFactory()
    if not isinstance(current, RedactingRecordFactory):
        logging.setLogRecordFactory(RedactingRecordFactory(current))
