"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for tests to read back."""

from __future__ import annotations

import asyncio
import email
import email.policy
import email.utils
import re
import socket
import ssl
import threading
import time
import urllib.parse
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.tls_material import make_tls_material

LOOPBACK = "127.0.0.1"
_TOKEN_IN_LINK = re.compile(r"[?&]token=([^\s&#]+)")
_CODE_IN_TEXT = re.compile(r"\bcode\b\D{0,40}?\b(\d{6})\b", re.IGNORECASE)


class CapturingSmtpServer:
    """An aiosmtpd server on 127.0.0.1 (its own thread and event loop) that keeps every message.

    ``starttls_context`` offers STARTTLS (``require_starttls`` refuses mail without it);
    ``implicit_tls_context`` speaks TLS from the first byte instead. ``credentials`` (login,
    password) accepts that login only (``logins`` records each success); AUTH is then
    mandatory, and offered only after STARTTLS (merely accepted over implicit TLS).
    Use as ``async with CapturingSmtpServer() as smtp:`` (or ``with``, or start()/stop()).
    """

    def __init__(
        self,
        *,
        starttls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        implicit_tls_context: ssl.SSLContext | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        if starttls_context is not None and implicit_tls_context is not None:
            raise ValueError("STARTTLS and implicit TLS exclude each other")
        self.host = LOOPBACK
        self.port = 0
        self.logins: list[str] = []
        self._credentials = credentials
        self._lock = threading.Lock()
        self._received: list[tuple[tuple[str, ...], EmailMessage]] = []
        self._handed_out: set[int] = set()
        smtp_options: dict[str, Any] = {
            # A fixed name: aiosmtpd would otherwise look up this host's FQDN.
            "server_hostname": "localhost",
            "ssl_context": implicit_tls_context,
            "tls_context": starttls_context,
            "require_starttls": require_starttls,
        }
        if credentials is not None:
            smtp_options["authenticator"] = self._authenticate
            # aiosmtpd counts only STARTTLS as encryption, not implicit TLS; and it warns
            # when AUTH is required but TLS is not. Over implicit TLS, AUTH stays optional.
            implicit = implicit_tls_context is not None
            smtp_options["auth_required"] = not implicit
            smtp_options["auth_require_tls"] = not implicit
        self._smtp_options = smtp_options
        self._controller: _LoopbackController | None = None

    @property
    def messages(self) -> list[EmailMessage]:
        """Every message received so far, oldest first (parsed with email.policy.default)."""
        with self._lock:
            return [message for _, message in self._received]

    def start(self) -> None:
        if self._controller is not None:
            raise RuntimeError("the SMTP server is already running")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind((LOOPBACK, 0))
            listener.listen()
            controller = _LoopbackController(_Handler(self), listener, **self._smtp_options)
        except BaseException:
            listener.close()
            raise
        try:
            controller.start()
        except BaseException:
            controller.stop(no_assert=True)
            listener.close()
            raise
        self.port = controller.port
        self._controller = controller

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> CapturingSmtpServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> CapturingSmtpServer:
        # start() and stop() block briefly on the server's thread; keep the test's loop free.
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    async def wait_for_message(
        self,
        *,
        to: str,
        timeout: float = 5.0,  # noqa: ASYNC109 (a wait for mail, not a cancellable operation)
    ) -> EmailMessage:
        """The oldest message to ``to`` that no earlier call returned, waiting for it if need be.

        Recipients are compared case-insensitively against the envelope and the To header.
        """
        wanted = to.casefold()
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                for index, (recipients, message) in enumerate(self._received):
                    if index not in self._handed_out and wanted in recipients:
                        self._handed_out.add(index)
                        return message
            if time.monotonic() >= deadline:
                raise AssertionError(f"no new message to {to} within {timeout} s")
            await asyncio.sleep(0.01)

    def _keep(self, envelope: Envelope) -> None:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        header_recipients = [
            address for _, address in email.utils.getaddresses(message.get_all("To", []))
        ]
        recipients = {address.casefold() for address in [*envelope.rcpt_tos, *header_recipients]}
        with self._lock:
            self._received.append((tuple(sorted(recipients)), message))

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword) or self._credentials is None:
            return AuthResult(success=False, handled=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        if (login, password) != self._credentials:
            return AuthResult(success=False, handled=False)
        with self._lock:
            self.logins.append(login)
        return AuthResult(success=True)


class _Handler:
    """aiosmtpd handler: accept every message and hand it to the server object."""

    def __init__(self, server: CapturingSmtpServer) -> None:
        self._server = server

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self._server._keep(envelope)
        return "250 Message accepted for delivery"


class _LoopbackController(Controller):
    """A Controller that serves on a socket already bound to a free loopback port.

    aiosmtpd 1.4.6 cannot listen on port 0 itself: after binding it connects to
    ``self.port`` to check that the server answers, which would be port 0.
    """

    def __init__(self, handler: Any, listener: socket.socket, **kwargs: Any) -> None:
        host, port = listener.getsockname()[:2]
        super().__init__(handler, hostname=host, port=port, **kwargs)
        self._listener = listener

    def _create_server(self) -> Any:
        return self.loop.create_server(
            self._factory_invoker, sock=self._listener, ssl=self.ssl_context
        )


def reset_token_from(message: EmailMessage) -> str:
    """The raw token carried by the ``token=`` parameter of the link in a security message (reset,
    lock notice, verification, email change or its notice, with the default link templates)."""
    body = message.get_body(preferencelist=("plain", "html"))
    assert body is not None, "the message has no text body"
    match = _TOKEN_IN_LINK.search(body.get_content())
    assert match is not None, "the message has no link with a token= parameter"
    return urllib.parse.unquote(match.group(1))


def verification_code_from(message: EmailMessage) -> str:
    """The 6-digit code a verification message gives (the first 6 digits after the word code)."""
    body = message.get_body(preferencelist=("plain", "html"))
    assert body is not None, "the message has no text body"
    match = _CODE_IN_TEXT.search(body.get_content())
    assert match is not None, "the message has no 6-digit code"
    return match.group(1)


def loopback_tls_contexts(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts: the test CA's certificate for 127.0.0.1 and localhost, and a
    client that trusts that CA and checks the host name (files written into ``directory``)."""
    material = make_tls_material(directory)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(material.server_cert, material.server_key)
    client = ssl.create_default_context(cafile=str(material.ca_cert))
    return server, client
