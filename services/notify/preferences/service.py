"""Notification preferences: read when an event queues mail, saved by their owner; part of the
account's personal data (export and erasure through ``services/notify/accounts.py``)."""

from __future__ import annotations

from sqlalchemy import Row, bindparam, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from common.db import read_once
from services.notify import accounts
from services.notify.mail.models import MailJob
from services.notify.preferences.models import NotificationSettings, NotificationSettingsUpdate, utcnow


async def get(session: AsyncSession, account_id: str) -> NotificationSettings | None:
    return await session.get(NotificationSettings, account_id)


async def mail_settings(session: AsyncSession, account_id: str) -> Row | None:
    """What queueing mail reads of ``account_id``'s settings (``email``, ``locale``, ``email_enabled``),
    or None: columns by a statement built once, not an ORM instance (it runs for every order event),
    read once per batch of events."""
    rows = await read_once(session, _MAIL_SETTINGS, {"account_id": account_id})
    return rows[0] if rows else None


_settings = NotificationSettings.__table__.c
_MAIL_SETTINGS = select(_settings.email, _settings.locale, _settings.email_enabled).where(
    _settings.account_id == bindparam("account_id"))


async def save(session: AsyncSession, account_id: str, data: NotificationSettingsUpdate) -> NotificationSettings:
    """Replace ``account_id``'s settings (made on first save)."""
    for _ in range(2):  # a concurrent first save of the same account: the second one updates
        row = await get(session, account_id)
        if row is None:
            row = NotificationSettings(account_id=account_id)
            session.add(row)
        row.sqlmodel_update(data.model_dump())
        row.updated_at = utcnow()
        try:
            await session.flush()
            return row
        except IntegrityError:
            await session.rollback()
    raise RuntimeError("notification settings could not be saved")  # unreachable in practice


async def export_personal_data(session: AsyncSession, account_id: str) -> dict:
    """The account's settings and the mail sent to the address in them (for ``GET /me/export``)."""
    row = await get(session, account_id)
    mail = []
    if row is not None and row.email:
        jobs = (await session.scalars(select(MailJob).where(MailJob.recipient == row.email)
                                      .order_by(MailJob.created_at))).all()
        mail = [{"template": j.template, "locale": j.locale, "state": j.state, "created_at": j.created_at.isoformat(),
                 "sent_at": j.sent_at.isoformat() if j.sent_at else None} for j in jobs]
    return {"notification_settings": row.model_dump(mode="json") if row is not None else None, "mail": mail}


async def erase_personal_data(session: AsyncSession, account_id: str) -> None:
    """Forget the account's settings and the mail queued for the address in them (``DELETE /me``)."""
    row = await get(session, account_id)
    if row is None:
        return
    if row.email:
        await session.execute(delete(MailJob).where(MailJob.recipient == row.email))
    await session.delete(row)


accounts.SECTIONS.append((export_personal_data, erase_personal_data))
