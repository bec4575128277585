"""A real SMTP server for tests (aiosmtpd, in its own thread) that keeps what it receives."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from tests.support.servers import free_port


@dataclass
class Received:
    recipients: list[str]
    raw: bytes
    message: EmailMessage


class Mailbox:
    """The aiosmtpd handler: accepts every mail, except to addresses in ``refuse`` (550)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.refuse: set[str] = set()
        self._lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address: str, rcpt_options: list) -> str:
        if address in self.refuse:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope) -> str:
        raw = envelope.original_content or envelope.content
        with self._lock:
            self.received.append(Received(list(envelope.rcpt_tos), raw,
                                          message_from_bytes(raw, policy=policy.default)))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [r.message for r in self.received if address in r.recipients]

    def raw_to(self, address: str) -> list[bytes]:
        with self._lock:
            return [r.raw for r in self.received if address in r.recipients]

    async def wait(self, address: str, count: int = 1, timeout: float = 10.0, settle: float = 0.5
                   ) -> list[EmailMessage]:
        """The mail to ``address`` once ``count`` arrived (or the time is up), after ``settle`` more
        seconds in which a duplicate would show up."""
        for _ in range(int(timeout / 0.05)):
            if len(self.to(address)) >= count:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(settle)
        return self.to(address)


@contextlib.contextmanager
def smtp_server(port: int | None = None, mailbox: Mailbox | None = None) -> Iterator[tuple[int, Mailbox]]:
    mailbox = mailbox or Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port or free_port())
    controller.start()
    try:
        yield controller.port, mailbox
    finally:
        controller.stop()
