"""Where mail goes, chosen by ``SMTP_URL``:

- ``smtp://host:port`` (port 25 by default), optionally ``smtp://user:password@host:port`` (user
  and password URL-encoded) and ``?starttls=1`` to require STARTTLS (port 587, usually);
- ``smtps://host:port``: TLS from the first byte (port 465 by default);
- empty (the embedded default): no server; each mail is written to the log and counted as sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

log = logging.getLogger("notify.mail")

TIMEOUT = 20.0  # seconds for the whole SMTP exchange of one mail


class MailRefused(Exception):
    """The server refused this mail for good (5xx for every recipient): trying again will not help."""


class Transport(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


@dataclass(frozen=True)
class SmtpTransport:
    hostname: str
    port: int
    username: str | None = None
    password: str | None = None
    use_tls: bool = False
    start_tls: bool = False

    async def send(self, message: EmailMessage) -> None:
        try:
            await aiosmtplib.send(message, hostname=self.hostname, port=self.port, username=self.username,
                                  password=self.password, use_tls=self.use_tls, start_tls=self.start_tls,
                                  timeout=TIMEOUT)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            if all(r.code >= 500 for r in exc.recipients):
                raise MailRefused("; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)) from None
            raise

    def __str__(self) -> str:  # for logs: never the password
        return f"{'smtps' if self.use_tls else 'smtp'}://{self.hostname}:{self.port}"


class LogTransport:
    """No SMTP server configured: the mail goes to the log instead."""

    async def send(self, message: EmailMessage) -> None:
        log.info("mail not sent (SMTP_URL is empty), logged instead: to=%s subject=%r message-id=%s",
                 message["To"], str(message["Subject"]), message["Message-ID"])
        body = message.get_body(("plain",))
        if body is not None:
            log.debug("mail %s text:\n%s", message["Message-ID"], body.get_content())

    def __str__(self) -> str:
        return "the log"


def make_transport(smtp_url: str) -> Transport:
    if not smtp_url.strip():
        return LogTransport()
    url = urlsplit(smtp_url.strip())
    if url.scheme not in ("smtp", "smtps") or not url.hostname:
        raise ValueError(f"SMTP_URL must look like smtp://host:port or smtps://host:port, not {url.scheme}://…")
    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
    use_tls = url.scheme == "smtps"
    return SmtpTransport(hostname=url.hostname, port=url.port or (465 if use_tls else 25),
                         username=unquote(url.username) if url.username else None,
                         password=unquote(url.password) if url.password is not None else None,
                         use_tls=use_tls, start_tls=not use_tls and query.get("starttls", "0").lower() in (
                             "1", "true", "yes"))
