"""The mail sender: a background task that sends the queued mail, at least once, retrying with backoff.

- It wakes as soon as a transaction that queued mail commits (``Database.after_commit``), and
  otherwise sleeps until the next retry is due (at most ``NOTIFY_MAIL_POLL_INTERVAL``), so it picks up
  after a restart whatever was left.
- A job is claimed before it is sent (``attempts`` moves on, ``next_attempt_at`` is pushed a lease
  ahead): two senders never send the same job at once, and one that died mid-send is retried after
  the lease.
- A failure is retried with ``common.worker.backoff`` (1 s, 2 s, 4 s … up to an hour); after
  ``NOTIFY_MAIL_MAX_ATTEMPTS`` tries, or when the server refuses the address for good, the job is
  dead: kept with its last error, listed and replayed with ``python -m services.notify dead-mail``.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from email.utils import parseaddr

from fastapi import FastAPI
from sqlalchemy import select, update

from common.db import Database
from common.outbox import continued
from common.tracing import outcome
from common.worker import Worker, backoff, due_in
from services.notify.mail.models import MailJob, MailState, utcnow
from services.notify.mail.queue import queue_mail
from services.notify.mail.render import message_for
from services.notify.mail.transport import MailRefused, Transport, make_transport
from services.notify.metrics import MAIL_FAILURES

log = logging.getLogger("notify.mail")

LEASE = dt.timedelta(seconds=120)  # longer than one SMTP exchange may take (transport.TIMEOUT)
RETRY_CAP = 3600.0


class MailSender(Worker):
    """A worker whose round sends the mail that is due; between rounds it sleeps until the next retry
    is due, at most ``poll_interval``."""

    def __init__(self, db: Database, transport: Transport, mail_from: str, *, max_attempts: int = 16,
                 poll_interval: float = 30.0, batch: int = 50) -> None:
        super().__init__("mail-sender", self.run_once, interval=poll_interval, next_due=self._until_next_due)
        self.db, self.transport, self.mail_from = db, transport, mail_from
        self.max_attempts, self.batch = max_attempts, batch

    async def _until_next_due(self) -> float:
        return await due_in(self.db, MailJob.next_attempt_at, MailJob.state == MailState.pending,
                            cap=self.interval, floor=0.05)

    async def run_once(self) -> bool:
        """Send the mail that is due. True when a full batch was taken (there may be more)."""
        async with self.db.sessionmaker() as session:
            jobs = (await session.scalars(
                select(MailJob).where(MailJob.state == MailState.pending, MailJob.next_attempt_at <= utcnow())
                .order_by(MailJob.next_attempt_at, MailJob.created_at).limit(self.batch))).all()
        for job in jobs:
            if not await self._claim(job):
                continue  # another sender took it
            with continued(job, f"mail {job.template}") as span:
                await self._send(job, span)
        return len(jobs) == self.batch

    async def _send(self, job: MailJob, span) -> None:
        try:
            message = message_for(job, self.mail_from)
        except Exception as exc:  # noqa: BLE001 - a template error: retried, so a fix can still send it
            log.exception("mail %s (%s) could not be rendered", job.id, job.template)
            outcome(span, error="render")
            await self._failed(job, f"render: {type(exc).__name__}: {exc}")
            return
        try:
            await self.transport.send(message)
        except MailRefused as exc:
            outcome(span, error="refused")
            await self._failed(job, f"refused: {exc}", permanent=True)
        except Exception as exc:  # noqa: BLE001 - unreachable, timed out, 4xx: all retried
            outcome(span, error=type(exc).__name__)
            await self._failed(job, f"{type(exc).__name__}: {exc}")
        else:
            await self._sent(job)

    async def _claim(self, job: MailJob) -> bool:
        async with self.db.sessionmaker() as session:
            result = await session.execute(
                update(MailJob).where(MailJob.id == job.id, MailJob.state == MailState.pending,
                                      MailJob.attempts == job.attempts)
                .values(attempts=job.attempts + 1, next_attempt_at=utcnow() + LEASE))
            await session.commit()
        job.attempts += 1
        return result.rowcount == 1

    async def _sent(self, job: MailJob) -> None:
        log.info("mail %s (%s) sent to %s via %s", job.id, job.template, job.recipient, self.transport)
        await self._set(job.id, state=MailState.sent, sent_at=utcnow())

    async def _failed(self, job: MailJob, error: str, permanent: bool = False) -> None:
        dead = permanent or job.attempts >= self.max_attempts
        MAIL_FAILURES.labels("dead" if dead else "retry").inc()
        if dead:
            log.error("mail %s (%s) to %s given up after %d tries (dead): %s", job.id, job.template,
                      job.recipient, job.attempts, error)
        else:
            log.warning("mail %s (%s) to %s not sent, try %d: %s", job.id, job.template, job.recipient,
                        job.attempts, error)
        await self._set(job.id, state=MailState.dead if dead else MailState.pending, last_error=error[:2000],
                        next_attempt_at=utcnow() + dt.timedelta(seconds=backoff(job.attempts, cap=RETRY_CAP)))

    async def _set(self, job_id: uuid.UUID, **values) -> None:
        async with self.db.sessionmaker() as session:
            await session.execute(update(MailJob).where(MailJob.id == job_id).values(**values))
            await session.commit()


async def dead_jobs(db: Database, limit: int = 100) -> list[MailJob]:
    async with db.sessionmaker() as session:
        return list((await session.scalars(select(MailJob).where(MailJob.state == MailState.dead)
                                           .order_by(MailJob.created_at).limit(limit))).all())


async def replay_dead(db: Database) -> int:
    """An operator's second chance for dead mail: tried again from now, with a fresh count of tries."""
    async with db.sessionmaker() as session:
        result = await session.execute(update(MailJob).where(MailJob.state == MailState.dead)
                                       .values(state=MailState.pending, attempts=0, next_attempt_at=utcnow()))
        await session.commit()
    return result.rowcount


async def start(app: FastAPI) -> None:
    """Wire mail into the app: the queueing effect on every event, the sender woken by a commit that queued mail."""
    settings = app.state.settings
    if "@" not in parseaddr(settings.mail_from)[1]:
        raise ValueError(f"NOTIFY_MAIL_FROM must be an address, like 'Chợ Vườn <no-reply@example.vn>', "
                         f"not {settings.mail_from!r}")
    transport = make_transport(settings.smtp_url)  # a malformed SMTP_URL stops the start here too
    sender = MailSender(app.state.db, transport, settings.mail_from, max_attempts=settings.mail_max_attempts,
                        poll_interval=settings.mail_poll_interval)
    app.state.effects.append(queue_mail)
    app.state.db.after_commit(sender.wake, if_added=MailJob)
    app.state.mail_sender = sender
    await sender.start()
    log.info("mail goes to %s", transport)


async def stop(app: FastAPI) -> None:
    sender = getattr(app.state, "mail_sender", None)
    if sender is not None:
        await sender.stop()
