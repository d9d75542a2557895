"""Delivers notifications after the reply: a caller's wait never depends on mail delivery."""

from __future__ import annotations

import asyncio
import logging

from domain.ports import Notifier, PasswordResetMail

log = logging.getLogger(__name__)


class BackgroundNotifier:
    """domain.ports.Notifier that hands each message to ``inner`` in a task of its own.

    RequestPasswordReset then replies as fast for an address with an account (mail to
    send) as for one without; a failed delivery is logged, never shown to the caller.
    ``drain`` waits for deliveries still under way, at shutdown.
    """

    def __init__(self, inner: Notifier) -> None:
        self._inner = inner
        self._tasks: set[asyncio.Task[None]] = set()

    async def send_password_reset(self, mail: PasswordResetMail) -> None:
        task = asyncio.create_task(self._deliver(mail), name="password-reset-mail")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, grace_seconds: float) -> None:
        """Wait up to ``grace_seconds`` for deliveries under way; cancel what is left."""
        if not self._tasks:
            return
        pending = set(self._tasks)
        _, unfinished = await asyncio.wait(pending, timeout=grace_seconds)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        if unfinished:
            log.warning("%d password-reset mail(s) not delivered before shutdown", len(unfinished))

    async def _deliver(self, mail: PasswordResetMail) -> None:
        try:
            await self._inner.send_password_reset(mail)
        except Exception as error:
            # The text is the transport's; it never holds the token, which is in the body.
            log.error("password-reset mail delivery failed: %s: %s", type(error).__name__, error)
