from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from common.db import get_scoped
from common.events import Event
from common.pagination import keyset_page
from services.notify.inbox import messages
from services.notify.inbox.models import Notification, utcnow


def add_for_event(session: AsyncSession, event: Event) -> set[str]:
    """Inbox rows for an event (in the caller's transaction). Returns the accounts to wake."""
    touched = set()
    for account_id, title, body in messages.for_event(event):
        session.add(Notification(account_id=account_id, event_id=str(event.id), type=event.type,
                                 title=title, body=body, data=event.data.model_dump(mode="json")))
        touched.add(account_id)
    return touched


async def page(session: AsyncSession, account_id: str, unread_only: bool, limit: int,
               cursor: str | None) -> tuple[list[Notification], str | None]:
    stmt = select(Notification).where(Notification.account_id == account_id)
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    return await keyset_page(session, stmt, Notification.id, limit, cursor)


async def unread_count(session: AsyncSession, account_id: str) -> int:
    return await session.scalar(select(func.count()).select_from(Notification).where(
        Notification.account_id == account_id, Notification.read_at.is_(None)))


async def since(session: AsyncSession, account_id: str, last_id: int, limit: int = 200) -> list[Notification]:
    return list((await session.scalars(select(Notification).where(
        Notification.account_id == account_id, Notification.id > last_id).order_by(Notification.id)
        .limit(limit))).all())


async def mark_read(session: AsyncSession, account_id: str, notification_id: int) -> Notification:
    row = await get_scoped(session, Notification, notification_id, "No such notification", account_id=account_id)
    if row.read_at is None:
        row.read_at = utcnow()
    return row


async def mark_all_read(session: AsyncSession, account_id: str) -> int:
    result = await session.execute(update(Notification).where(Notification.account_id == account_id,
                                                              Notification.read_at.is_(None))
                                   .values(read_at=utcnow()))
    return result.rowcount
