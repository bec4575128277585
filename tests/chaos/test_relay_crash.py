"""Chaos: the orders relay is killed after the bus took an event but before it marked the event sent.
The restarted relay publishes it again; the grower still gets one email and one inbox item."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import select

from common.bus import make_publisher
from common.db import Database
from common.events import Envelope
from common.relay import OutboxRelay
from services.orders.outbox import OutboxEvent
from tests.events.stack import GROWER, stack
from tests.support.smtp import smtp_server

GROWER_EMAIL = "vuon.sen@example.vn"


class Watching:
    """The restarted relay's publisher: the real one, remembering what it published."""

    def __init__(self, inner) -> None:
        self.inner, self.ids = inner, []

    async def publish(self, envelope: Envelope) -> None:
        await self.inner.publish(envelope)
        self.ids.append(envelope.id)

    async def publish_many(self, carried) -> None:
        await self.inner.publish_many(carried)
        self.ids += [envelope.id for envelope, _ in carried]

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("transport", ["http", "nats"])
async def test_relay_killed_between_publishing_and_marking_sent_one_email(db_urls, transport: str) -> None:
    with smtp_server() as (port, mailbox):
        async with stack(db_urls, transport, smtp_url=f"smtp://127.0.0.1:{port}") as s:
            assert (await s.notify.put("/api/v1/notifications/settings", json={"email": GROWER_EMAIL},
                                       headers=GROWER)).status_code == 200
            relay = s.apps["orders"].state.relay
            killed = threading.Event()

            async def die_before_marking(ids) -> None:  # the relay's process is killed right here
                killed.set()
                raise asyncio.CancelledError

            relay._sent = die_before_marking
            code = (await s.place(quantity=3)).json()["code"]
            for _ in range(200):  # done: its lock's transaction rolled back as it died
                if killed.is_set() and relay._task.done():
                    break
                await asyncio.sleep(0.025)
            assert killed.is_set() and relay._task.done(), "the relay should have died after publishing"
            assert len(await mailbox.wait(GROWER_EMAIL)) == 1  # the first delivery went through

            settings = s.apps["orders"].state.settings
            db = Database(db_urls["orders"], name="orders")  # the restarted process: its own connections
            publisher = Watching(make_publisher(settings.event_bus_url, settings.notify_url,
                                                settings.service_token.get_secret_value(), "orders",
                                                settings.event_names()))
            try:
                async with db.sessionmaker() as session:
                    row = await session.scalar(select(OutboxEvent).where(OutboxEvent.type == "order.placed"))
                assert row.published_at is None, "killed before marking: still unpublished"
                restarted = OutboxRelay(db, OutboxEvent, publisher)
                await restarted.run_once()
                assert publisher.ids == [row.id], "the restarted relay publishes the event again"
                async with db.sessionmaker() as session:
                    assert (await session.get(OutboxEvent, row.id)).published_at is not None
            finally:
                await publisher.aclose()
                await db.dispose()

            mails = await mailbox.wait(GROWER_EMAIL, count=2, timeout=2.0, settle=0.5)
            assert [m["Subject"] for m in mails] == [f"Đơn mới {code} – 150.000 ₫"], "one email, not two"
            inbox = await s.inbox()
            assert [i["title"] for i in inbox["items"]] == [f"Đơn mới {code} – 150.000 ₫"]
