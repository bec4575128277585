from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from common.auth import CurrentPrincipal
from common.pagination import CursorQuery, LimitQuery, Page
from common.params import IdPath
from services.notify.deps import BroadcasterDep, DatabaseDep, SessionDep, SettingsDep
from services.notify.inbox import service
from services.notify.inbox.models import Notification

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


class NotificationOut(BaseModel):
    id: int
    type: str
    title: str
    body: str
    data: dict
    created_at: dt.datetime
    read_at: dt.datetime | None


class Inbox(Page[NotificationOut]):
    unread_count: int


class MarkedRead(BaseModel):
    marked: int = Field(description="How many were unread until now")


def out(row: Notification) -> NotificationOut:
    return NotificationOut.model_validate(row, from_attributes=True)


@router.get("", operation_id="notifications_list",
            response_model=Inbox, summary="Your notifications, newest first, with the unread count")
async def list_notifications(session: SessionDep, principal: CurrentPrincipal,
                             unread: Annotated[bool, Query(description="Only unread ones")] = False,
                             limit: LimitQuery = 20, cursor: CursorQuery = None) -> Inbox:
    rows, next_cursor = await service.page(session, principal.sub, unread, limit, cursor)
    return Inbox(items=[out(r) for r in rows], next_cursor=next_cursor,
                 unread_count=await service.unread_count(session, principal.sub))


@router.post("/{notification_id}/read", operation_id="notifications_read",
             response_model=NotificationOut, summary="Mark one as read")
async def read_one(session: SessionDep, principal: CurrentPrincipal, notification_id: IdPath) -> NotificationOut:
    return out(await service.mark_read(session, principal.sub, notification_id))


@router.post("/read-all", operation_id="notifications_read_all", summary="Mark all as read")
async def read_all(session: SessionDep, principal: CurrentPrincipal) -> MarkedRead:
    return MarkedRead(marked=await service.mark_all_read(session, principal.sub))


def _sse(row: Notification) -> bytes:
    payload = orjson.dumps(out(row).model_dump(mode="json"))
    return b"id: %d\nevent: notification\ndata: %s\n\n" % (row.id, payload)


@router.get("/stream", operation_id="notifications_stream",
            summary="Server-sent events: each new notification as it arrives",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "`id:` is the notification id; reconnect with Last-Event-ID "
                                            "to receive what you missed"}})
async def stream(db: DatabaseDep, broadcaster: BroadcasterDep, settings: SettingsDep, principal: CurrentPrincipal,
                 last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
                 since: Annotated[int | None, Query(ge=0, description="Same as Last-Event-ID")] = None
                 ) -> StreamingResponse:
    start = since if since is not None else (int(last_event_id) if (last_event_id or "").isdigit() else None)
    account_id = principal.sub

    async def events() -> AsyncIterator[bytes]:
        wake = broadcaster.subscribe(account_id)  # before reading, so nothing falls in between
        try:
            last = start
            if last is None:  # a fresh stream starts from now: only what arrives from here on
                async with db.sessionmaker() as session:
                    newest = await service.page(session, account_id, False, 1, None)
                last = newest[0][0].id if newest[0] else 0
            yield b"retry: 2000\n\n"
            while not broadcaster.closing:
                # Cleared before reading, not after: a notification committed while this reads (or
                # while it sends) leaves the wake-up set, so it is not left waiting for the heartbeat.
                wake.clear()
                async with db.sessionmaker() as session:
                    rows = await service.since(session, account_id, last)
                for row in rows:
                    yield _sse(row)
                    last = row.id
                if rows:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), settings.stream_heartbeat)
                    continue
                yield b": keep-alive\n\n"
        finally:
            broadcaster.unsubscribe(account_id, wake)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
