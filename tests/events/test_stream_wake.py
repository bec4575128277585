"""The live stream is not left waiting for its heartbeat when a notification is committed while it reads."""

from __future__ import annotations

import asyncio

import httpx

from common.events import Envelope
from services.notify.events.handler import handle
from services.notify.inbox import service as inbox_service
from tests.apps import make_app
from tests.support.auth import auth
from tests.support.servers import serve_in_thread

GROWER_ID = "grower-stream-race"


def placed(code: str) -> Envelope:
    return Envelope(type="order.placed", source="orders", data={
        "order_id": 1, "code": code, "shop_id": 1, "shop_name": "Vườn Sen", "shop_owner_id": GROWER_ID,
        "buyer_id": None, "status": "pending", "payment_status": "unpaid", "payment_method": "cod",
        "total": 150000, "contact_name": "Anh Tư", "contact_email": None, "actor_role": "guest",
        "lines": [{"product_name": "Súng", "variant_label": "Củ", "quantity": 1, "unit_price": 150000}]})


async def test_a_notification_committed_during_the_streams_read_arrives_at_once(db_urls, monkeypatch) -> None:
    notify = make_app("notify", db_urls, stream_heartbeat=30)
    original = inbox_service.since
    raced: list[bool] = []

    async def since_then_an_event_lands(session, account_id, last_id, limit=200):
        rows = await original(session, account_id, last_id, limit)
        if account_id == GROWER_ID and not raced:  # the stream's first read: found nothing …
            raced.append(True)
            await handle(notify.state.db, placed("CV-RACE-1"), effects=notify.state.effects,
                         broadcaster=notify.state.broadcaster)  # … and a notification commits right after it
        return rows

    monkeypatch.setattr(inbox_service, "since", since_then_an_event_lands)
    with serve_in_thread(notify) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            async def first_notification() -> str:
                async with client.stream("GET", "/api/v1/notifications/stream", headers=auth(GROWER_ID)) as resp:
                    async for line in resp.aiter_lines():
                        if line.startswith("data: "):
                            return line

            line = await asyncio.wait_for(first_notification(), 5)  # the heartbeat is 30 s
            assert raced and "CV-RACE-1" in line
